"""Function overrides and the accelerator SDK (toolchain/overrides.py, toolchain/sdk/, docs/overrides.md).

Oracles: a native run of the program (an overridden function runs the original natively, so a
fat binary run natively must behave exactly like the original; under mvemu, the lines that do not
depend on being in ring 0 must match the native run too), the documented HRT boot state (DESIGN.md
section 8: CR0 has PE, WP and PG; CR4 has PAE; ring 0), and the definitions of the AeroKernel
functions in aerokernel/exports.c. Refusals are one `mvemu:` line, never a traceback.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness
from harness import BUILD, REPO, Case
from hvm import cli
from test_cli import assert_one_error_line
from toolchain import overrides as ov
from toolchain.elf import Elf
from toolchain.errors import Refused
from toolchain.hybridize import applied_overrides, hybridize
from toolchain.pieces import SDK_FILES, load_aerokernel, load_runtime

OVR = BUILD / "overrides"
SRC = REPO / "guest_images" / "src" / "overrides"
DEMO_CONFIG = SRC / "override_demo.toml"
ENOSYS = 38
CR0_PE, CR0_WP, CR0_PG = 1 << 0, 1 << 16, 1 << 31


@pytest.fixture(scope="session")
def pieces(images):
    for d in ("aerokernel", "toolchain/runtime", "toolchain/sdk"):
        r = subprocess.run(["make", "-s", "-C", str(REPO / d)], capture_output=True, text=True)
        assert r.returncode == 0, f"make -C {d} failed:\n{r.stdout}{r.stderr}"
    return load_runtime(), load_aerokernel()


def hybridize_cli(capsys, *argv) -> tuple[int, str, str]:
    status = cli.main(["hybridize", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def fat(capsys, program: Path, out: Path, *options) -> Path:
    status, _, err = hybridize_cli(capsys, program, "-o", out, *options)
    assert status == 0, err
    return out


def run_both(prog: Path, args=(), work: Path = None, native_prog: Path = None, native_args=None):
    """(native run of native_prog or prog, mvemu run of prog), started through one name so argv[0] agrees."""
    link = work.parent / "bin" / "prog"
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(native_prog or prog)
    native = harness.run_native(Case(str(link), tuple(native_args if native_args is not None else args)), work)
    link.unlink()
    link.symlink_to(prog)
    mvemu = harness.run_mvemu(Case(str(link), tuple(args)), work)
    harness._wipe(work)
    return native, mvemu


def lines(result: harness.Result) -> list[str]:
    return result.stdout.decode().splitlines()


def with_enabled(config: str) -> str:
    """The default config with its pending entries switched on (what the lead will do)."""
    return config.replace("enabled = false", "enabled = true")


# -- the config --------------------------------------------------------------------------------------
def test_default_config_targets_exist(pieces):
    """Every entry of the default config is enabled and names a target that exists."""
    runtime, image = pieces
    config = ov.load_config(ov.DEFAULT_CONFIG)
    image_functions = {s.name for s in ov.symbol_table(Elf(image)) if s.type == ov.STT_FUNC}
    for o in config:
        assert not o.required, f"{o.function}: a default entry must not refuse programs without the function"
        if o.enabled:
            names = image_functions if o.kind == "aerokernel" else runtime.functions
            assert o.target in names, f"{o.function}: {o.target_spec} does not exist"
    disabled = {o.function: o.target_spec for o in config if not o.enabled}
    assert disabled == {}
    sdk = {line.split("(")[0].split()[-1].lstrip("*") for line in (REPO / "toolchain/sdk/hrt.h").read_text().splitlines()
           if re.match(r"(long|void \*)\s*\*?hrt_\w+\(", line)}
    assert sdk <= {o.function for o in config}, f"SDK functions without a default override: {sdk - {o.function for o in config}}"


def test_demo_config_parses():
    got = {o.function: (o.target_spec, o.args, o.when) for o in ov.load_config(DEMO_CONFIG)}
    assert got == {"platform_cr0": ("aerokernel:aerokernel_read_cr0", (0,), "hrt"),
                   "scaled": ("runtime:mv_demo_apply3", ("$orig", "a0", "a2", "a1"), "hrt")}


BAD_CONFIGS = [
    ("[[override]\n", "not valid TOML"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\n', "`args` is missing"),
    ('[[override]]\nfunction = "f"\ntarget = "kernel:g"\nargs = []\n', "`target` must be"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = ["a6"]\n', "argument 'a6'"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = ["a0","a0","a0","a0","a0","a0","a0"]\n',
     "at most 6"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = []\nspeed = 1\n', "unknown key 'speed'"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = []\n' * 2, "overridden twice"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = []\nenabled = "yes"\n', "true or false"),
    ('[[override]]\nfunction = "f"\ntarget = "aerokernel:g"\nargs = []\nwhen = "ros"\n', "`when`"),
    ('[overrides]\n', "unknown top-level key"),
]


@pytest.mark.parametrize("text, words", BAD_CONFIGS, ids=[w for _, w in BAD_CONFIGS])
def test_bad_config_refused(text, words, pieces, tmp_path, capsys):
    (tmp_path / "c.toml").write_text(text)
    status, _, err = hybridize_cli(capsys, OVR / "override_demo.glibc", "-o", tmp_path / "out",
                                   "--overrides", tmp_path / "c.toml")
    line = assert_one_error_line(status, err, expect_status=1, mentions=("c.toml", words))
    assert not (tmp_path / "out").exists(), line


def test_options(pieces, tmp_path, capsys):
    status, _, err = hybridize_cli(capsys, OVR / "override_demo.glibc", "-o", tmp_path / "o",
                                   "--overrides", tmp_path / "none.toml")
    assert_one_error_line(status, err, expect_status=1, mentions=("no such override config",))
    status, _, err = hybridize_cli(capsys, OVR / "override_demo.glibc", "-o", tmp_path / "o",
                                   "--overrides", DEMO_CONFIG, "--no-overrides")
    assert_one_error_line(status, err, expect_status=2, mentions=("contradict",))
    status, _, err = hybridize_cli(capsys, "--sdk", tmp_path / "sdk", OVR / "fig4.glibc")
    assert_one_error_line(status, err, expect_status=2, mentions=("--sdk",))


# -- refusals on programs --------------------------------------------------------------------------------
ASM_FUNCTIONS = r"""
__asm__(".text\n"
        ".globl jumpy\n.type jumpy,@function\njumpy:\n  test %edi, %edi\n  jz 1f\n  mov $1, %eax\n1: ret\n.size jumpy, .-jumpy\n"
        ".globl tiny\n.type tiny,@function\ntiny:\n  xor %eax, %eax\n  ret\n.size tiny, .-tiny\n");
