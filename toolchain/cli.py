"""`mvemu hybridize`: the command line (hvm/cli.py adds it as a subcommand and hands over here).
Only argparse and the standard library at import time: `mvemu run` does not pay for capstone."""
from __future__ import annotations

import os
import sys
import tempfile

from .errors import Refused, UsageError

HELP = "turn a static x86-64 program into a Multiverse fat binary"

DESCRIPTION = """\
Turn a static x86-64 Linux program (glibc or musl, static or static-pie; it need not
have symbols) into a Multiverse fat binary, without recompiling it.

A fat binary is the same program with one new loadable segment holding the Multiverse
runtime and an AeroKernel image (an ELF file, embedded whole). Its _start hands
__libc_start_main the runtime's mv_main instead of main. Under `mvemu run`, mv_main
opens /dev/hvm and runs main in the HRT; anywhere else (plain Linux) it just calls
main, so the fat binary behaves exactly like the original.

Function overrides (docs/overrides.md): a config file maps legacy functions to AeroKernel
or runtime functions; called in HRT context (ring 0), an overridden function jumps to
its target, anywhere else the original runs. The default config (toolchain/overrides.toml)
is applied unless --overrides FILE or --no-overrides says otherwise; its entries apply
only to programs that have the function.
"""

EPILOG = """\
examples:
  mvemu hybridize ./prog -o prog.fat        make a fat binary
  mvemu run ./prog.fat ARGS...              run it under mvemu
  ./prog.fat ARGS...                        ... or natively: same output, same status
  mvemu hybridize --info prog.fat           what a fat binary contains (and its overrides)
  mvemu hybridize ./prog -o prog.fat --overrides my.toml     other function overrides
  mvemu hybridize --sdk DIR                 install hrt.h and libmvhrt.a (accelerator SDK)
  readelf -lW prog.fat                      its segments (the new LOAD and the NOTE)

Refused, with one line and status 1: files that are not static x86-64 programs
(32-bit, other architectures, object files, dynamically linked), damaged or truncated
files, fat binaries, and programs whose _start does not pass main to
__libc_start_main in the usual way; an override config that is not valid, or names a
function the program lacks (a stripped program has none) or a missing target. `--info`
on a file that is not a fat binary says so, with status 1. Mistakes on the command line
give status 2. See docs/hybridize.md for the layout and how main is found,
docs/overrides.md for overrides and the SDK.
"""


def add_arguments(parser) -> None:
    parser.add_argument("program", metavar="PROGRAM", nargs="?",
                        help="the static program (or, with --info, any file)")
    parser.add_argument("-o", dest="output", metavar="OUT", help="where to write the fat binary (mode 0755)")
    parser.add_argument("--aerokernel", metavar="PATH", help="the AeroKernel image to embed "
                        "(default: aerokernel/build/aerokernel.elf)")
    parser.add_argument("--overrides", metavar="FILE", help="the function override config to apply "
                        "(default: toolchain/overrides.toml)")
    parser.add_argument("--no-overrides", action="store_true", help="apply no function overrides")
    parser.add_argument("--info", action="store_true", help="describe the fat binary PROGRAM instead")
    parser.add_argument("--sdk", metavar="DIR", help="copy the accelerator SDK (hrt.h, libmvhrt.a) to DIR "
                        "instead")


def run(opts) -> int:
    """Run `mvemu hybridize` with parsed options; returns the exit status."""
    try:
        if opts.sdk is not None:
            if opts.program or opts.output or opts.aerokernel or opts.info or opts.overrides or opts.no_overrides:
                raise UsageError("--sdk DIR takes nothing else")
            return _install_sdk(opts.sdk)
        if not opts.program:
            raise UsageError("the following arguments are required: PROGRAM (or --sdk DIR)")
        if opts.info:
            if opts.output or opts.aerokernel or opts.overrides or opts.no_overrides:
                raise UsageError("--info takes only the file to describe")
            return _info(opts.program)
        if not opts.output:
            raise UsageError("-o OUT is required (where to write the fat binary)")
        if opts.overrides and opts.no_overrides:
            raise UsageError("--overrides FILE and --no-overrides contradict each other")
        return _hybridize(opts.program, opts.output, opts.aerokernel,
                          None if opts.no_overrides else opts.overrides or "")
    except UsageError as e:
        print(f"mvemu: hybridize: {e}", file=sys.stderr)
        return 2
    except Refused as e:
        print(f"mvemu: hybridize: {e}", file=sys.stderr)
        return 1


def _hybridize(program: str, output: str, aerokernel: str | None, overrides: str | None) -> int:
    """`overrides`: a config file, "" for the default one, None for none."""
    from .hybridize import hybridize
    from .overrides import DEFAULT_CONFIG, load_config
    from .pieces import AEROKERNEL_ELF, load_aerokernel, load_runtime

    if os.path.realpath(program) == os.path.realpath(output) or (
            os.path.exists(output) and os.path.exists(program) and os.path.samefile(program, output)):
        raise UsageError(f"the output must be a new file, not {program} itself")
    config = [] if overrides is None else load_config(overrides or DEFAULT_CONFIG)
    data = _read(program)
    try:
        fat = hybridize(data, load_runtime(), load_aerokernel(aerokernel or AEROKERNEL_ELF), config)
    except Refused as e:
        raise Refused(f"{program}: {e}")
    _write_executable(output, fat)
    return 0


def _install_sdk(directory: str) -> int:
    from .pieces import install_sdk

    for path in install_sdk(directory):
        print(path)
    return 0


def _info(path: str) -> int:
    from .hybridize import describe

    try:
        fat, text = describe(_read(path))
    except Refused as e:
        raise Refused(f"{path}: {e}")
    print(f"{path}: {text}")
    return 0 if fat else 1


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Refused(f"{path}: {e.strerror}")


def _write_executable(path: str, data: bytes) -> None:
    """Write `data` to `path`, mode 0755, replacing it in one step (never half-written)."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hybridize-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise Refused(f"cannot write {path}: {e.strerror}")
