"""The `mvemu` command line."""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from toolchain import cli as hybridize_cli

from . import __version__

_DESCRIPTION = """\
mvemu: a full x86-64 system emulator (Python on Unicorn) that reproduces Multiverse:
an unmodified static Linux program runs as a process on a Regular OS (ROS) and, once
hybridized, runs its main() in ring 0 inside the AeroKernel on a separate vCPU.
"""

_RUN_EPILOG = """\
examples:
  mvemu run ./hello world              run a static x86-64 program on the ROS
  mvemu run --trace ./prog < in.txt    ... printing every system call, strace-style
  mvemu run --mem 2G ./big             give the guest 2 GiB of RAM
  mvemu run --gdb 1234 ./prog          debug it: in another terminal, gdb ./prog and then
                                       (gdb) target remote localhost:1234

The program's stdin/stdout/stderr, arguments, environment and exit status pass through
as if it ran natively. A program killed by a signal makes mvemu exit with 128+signal
(139 for SIGSEGV) after one line on stderr saying why.
"""


class UserError(Exception):
    """A mistake on the command line: reported as one line, never a traceback."""


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port '{text}' (a number from 0 to 65535)")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} out of range (0 to 65535)")
    return port


def parse_hrt_local(text: str) -> frozenset[str]:
    """--hrt-local: system call names (comma-separated), `all` or `none`."""
    from .abi import LOCAL_SYSCALLS
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return frozenset()
    if names == ["all"]:
        return frozenset(LOCAL_SYSCALLS)
    unknown = [n for n in names if n not in LOCAL_SYSCALLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"cannot serve {', '.join(unknown) or repr(text)} in the AeroKernel (choose from "
            f"{','.join(LOCAL_SYSCALLS)}, or all, or none)")
    return frozenset(names)


def parse_hrt_size(text: str) -> int:
    return 0 if text.strip() in ("0", "0M", "0G") else parse_size(text)


def parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in "KMG" else (t, "")
    try:
        value = int(num) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size '{text}' (use e.g. 512M or 2G)")
    if value < (16 << 20) or value > (64 << 30):
        raise argparse.ArgumentTypeError(f"size '{text}' out of range (16M to 64G)")
    return value & ~0xFFF


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args=None, namespace=None):
        opts, extra = super().parse_known_args(args, namespace)
        if extra and " " in self.prog:                 # a subcommand reports its own leftovers
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return opts, extra

    def error(self, message):
        self.print_usage(sys.stderr)
        command = self.prog.partition(" ")[2]            # "run" in "mvemu run"
        raise UserError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mvemu", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"mvemu {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="run a static x86-64 Linux program under mvemu",
                         description="Run a static x86-64 Linux program (glibc or musl, static or "
                                     "static-pie) on mvemu's Regular OS.",
                         epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--mem", type=parse_size, default=1 << 30, metavar="SIZE",
                     help="guest RAM, e.g. 512M or 2G (default 1G; untouched RAM costs the host nothing)")
    run.add_argument("--trace", action="store_true",
                     help="print each system call with its arguments and result on stderr, and every "
                          "HVM step (image install, page tables, vCPU start, hypercall, exception)")
    run.add_argument("--ros-cpus", type=int, default=1, metavar="N",
                     help="number of ROS vCPUs the guest's processes and threads are scheduled on "
                          "(default 1; all run in turn on one host thread, so N changes what the guest "
                          "sees and how its threads interleave, not how fast it runs)")
    run.add_argument("--hrt-mem", type=parse_hrt_size, default=64 << 20, metavar="SIZE",
                     help="memory of the HRT partition, beside --mem (default 64M; 0 = no HRT)")
    run.add_argument("--hrt-cpus", type=int, default=1, metavar="N",
                     help="number of HRT vCPUs (default 1)")
    run.add_argument("--hrt-wp", choices=("on", "off"), default="on",
                     help="CR0.WP on the HRT vCPUs (default on). 'off' exists only to demonstrate the "
                          "corruption Multiverse prevents: ring-0 writes then go through read-only "
                          "copy-on-write and zero pages into memory other pages and processes share "
                          "(docs/split.md)")
    run.add_argument("--hrt-local", type=parse_hrt_local, default=frozenset(), metavar="CALLS",
                     help="subtractive porting: system calls the AeroKernel serves itself instead of "
                          "forwarding them to the partner, comma-separated from getpid, gettid, "
                          "clock_gettime, gettimeofday, time, write (to the console), or 'all' "
                          "(default: none, every call is forwarded; docs/split.md)")
    run.add_argument("--hrt-console", action="store_true",
                     help="show the AeroKernel's console on stderr (default: only with --trace, or "
                          "when the HRT fails)")
    run.add_argument("--stats", action="store_true",
                     help="at exit, print the Multiverse statistics on stderr: forwarded system calls, "
                          "page faults and exceptions, merges, TLB shootdowns, host time per side")
    run.add_argument("--gdb", type=parse_port, metavar="PORT",
                     help="serve the GDB remote protocol on localhost:PORT (0: any free port, printed "
                          "on stderr) and wait for gdb before the program's first instruction, as "
                          "qemu -g does; every ROS thread (and HRT vCPU) is a gdb thread, "
                          "'monitor help' lists the machine-level commands (see docs/gdb.md)")
    run.add_argument("--gdb-wait", action="store_true",
                     help="stop before the first instruction until gdb connects; this is what --gdb "
                          "always does, the option only says so explicitly")
    run.add_argument("program", metavar="PROGRAM", help="the program to run (a path, or a name looked up in PATH)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the program")
    hybridize = sub.add_parser("hybridize", help=hybridize_cli.HELP, description=hybridize_cli.DESCRIPTION,
                               epilog=hybridize_cli.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    hybridize_cli.add_arguments(hybridize)
    return p


def resolve_program(name: str) -> str:
    if "/" in name or os.path.exists(name):
        return name
    found = shutil.which(name)
    return found or name


def original_environment() -> list[bytes]:
    """The environment mvemu was started with. Python may have changed os.environ at start-up
    (PEP 538 sets LC_CTYPE=C.UTF-8 under the C locale); the guest must see what a native run
    would, which is what the kernel recorded at exec time."""
    try:
        with open("/proc/self/environ", "rb") as f:
            return [e for e in f.read().split(b"\0") if e]
    except OSError:
        return [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in os.environ.items()]


def cmd_run(opts) -> int:
    from ros_shim.kernel import KernelOptions, RosKernel
    from ros_shim.layout import MAX_ROS_CPUS
    from ros_shim.loader import ExecError

    from .machine import Machine

    path = resolve_program(opts.program)
    if not 1 <= opts.ros_cpus <= MAX_ROS_CPUS:
        raise UserError(f"--ros-cpus must be between 1 and {MAX_ROS_CPUS} (got {opts.ros_cpus})")
    if not 1 <= opts.hrt_cpus <= 64:
        raise UserError(f"--hrt-cpus must be between 1 and 64 (got {opts.hrt_cpus})")
    if opts.gdb_wait and opts.gdb is None:
        raise UserError("--gdb-wait needs --gdb PORT")
    server = None
    if opts.gdb is not None:
        from .gdbstub.server import GdbServer
        try:
            server = GdbServer(opts.gdb)
        except OSError as e:
            raise UserError(f"--gdb {opts.gdb}: cannot listen on localhost:{opts.gdb}: {e.strerror or e}")
    machine = Machine(opts.mem, opts.hrt_mem, opts.hrt_cpus, trace=opts.trace, stats=opts.stats,
                      console=opts.hrt_console, hrt_wp=opts.hrt_wp == "on", hrt_local=opts.hrt_local,
                      ros_cpus=opts.ros_cpus)
    if opts.hrt_wp == "off":
        print("mvemu: warning: --hrt-wp off: ring-0 writes in the HRT ignore read-only pages, so "
              "copy-on-write is broken (a demonstration, see docs/split.md)", file=sys.stderr)
    kernel = RosKernel(machine.memory, machine.ros, KernelOptions(trace=opts.trace, cpus=opts.ros_cpus))
    kernel.hypercall = machine.ros_hypercall
    argv = [os.fsencode(opts.program)] + [os.fsencode(a) for a in opts.args]
    envp = original_environment()
    try:
        kernel.spawn(path, argv, envp)
    except ExecError as e:
        print(f"mvemu: cannot run '{opts.program}': {e}", file=sys.stderr)
        return 127 if e.errno == 2 else 126
    if server is not None:
        from ros_shim.debug import RosDebugView
        server.attach(machine, RosDebugView(kernel))
        machine.debugger = server
    status = machine.run(kernel)
    if opts.stats:
        print(machine.channels.report(), file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        opts = parser.parse_args(argv)
        if opts.command is None:
            parser.print_help()
            return 2
        if opts.command == "hybridize":
            return hybridize_cli.run(opts)
        return cmd_run(opts)
    except UserError as e:
        print(f"mvemu: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:                        # a bug in mvemu, not the user's mistake
        if os.environ.get("MVEMU_DEBUG"):
            raise
        where = e.__traceback__
        while where and where.tb_next:
            where = where.tb_next
        loc = f" at {os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else ""
        print(f"mvemu: internal error: {type(e).__name__}: {e}{loc} "
              f"(this is a bug in mvemu; MVEMU_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