int jumpy(int), tiny(void);
int main(int argc, char **argv) { (void)argv; return jumpy(argc) + tiny(); }
"""


def _asm_program(tmp_path: Path) -> Path:
    (tmp_path / "a.c").write_text(ASM_FUNCTIONS)
    subprocess.run(["gcc", "-O1", "-static", "-o", str(tmp_path / "a"), str(tmp_path / "a.c")], check=True)
    return tmp_path / "a"


def _stripped(tmp_path: Path) -> Path:
    shutil.copy(OVR / "override_demo.glibc", tmp_path / "s")
    subprocess.run(["strip", "--strip-all", str(tmp_path / "s")], check=True)
    return tmp_path / "s"


REFUSALS = [
    (_stripped, '[[override]]\nfunction = "scaled"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("override of scaled", "stripped")),
    (lambda t: BUILD / "hello.glibc",
     '[[override]]\nfunction = "scaled"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("no function scaled",)),
    (lambda t: OVR / "override_demo.glibc",
     '[[override]]\nfunction = "scaled"\ntarget = "aerokernel:aerokernel_nothing"\nargs = ["a0"]\n',
     ("AeroKernel image has no function aerokernel_nothing",)),
    (lambda t: OVR / "override_demo.glibc",
     '[[override]]\nfunction = "scaled"\ntarget = "runtime:mv_nothing"\nargs = ["a0"]\n',
     ("runtime has no function mv_nothing",)),
    (_asm_program, '[[override]]\nfunction = "jumpy"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("jumpy", "je", "branch")),
    (_asm_program, '[[override]]\nfunction = "tiny"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("tiny is 3 bytes long, too short",)),
    (lambda t: BUILD / "hello.glibc",
     '[[override]]\nfunction = "memmove"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("memmove is an IFUNC",)),
    (lambda t: BUILD / "threads.glibc",
     '[[override]]\nfunction = "pthread_create"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n'
     '[[override]]\nfunction = "__pthread_create_2_1"\ntarget = "aerokernel:aerokernel_add"\nargs = ["a0"]\n',
     ("are the same function",)),
]


@pytest.mark.parametrize("make, config, words", REFUSALS,
                         ids=["stripped", "missing symbol", "missing aerokernel target", "missing runtime target",
                              "branch in prologue", "too short", "ifunc", "same function twice"])
def test_refused(make, config, words, pieces, tmp_path, capsys):
    program = make(tmp_path)
    (tmp_path / "c.toml").write_text(config)
    status, _, err = hybridize_cli(capsys, program, "-o", tmp_path / "out", "--overrides", tmp_path / "c.toml")
    assert_one_error_line(status, err, expect_status=1, mentions=(str(program), *words))
    assert not (tmp_path / "out").exists()


def test_optional_entries_skip_stripped_programs(pieces, tmp_path, capsys):
    """The default config on a stripped program (Debian's busybox) or one without the functions
    changes nothing: the same bytes as without overrides."""
    for name in ("busybox", "hello.glibc", "hello.pie"):
        a = fat(capsys, BUILD / name, tmp_path / f"{name}.default")
        b = fat(capsys, BUILD / name, tmp_path / f"{name}.none", "--no-overrides")
        assert a.read_bytes() == b.read_bytes(), name
        assert applied_overrides(Elf(a.read_bytes())) == []


@pytest.mark.parametrize("name", ["threads.glibc", "threads.musl"])
def test_default_config_overrides_pthread_create(name, pieces, tmp_path, capsys):
    """A program with pthread_create gets the default override (and only that one)."""
    out = fat(capsys, BUILD / name, tmp_path / "fat")
    assert [o.function for o in applied_overrides(Elf(out.read_bytes()))] == ["pthread_create"]


# -- the mechanics on real binaries -----------------------------------------------------------------------
DEMO_VARIANTS = ["override_demo.glibc", "override_demo.musl", "override_demo.pie"]


@pytest.mark.parametrize("name", DEMO_VARIANTS)
def test_override_demo(name, pieces, tmp_path, capsys):
    """Natively the fat binary is the original. Under mvemu (main in ring 0) platform_cr0() is
    aerokernel_read_cr0 and scaled(x, s, o) is the original called as scaled(x, o, s) by
    mv_demo_apply3: its value is what a native run with those arguments prints."""
    program = OVR / name
    out = fat(capsys, program, tmp_path / "fat", "--overrides", DEMO_CONFIG)
    status, info, _ = hybridize_cli(capsys, "--info", out)
    assert status == 0 and "overrides           2:" in info
    assert re.search(r"platform_cr0 0x\w+ -> aerokernel:aerokernel_read_cr0 0xffffffff8\w+ \(0\)", info), info
    assert "scaled 0x" in info and "-> runtime:mv_demo_apply3" in info and "($orig, a0, a2, a1)" in info

    work = tmp_path / "work"
    original = harness.run_native(Case(str(program), ("7", "3", "1")), work)
    fat_native = harness.run_native(Case(str(out), ("7", "3", "1")), work)
    harness._wipe(work)
    assert (fat_native.stdout, fat_native.stderr, fat_native.status) == \
           (original.stdout, original.stderr, original.status) != (b"", b"", None)
    assert lines(original)[0] == "cr0: unavailable"

    swapped, under = run_both(out, ("7", "3", "1"), work, native_prog=program, native_args=("7", "1", "3"))
    assert under.status == swapped.status == 0 and under.stderr == b"", under.stderr
    cr0_line, scaled_line = lines(under)
    m = re.fullmatch(r"cr0: PE=(\d) WP=(\d) PG=(\d)", cr0_line)
    assert m and m.groups() == ("1", "1", "1"), cr0_line
    assert scaled_line.startswith("scaled(7, 3, 1) = ")
    assert scaled_line.split(" = ")[1] == lines(swapped)[1].split(" = ")[1], (scaled_line, lines(swapped))
    assert lines(swapped)[1] == "scaled(7, 1, 3) = 10"      # and it is not the unswapped 22
    assert lines(original)[1] == "scaled(7, 3, 1) = 22"


@pytest.mark.parametrize("name", ["override_demo.glibc", "override_demo.musl"])
def test_without_overrides_under_mvemu(name, pieces, tmp_path, capsys):
    """--no-overrides: main still runs in the HRT, but the legacy functions are the originals."""
    out = fat(capsys, OVR / name, tmp_path / "fat", "--no-overrides")
    native, under = run_both(out, ("7", "3", "1"), tmp_path / "work", native_prog=OVR / name)
    assert harness.compare(Case(str(out), ("7", "3", "1")), native, under) == []


REGISTERS = r"""
#include <stdio.h>
/* probe's first instruction is RIP-relative (the trampoline relocates it); it records what it
 * finds in RAX, R10 and R11, which the caller set: the wrapper's native path must change none. */
long seen[3];
__asm__(".text\n.globl probe\n.type probe,@function\nprobe:\n"
        "  mov %rax, seen(%rip)\n  mov %r10, seen+8(%rip)\n  mov %r11, seen+16(%rip)\n"
        "  lea 7(%rdi), %rax\n  ret\n.size probe, .-probe\n");
int main(void)
{
    long r;
    register long r10 __asm__("r10") = 0x1010;
    register long r11 __asm__("r11") = 0x1111;
    __asm__ volatile("mov $0x4242, %%eax\n call probe" : "=a"(r), "+r"(r10), "+r"(r11) : "D"(5L)
                     : "rcx", "rdx", "rsi", "r8", "r9", "memory");
    printf("probe(5) = %#lx, saw rax %#lx r10 %#lx r11 %#lx\n", r, seen[0], seen[1], seen[2]);
    return 0;
}
"""


@pytest.mark.parametrize("libc", ["gcc", "musl-gcc"])
def test_native_path_changes_no_register(libc, pieces, tmp_path, capsys):
    (tmp_path / "r.c").write_text(REGISTERS)
    program = tmp_path / "r"
    subprocess.run([libc, "-O2", "-static", "-o", str(program), str(tmp_path / "r.c")], check=True)
    (tmp_path / "c.toml").write_text('[[override]]\nfunction = "probe"\ntarget = "aerokernel:aerokernel_add"\n'
                                     'args = ["a0"]\n')
    out = fat(capsys, program, tmp_path / "fat", "--overrides", tmp_path / "c.toml")
    original = subprocess.run([str(program)], capture_output=True)
    fat_native = subprocess.run([str(out)], capture_output=True)
    assert original.stdout == b"probe(5) = 0xc, saw rax 0x4242 r10 0x1010 r11 0x1111\n"
    assert (fat_native.stdout, fat_native.returncode) == (original.stdout, original.returncode)
    # Under mvemu probe(5) is aerokernel_add(5) = 5 + 0x1000 (exports.c) and the original never runs.
    under = harness.run_mvemu(Case(str(out)), tmp_path / "work")
    assert under.stdout == b"probe(5) = 0x1005, saw rax 0 r10 0 r11 0\n" and under.status == 0, under.stderr


# -- the accelerator SDK --------------------------------------------------------------------------------------
def test_sdk_install(pieces, tmp_path, capsys):
    status, out, err = hybridize_cli(capsys, "--sdk", tmp_path / "sdk")
    assert status == 0, err
    assert out.split() == [str(tmp_path / "sdk" / f.name) for f in SDK_FILES]
    for f in SDK_FILES:
        assert (tmp_path / "sdk" / f.name).read_bytes() == f.read_bytes()
    # a program built against the installed copy
    subprocess.run(["gcc", "-O2", "-static", "-I", str(tmp_path / "sdk"), "-o", str(tmp_path / "fig4"),
                    str(SRC / "fig4.c"), str(tmp_path / "sdk" / "libmvhrt.a")], check=True)
    assert subprocess.run([str(tmp_path / "fig4")], capture_output=True).stdout == \
        f"Result = {-ENOSYS % (1 << 64):#x} (CPL 3)\n".encode()


def _check_lines(native: list[str], under: list[str], invoke: bool) -> None:
    """sdk_check's lines: the same names in the same order; natively every AeroKernel call is
    unavailable; under mvemu every check holds."""
    assert [ln.split(":")[0] for ln in native] == [ln.split(":")[0] for ln in under], (native, under)
    got = dict(ln.split(": ", 1) for ln in under if ": " in ln)
    native_d = dict(ln.split(": ", 1) for ln in native if ": " in ln)
    assert native_d["cpl"] == "3" and native_d["in the HRT"] == "no"
    assert all(v == "unavailable (ENOSYS)" for k, v in native_d.items() if k not in ("cpl", "in the HRT"))
    assert native[-1] == under[-1] == "hrt_invoke_func returned 7"
    assert got["cpl"] == "0" and got["in the HRT"] == "yes"
    assert got["cr0"] == "PE yes, WP yes, PG yes"
    assert got["cr3 page-aligned and not 0"] == "yes" and got["cr4.PAE"] == "yes"
    assert got["cpu id"] == "0"                                  # one HRT vCPU by default
    assert got["interrupts"] == "off yes, restored yes"
    assert got["physical page"] == ("page-aligned yes, zeroed yes, writable yes, freed yes, "
                                    "free memory 4 KiB less meanwhile yes")
    assert got["in another thread than main"] == ("yes" if invoke else "no")


@pytest.mark.parametrize("name", ["sdk_check.glibc", "sdk_check.musl", "sdk_check.pie"])
def test_sdk_privileged_results(name, pieces, tmp_path, capsys):
    """A program built against the SDK runs a function with hrt_invoke_func and checks privileged
    results: ring 0, CR0.WP, CR3, CR4.PAE, interrupts off and on, a physical page. Until the runtime
    has mv_invoke_func, hrt_invoke_func runs the function in main's own HRT thread."""
    out = fat(capsys, OVR / name, tmp_path / "fat")
    native, under = run_both(out, ("7",), tmp_path / "work", native_prog=OVR / name)
    assert (native.status, native.stderr, under.status, under.stderr) == (0, b"", 0, b""), under.stderr
    fat_native = harness.run_native(Case(str(out), ("7",)), tmp_path / "w2")
    assert fat_native.stdout == native.stdout
    _check_lines(lines(native), lines(under), invoke="mv_invoke_func" in load_runtime().functions
                 and any(o.function == "hrt_invoke_func" and o.enabled for o in ov.load_config(ov.DEFAULT_CONFIG)))


def test_sdk_invoke_func_in_new_hrt_thread(pieces, tmp_path):
    """With mv_invoke_func, hrt_invoke_func runs the function in another HRT thread than main's."""
    runtime, image = pieces
    config = ov.parse_config(with_enabled(ov.DEFAULT_CONFIG.read_text()))
    out = tmp_path / "fat"
    out.write_bytes(hybridize((OVR / "sdk_check.glibc").read_bytes(), runtime, image, config))
    out.chmod(0o755)
    native, under = run_both(out, ("7",), tmp_path / "work", native_prog=OVR / "sdk_check.glibc")
    assert under.status == 0, under.stderr
    _check_lines(lines(native), lines(under), invoke=True)


def _result_line(line: str) -> tuple[int, int]:
    m = re.fullmatch(r"Result = (0x[0-9a-f]+) \(CPL (\d)\)", line)
    assert m, line
    return int(m.group(1), 16), int(m.group(2))


@pytest.mark.parametrize("name", ["fig4.glibc", "fig4.musl"])
def test_fig4(name, pieces, tmp_path, capsys):
    """The paper's Fig. 4: natively the AeroKernel call is -ENOSYS in ring 3; under mvemu it is CR0
    (PE, WP, PG) in ring 0."""
    out = fat(capsys, OVR / name, tmp_path / "fat")
    native, under = run_both(out, (), tmp_path / "work", native_prog=OVR / name)
    assert [_result_line(ln) for ln in lines(native)] == [(-ENOSYS % (1 << 64), 3)]
    assert (native.status, under.status, under.stderr) == (0, 0, b""), under.stderr
    [(cr0, cpl)] = [_result_line(ln) for ln in lines(under)]
    assert cpl == 0 and cr0 & (CR0_PE | CR0_WP | CR0_PG) == CR0_PE | CR0_WP | CR0_PG, hex(cr0)


@pytest.mark.parametrize("name", ["fig5.glibc", "fig5.musl"])
def test_fig5_natively(name, pieces, tmp_path, capsys):
    """The paper's Fig. 5 as a fat binary run natively: the original pthread_create, ring 3."""
    out = fat(capsys, OVR / name, tmp_path / "fat")
    original = subprocess.run([str(OVR / name)], capture_output=True)
    fat_native = subprocess.run([str(out)], capture_output=True)
    assert (fat_native.stdout, fat_native.returncode) == (original.stdout, original.returncode)
    assert [_result_line(ln) for ln in original.stdout.decode().splitlines()] == [(-ENOSYS % (1 << 64), 3)]


@pytest.mark.parametrize("name", ["fig5.glibc", "fig5.musl"])
def test_fig5_under_mvemu(name, pieces, tmp_path):
    """With mv_pthread_create, routine runs in a new HRT thread: ring 0, CR0 with PE, WP and PG."""
    runtime, image = pieces
    config = ov.parse_config(with_enabled(ov.DEFAULT_CONFIG.read_text()))
    out = tmp_path / "fat"
    out.write_bytes(hybridize((OVR / name).read_bytes(), runtime, image, config))
    out.chmod(0o755)
    under = harness.run_mvemu(Case(str(out)), tmp_path / "work")
    assert under.status == 0, under.stderr
    [(cr0, cpl)] = [_result_line(ln) for ln in lines(under)]
    assert cpl == 0 and cr0 & (CR0_PE | CR0_WP | CR0_PG) == CR0_PE | CR0_WP | CR0_PG, hex(cr0)


# -- --info and the note ------------------------------------------------------------------------------------
def test_info_without_overrides(pieces, tmp_path, capsys):
    out = fat(capsys, BUILD / "hello.glibc", tmp_path / "fat")
    status, info, _ = hybridize_cli(capsys, "--info", out)
    assert status == 0 and info.rstrip().endswith("overrides           none")


def test_damaged_overrides_note(pieces, tmp_path, capsys):
    out = fat(capsys, OVR / "override_demo.glibc", tmp_path / "fat", "--overrides", DEMO_CONFIG)
    data = bytearray(out.read_bytes())
    at = data.index(b"platform_cr0\t")
    data[at + len("platform_cr0")] = ord(" ")                  # one field fewer
    (tmp_path / "bad").write_bytes(data)
    status, _, err = hybridize_cli(capsys, "--info", tmp_path / "bad")
    assert_one_error_line(status, err, expect_status=1, mentions=("overrides note",))


def test_overrides_section_and_note(pieces, tmp_path, capsys):
    out = fat(capsys, OVR / "override_demo.glibc", tmp_path / "fat", "--overrides", DEMO_CONFIG)
    sections = subprocess.run(["readelf", "-SW", str(out)], capture_output=True, text=True).stdout
    assert ".multiverse.overrides" in sections
    notes = subprocess.run(["readelf", "-nW", str(out)], capture_output=True, text=True)
    assert notes.stderr == "" and "Unknown note type: (0x00004d4f)" in notes.stdout
    applied = applied_overrides(Elf(out.read_bytes()))
    symbols = {s.name: s.value for s in ov.symbol_table(Elf((OVR / "override_demo.glibc").read_bytes()))}
    assert [(a.function, a.address) for a in applied] == [("platform_cr0", symbols["platform_cr0"]),
                                                          ("scaled", symbols["scaled"])]
    # objdump sees the redirecting jump at each function
    for a in applied:
        d = subprocess.run(["objdump", "-d", f"--start-address={a.address:#x}", f"--stop-address={a.address + 5:#x}",
                            str(out)], capture_output=True, text=True).stdout
        assert re.search(rf"jmp\s+{a.wrapper:x}", d), d


# -- nested HRT threads (paper III-D) ----------------------------------------------------------------------
NESTED_RUNS = 4


@pytest.mark.parametrize("name", ["nested.glibc", "nested.musl"])
def test_sdk_nested_threads_share_their_creators_partner(name, pieces, tmp_path, capsys):
    """nested (guest_images/src/overrides/nested.c): main, in the HRT, starts nested threads with
    hrt_thread_create. They run in ring 0 in main's execution group: every system call and page
    fault goes through main's partner (gettid answers main's partner's id), one event at a time;
    hrt_thread_join returns what each function returned. Natively the SDK says ENOSYS and main runs
    the functions itself: every line about a thread must be the same. Run on one and two HRT vCPUs,
    repeatedly (the channel is contended)."""
    out = fat(capsys, OVR / name, tmp_path / "fat")
    native = harness.run_native(Case(str(OVR / name), ("4", "60")), tmp_path / "native")
    assert native.status == 0, native.stderr
    want = lines(native)
    assert want[0] == "nested HRT threads: unavailable (ENOSYS), each function runs in main"
    for i in range(NESTED_RUNS):
        case = Case(str(out), ("4", "60"), mvemu_options=("--hrt-cpus", str(1 + i % 2), "--stats"))
        under = harness.run_mvemu(case, tmp_path / f"run{i}")
        got = lines(under)
        assert under.status == 0, under.stderr.decode()
        assert got[0] == "nested HRT threads: 4, AeroKernel ids distinct from each other and main's: yes"
        assert got[1:5] == want[1:5], f"run {i}:\n" + "\n".join(got)
        assert got[5:] == ["join of an unknown thread: -3"]          # -ESRCH
        assert re.search(rb"HRT threads created +5 \(4 nested\)", under.stderr), under.stderr.decode()


def test_nested_threads_in_the_trace(pieces, tmp_path, capsys):
    """--trace shows each nested thread with its creator and the partner it shares, and their
    forwarded calls under their own thread ids."""
    out = fat(capsys, OVR / "nested.glibc", tmp_path / "fat")
    under = harness.run_mvemu(Case(str(out), ("2", "3"), mvemu_options=("--trace",)), tmp_path / "run")
    assert under.status == 0, under.stderr.decode()
    err = under.stderr.decode()
    created = re.findall(r"\[hvm\] HRT thread (\d+) created on HRT vCPU \d by HRT thread 1: nested, in its "
                         r"execution group \(partner (\d+), channel (0x[0-9a-f]+)", err)
    assert len(created) == 2 and len({p for _, p, _ in created}) == 1, err
    main = re.search(r"HRT thread 1 created on HRT vCPU 0: .* \(superposed from partner (\d+)\), channel (0x[0-9a-f]+)", err)
    assert main and all((p, c) == main.groups() for _, p, c in created)
    for tid, _, _ in created:
        assert re.search(rf"forwarded syscall getppid\(.*\(HRT vCPU \d, thread {tid},", err), tid
