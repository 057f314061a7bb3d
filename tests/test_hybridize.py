"""`mvemu hybridize` (toolchain/): static programs in, fat binaries out.

Every guest image is hybridized and its fat binary must behave like the original, natively (the
runtime finds no /dev/hvm and calls main) and under mvemu (today hybrid.c is a stub, so main runs
in the ROS; once split execution lands it runs in the HRT, and the same oracle holds). The output's
program headers are checked with readelf, the trusted tool. Then --info, determinism, every
refusal, and truncated or damaged inputs (one clean line or a working output, never a traceback).
"""
from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import stat
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import harness
from harness import BUILD, REPO, Case
from hvm import abi, cli
from test_cli import assert_one_error_line
from test_differential import ALL_CASES
from toolchain.elf import PROGRAM_HEADER, PT_PHDR, Elf, Segment
from toolchain.hybridize import hybridize
from toolchain.pieces import AEROKERNEL_ELF, load_aerokernel, load_runtime

PT_GNU_RELRO = 0x6474E552
HVM_CLIENTS = ("hvm_client.glibc", "hvm_client.musl")    # need /dev/hvm: no native twin of a mvemu run


def _first_cases() -> dict[str, Case]:
    """One differential case per image (the first one that is expected to pass): its arguments,
    stdin, environment and files."""
    cases = {}
    for param in ALL_CASES:
        case = param.values[0]
        if not param.marks:
            cases.setdefault(os.path.basename(case.prog), case)
    for name in HVM_CLIENTS:
        cases[name] = Case(str(BUILD / name))
    return cases


CASES = _first_cases()


@pytest.fixture(scope="session")
def pieces(images):
    """The runtime and the AeroKernel, built by their makefiles."""
    for d in ("aerokernel", "toolchain/runtime"):
        r = subprocess.run(["make", "-s", "-C", str(REPO / d)], capture_output=True, text=True)
        assert r.returncode == 0, f"make -C {d} failed:\n{r.stdout}{r.stderr}"
    return load_runtime(), load_aerokernel()


def fat_of(path: Path, pieces, out: Path, overrides=()) -> Path:
    """`path` hybridized into `out`: without function overrides (threads are forwarded clones that
    run in the ROS) unless `overrides` is given (default_overrides(): pthread_create makes HRT
    threads, as `mvemu hybridize` does)."""
    out.write_bytes(hybridize(path.read_bytes(), *pieces, list(overrides)))
    out.chmod(0o755)
    return out


def default_overrides():
    from toolchain import overrides as ov
    return ov.load_config(ov.DEFAULT_CONFIG)


def mvemu_hybridize(capsys, *argv) -> tuple[int, str, str]:
    """`mvemu hybridize ARGV...` in this process: (status, stdout, stderr)."""
    status = cli.main(["hybridize", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- every image: the fat binary behaves like the original ---------------------------------------
def _runs(case: Case, original: Path, fat: Path, tmp: Path) -> dict:
    """The original natively, then the fat binary natively and under mvemu (and for the HVM clients
    the original under mvemu, their oracle), all started through one symlink so that argv[0] is
    the same."""
    link, work = tmp / "bin" / original.name, tmp / "work"
    link.parent.mkdir()
    case = dataclasses.replace(case, prog=str(link))
    link.symlink_to(original)
    runs = {"original": harness.run_native(case, work)}
    if original.name in HVM_CLIENTS:
        runs["original under mvemu"] = harness.run_mvemu(case, work)
    link.unlink()
    link.symlink_to(fat)
    runs["fat"] = harness.run_native(case, work)
    runs["fat under mvemu"] = harness.run_mvemu(case, work)
    harness._wipe(work)
    return runs


@pytest.fixture(scope="session")
def image_runs(pieces, mvemu_importable, tmp_path_factory):
    """Every image's runs, started together: they mostly wait on subprocesses (signals sleeps four
    seconds per run), so a few at a time keep this file well under a minute. Every fat binary is
    written before the first fork (a child forked while another thread writes an executable holds
    it open for writing, and running it fails with ETXTBSY)."""
    fats = tmp_path_factory.mktemp("fat")
    for name in CASES:
        fat_of(BUILD / name, pieces, fats / name)
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {name: pool.submit(_runs, case, BUILD / name, fats / name, tmp_path_factory.mktemp(name))
               for name, case in CASES.items()}


def _same_run(what: str, a: harness.Result, b: harness.Result) -> list[str]:
    problems = [harness.bytes_diff(f"{what}: {field}", getattr(a, field), getattr(b, field))
                for field in ("stdout", "stderr") if getattr(a, field) != getattr(b, field)]
    if a.status != b.status:
        problems.append(f"{what}: exit status {a.status}, then {b.status}")
    if a.files != b.files:
        problems.append(f"{what}: " + harness.files_diff(a.files, b.files))
    return problems


@pytest.mark.parametrize("name", sorted(CASES))
def test_fat_binary_behaves_like_the_original(name, image_runs):
    runs = image_runs[name].result()
    case = CASES[name]
    problems = _same_run("native: original, then fat binary", runs["original"], runs["fat"])
    if name in HVM_CLIENTS:
        problems += _same_run("under mvemu: original, then fat binary", runs["original under mvemu"],
                              runs["fat under mvemu"])
    else:
        problems += harness.compare(case, runs["original"], runs["fat under mvemu"])
    assert not problems, f"{case.id}:\n\n" + "\n\n".join(problems)


def test_every_image_is_hybridized(images):
    built = {p.name for p in images.iterdir() if p.is_file() and os.access(p, os.X_OK)}
    assert built - set(CASES) == set(), f"images without a hybridize case: {sorted(built - set(CASES))}"


# -- the output's layout, as readelf sees it ------------------------------------------------------
def readelf_segments(path: Path) -> tuple[int, list[dict], str]:
    """(e_phoff, program headers, section-to-segment mapping) from `readelf -lW`, which must not warn."""
    r = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    phoff = int(re.search(r"starting at offset (\d+)", r.stdout).group(1))
    rows = re.findall(r"^\s+([A-Z_]+)\s+(0x\w+) (0x\w+) (0x\w+) (0x\w+) (0x\w+) (.{3}) (0x\w+)$", r.stdout, re.M)
    headers = [dict(type=t, offset=int(o, 16), vaddr=int(v, 16), filesz=int(fs, 16), memsz=int(ms, 16),
                    flags=f.strip(), align=int(a, 16)) for t, o, v, _p, fs, ms, f, a in rows]
    return phoff, headers, r.stdout.split("Section to Segment mapping:")[1]


def check_layout(original: Path, fat: Path) -> None:
    _, before, _ = readelf_segments(original)
    phoff, after, mapping = readelf_segments(fat)
    loads = [h for h in after if h["type"] == "LOAD"]
    new, note = loads[-1], after[-1]
    assert note["type"] == "NOTE"
    kept = [h for h in after if h is not new and h is not note]
    assert [h for h in kept if h["type"] != "PHDR"] == [h for h in before if h["type"] != "PHDR"], "all else kept"
    assert new["flags"] == "R E" and new["align"] == 0x1000 and new["filesz"] == new["memsz"]
    assert new["offset"] == phoff and new["offset"] % 0x1000 == 0, "the program headers start the new segment"
    assert new["vaddr"] - new["offset"] == loads[0]["vaddr"] - loads[0]["offset"], "placed congruently"
    assert new["vaddr"] >= max(h["vaddr"] + h["memsz"] for h in loads[:-1]), "above every other segment"
    assert new["offset"] >= original.stat().st_size, "after every byte of the original"
    assert new["offset"] <= note["offset"] and note["offset"] + note["filesz"] <= new["offset"] + new["filesz"]
    for h in after:
        if h["type"] == "PHDR":
            assert (h["offset"], h["filesz"]) == (phoff, len(after) * PROGRAM_HEADER.size)
            assert h["vaddr"] == new["vaddr"]
    assert ".multiverse.runtime .multiverse.aerokernel .note.multiverse" in mapping
    r = subprocess.run(["readelf", "-nW", str(fat)], capture_output=True, text=True)
    assert re.search(rf"{abi.FAT_NOTE_NAME}\s+0x00000038\s+Unknown note type: \(0x0000{abi.FAT_NOTE_TYPE:04x}\)",
                     r.stdout), r.stdout


@pytest.mark.parametrize("name", ["hello.glibc", "hello.musl", "hello.pie", "busybox"])
def test_program_headers(name, pieces, tmp_path):
    check_layout(BUILD / name, fat_of(BUILD / name, pieces, tmp_path / "fat"))


def _with_pt_phdr(data: bytes) -> bytes:
    """The program with a PT_PHDR (first, as the gABI wants) in place of its PT_GNU_RELRO."""
    elf = Elf(data)
    first = elf.loads[0]
    size = len(elf.segments) * PROGRAM_HEADER.size
    address = first.vaddr - first.offset + elf.header.phoff
    phdr = Segment(PT_PHDR, 4, elf.header.phoff, address, address, size, size, 8)
    headers = [phdr] + [s for s in elf.segments if s.type != PT_GNU_RELRO]
    assert len(headers) == len(elf.segments)
    out = bytearray(data)
    out[elf.header.phoff:elf.header.phoff + size] = b"".join(h.pack() for h in headers)
    return bytes(out)


TLS_PROGRAM = r"""
#include <stdio.h>
__thread int counter = 42;
__thread char tag[8] = "tls-ok";
int main(void) { printf("%s %d\n", tag, counter++); return counter; }
"""


def test_pt_phdr_follows_the_table(pieces, tmp_path, mvemu_importable):
    """musl finds its TLS image through PT_PHDR (base = AT_PHDR - PT_PHDR.p_vaddr): with a stale
    PT_PHDR the initialised thread-locals would be read from the wrong place."""
    src = tmp_path / "tls.c"
    src.write_text(TLS_PROGRAM)
    subprocess.run(["musl-gcc", "-static", "-O1", "-o", str(tmp_path / "tls"), str(src)], check=True)
    original = tmp_path / "tls.phdr"
    original.write_bytes(_with_pt_phdr((tmp_path / "tls").read_bytes()))
    original.chmod(0o755)
    expected = subprocess.run([str(original)], capture_output=True)
    assert (expected.returncode, expected.stdout) == (43, b"tls-ok 42\n")
    fat = fat_of(original, pieces, tmp_path / "tls.fat")
    check_layout(original, fat)
    assert subprocess.run([str(fat)], capture_output=True).stdout == expected.stdout
    under = subprocess.run(harness.mvemu_command(str(fat), []), capture_output=True)
    assert (under.returncode, under.stdout, under.stderr) == (43, expected.stdout, b"")


# -- _start: the ways main's address reaches __libc_start_main -------------------------------------
START = """
    .text
    .globl alt_start
alt_start:
    xor %ebp, %ebp
    mov %rdx, %r9
    pop %rsi
    mov %rsp, %rdx
    and $-16, %rsp
    push %rax
    push %rsp
    xor %r8d, %r8d
    xor %ecx, %ecx
    {load}
    {branch}
    hlt
"""
PROGRAM = r"""
#include <stdio.h>
int __libc_start_main();
int not_libc_start_main(void) { return __libc_start_main(); }
int main(int argc, char **argv) { printf("main of %s with %d arguments\n", argv[1], argc); return 7; }
"""
START_VARIANTS = {
    "mov $main, %rdi": ("mov $main, %rdi", "call __libc_start_main"),
    "mov $main, %edi": ("mov $main, %edi", "call __libc_start_main"),
    "movabs $main, %rdi": ("movabs $main, %rdi", "call __libc_start_main"),
    "lea main(%rip), %rdi": ("lea main(%rip), %rdi", "call __libc_start_main"),
    "jmp __libc_start_main": ("mov $main, %rdi", "push $0; jmp __libc_start_main"),
}


def build_with_start(tmp_path: Path, load: str, branch: str) -> Path:
    (tmp_path / "start.S").write_text(START.format(load=load, branch=branch))
    (tmp_path / "prog.c").write_text(PROGRAM)
    out = tmp_path / "prog"
    subprocess.run(["gcc", "-static", "-O1", "-Wl,-e,alt_start", "-o", str(out), str(tmp_path / "prog.c"),
                    str(tmp_path / "start.S")], check=True)
    return out


@pytest.mark.parametrize("variant", START_VARIANTS)
def test_start_variants(variant, pieces, tmp_path, mvemu_importable):
    prog = build_with_start(tmp_path, *START_VARIANTS[variant])
    expected = subprocess.run([str(prog), "x"], capture_output=True)
    assert (expected.returncode, expected.stdout) == (7, b"main of x with 2 arguments\n")
    fat = fat_of(prog, pieces, tmp_path / "fat")
    assert subprocess.run([str(fat), "x"], capture_output=True).stdout == expected.stdout
    under = subprocess.run(harness.mvemu_command(str(fat), ["x"]), capture_output=True)
    assert (under.returncode, under.stdout) == (7, expected.stdout)


@pytest.mark.parametrize("load, branch, message", [
    ("lea main(%rip), %rax; mov %rax, %rdi", "call __libc_start_main", "RDI gets `mov rdi, rax`"),
    ("mov $main, %rdi", "call not_libc_start_main", "but __libc_start_main is at"),
    ("mov $main, %rdi", "test %rax, %rax; je alt_start; call __libc_start_main", "reaches `je"),
    ("mov $60, %eax; xor %edi, %edi; syscall", "", "no call to __libc_start_main"),
], ids=["via another register", "not __libc_start_main", "a branch first", "no call"])
def test_start_pattern_missing(load, branch, message, pieces, tmp_path, capsys):
    prog = build_with_start(tmp_path, load, branch)
    status, out, err = mvemu_hybridize(capsys, prog, "-o", tmp_path / "fat")
    assert_one_error_line(status, err, expect_status=1, mentions=("hybridize", message))
    assert not (tmp_path / "fat").exists()


def test_main_symbol_cross_check(pieces, tmp_path, capsys):
    """A stripped-looking pattern that disagrees with the symbol table is refused."""
    data = bytearray((BUILD / "hello.glibc").read_bytes())
    main = Elf(bytes(data)).symbols("main")["main"]
    at = data.index(b"\x48\xc7\xc7" + struct.pack("<I", main))          # mov $main, %rdi in _start
    data[at + 3:at + 7] = struct.pack("<I", main + 16)
    (tmp_path / "prog").write_bytes(data)
    status, _, err = mvemu_hybridize(capsys, tmp_path / "prog", "-o", tmp_path / "fat")
    assert_one_error_line(status, err, expect_status=1, mentions=(f"but main is at {main:#x}",))


# -- --info, determinism, the file written --------------------------------------------------------
def test_info(pieces, tmp_path, capsys):
    fat = fat_of(BUILD / "hello.pie", pieces, tmp_path / "fat")
    status, out, err = mvemu_hybridize(capsys, "--info", fat)
    assert (status, err) == (0, "")
    main = Elf((BUILD / "hello.pie").read_bytes()).symbols("main")["main"]
    image = Elf(AEROKERNEL_ELF.read_bytes())
    assert f"original main       {main:#x}" in out
    assert re.search(r"runtime entry +0x\w+ \(mv_main", out)
    assert re.search(r"new segment +LOAD offset 0x\w+ vaddr 0x\w+ size 0x\w+ R E", out)
    assert f"{AEROKERNEL_ELF.stat().st_size} bytes, entry {image.entry:#x}" in out
    assert f"magic {abi.FAT_CONFIG_MAGIC:#x}, version {abi.FAT_VERSION}" in out


def test_info_on_other_files(tmp_path, capsys):
    status, out, err = mvemu_hybridize(capsys, "--info", BUILD / "hello.glibc")
    assert (status, err) == (1, "") and "not a fat binary" in out
    (tmp_path / "text").write_text("hello\n")
    status, out, err = mvemu_hybridize(capsys, "--info", tmp_path / "text")
    assert_one_error_line(status, err, expect_status=1, mentions=("not an ELF file",))


def test_info_on_a_damaged_fat_binary(pieces, tmp_path, capsys):
    data = bytearray(hybridize((BUILD / "hello.musl").read_bytes(), *pieces))
    at = data.index(struct.pack("<Q", abi.FAT_CONFIG_MAGIC))
    data[at] ^= 0xFF
    (tmp_path / "fat").write_bytes(data)
    status, out, err = mvemu_hybridize(capsys, "--info", tmp_path / "fat")
    assert_one_error_line(status, err, expect_status=1, mentions=("damaged fat binary", "magic"))


def test_deterministic_and_executable(pieces, tmp_path, capsys):
    old = os.umask(0o077)
    try:
        for out in ("a", "b"):
            assert mvemu_hybridize(capsys, BUILD / "hello.musl", "-o", tmp_path / out) == (0, "", "")
    finally:
        os.umask(old)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"], "no temporary file left behind"


def test_other_aerokernel(pieces, tmp_path, capsys):
    """--aerokernel embeds another image (any x86-64 ET_EXEC)."""
    other = BUILD / "hello.musl"
    assert mvemu_hybridize(capsys, BUILD / "hello.glibc", "-o", tmp_path / "fat", "--aerokernel", other) == (0, "", "")
    status, out, _ = mvemu_hybridize(capsys, "--info", tmp_path / "fat")
    assert status == 0 and f"{other.stat().st_size} bytes, entry {Elf(other.read_bytes()).entry:#x}" in out
    status, _, err = mvemu_hybridize(capsys, BUILD / "hello.glibc", "-o", tmp_path / "x",
                                     "--aerokernel", tmp_path / "no")
    assert_one_error_line(status, err, expect_status=1, mentions=("no AeroKernel image",))


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["hybridize", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for words in ("fat binary", "examples:", "--info", "-o OUT", "--aerokernel", "readelf -lW"):
        assert words in out


# -- refusals ------------------------------------------------------------------------------------
def _compile(tmp_path: Path, source: str, *flags: str) -> Path:
    (tmp_path / "p.c").write_text(source)
    out = tmp_path / ("p.o" if "-c" in flags else "p")
    subprocess.run(["gcc", "-O1", *flags, "-o", str(out), str(tmp_path / "p.c")], check=True)
    return out


def _elf32(tmp_path: Path) -> Path:
    header = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01" + bytes(9), 2, 3, 1, 0x8048000, 52, 0, 0,
                         52, 32, 0, 40, 0, 0)
    (tmp_path / "p").write_bytes(header)
    return tmp_path / "p"


def _with_machine(tmp_path: Path, machine: int) -> Path:
    data = bytearray((BUILD / "hello.glibc").read_bytes())
    data[18:20] = struct.pack("<H", machine)
    (tmp_path / "p").write_bytes(data)
    return tmp_path / "p"


def _text(tmp_path: Path) -> Path:
    (tmp_path / "p").write_text("#!/bin/sh\necho hi\n")
    return tmp_path / "p"


def _fat(tmp_path: Path) -> Path:
    return fat_of(BUILD / "hello.musl", (load_runtime(), load_aerokernel()), tmp_path / "p")


@pytest.mark.parametrize("make, words", [
    (_text, "not an ELF file"),
    (_elf32, "32-bit"),
    (lambda t: _with_machine(t, 183), "an ELF for AArch64"),
    (lambda t: _compile(t, "int main(void) { return 0; }"), "dynamically linked"),
    (lambda t: _compile(t, "int f(void) { return 0; }", "-c"), "object file"),
    (lambda t: _compile(t, "int f(void) { return 0; }", "-shared", "-fPIC"), "shared library"),
    (_fat, "already a fat binary"),
    (lambda t: _compile(t, "char big[300 << 20]; int main(void) { return big[7]; }", "-static"),
     "padding"),
    (lambda t: t / "missing", "No such file"),
    (lambda t: t, "Is a directory"),
], ids=["text", "32-bit", "aarch64", "dynamic", "object", "shared library", "fat", "huge bss", "missing",
        "directory"])
def test_refused(make, words, pieces, tmp_path, capsys):
    work = tmp_path / "in"
    work.mkdir()
    program = make(work)
    status, out, err = mvemu_hybridize(capsys, program, "-o", tmp_path / "out")
    assert out == ""
    assert_one_error_line(status, err, expect_status=1, mentions=("hybridize:", words))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, words", [
    (("{prog}",), "-o OUT is required"),
    (("{prog}", "-o", "{prog}"), "not {prog} itself"),
    (("--info", "{prog}", "-o", "x"), "--info takes only"),
    (("{prog}", "-o", "x", "--bogus"), "unrecognized arguments"),
    ((), "required: PROGRAM"),
], ids=["no -o", "output is input", "--info with -o", "unknown option", "no program"])
def test_bad_command_line(argv, words, tmp_path, capsys):
    prog = tmp_path / "prog"
    shutil.copy(BUILD / "hello.musl", prog)
    argv = [a.format(prog=prog) for a in argv]
    status, out, err = mvemu_hybridize(capsys, *argv)
    assert_one_error_line(status, err, expect_status=2, mentions=("mvemu: hybridize:", words.format(prog=prog)))


# -- damaged inputs --------------------------------------------------------------------------------
def _damaged_variants(data: bytes) -> list[tuple[str, bytes]]:
    elf = Elf(data)
    table_end = elf.header.phoff + elf.header.phnum * PROGRAM_HEADER.size
    start = elf.file_offset(elf.entry)
    out = [(f"truncated to {n}", data[:n]) for n in
           (0, 3, 4, 5, 17, 63, 64, 100, table_end - 1, table_end, start + 5, len(data) // 2, len(data) - 1)]
    rng = random.Random(2024)
    regions = {"header": (0, 64), "program headers": (64, table_end), "_start": (start, start + 64),
               "section headers": (elf.header.shoff, len(data))}
    for region, (lo, hi) in regions.items():
        for _ in range(25):
            damaged = bytearray(data)
            at = rng.randrange(lo, hi)
            damaged[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
            out.append((f"{region}: byte {at:#x} changed", bytes(damaged)))
    return out


def _native(path: Path):
    """What running `path x` does: (status, stdout), or the errno if it cannot be executed."""
    try:
        r = subprocess.run([str(path), "x"], capture_output=True, timeout=10)
    except OSError as e:
        return e.errno
    return r.returncode, r.stdout


def test_damaged_inputs(pieces, tmp_path, capsys):
    """Truncated files and changed bytes: a clean refusal (one line, status 1) or a fat binary that
    behaves like the damaged program it came from. Never a traceback or an internal error."""
    refused = worked = 0
    for what, data in _damaged_variants((BUILD / "hello.musl").read_bytes()):
        src, out = tmp_path / "prog", tmp_path / "fat"
        src.write_bytes(data)
        src.chmod(0o755)
        out.unlink(missing_ok=True)
        status, stdout, err = mvemu_hybridize(capsys, src, "-o", out)
        if status == 1:
            line = assert_one_error_line(status, err, expect_status=1, mentions=("hybridize:",))
            assert "internal error" not in line, f"{what}: {line}"
            refused += 1
            continue
        assert (status, stdout, err) == (0, "", ""), f"{what}: status {status}: {err}"
        assert _native(out) == _native(src), what
        worked += 1
    assert refused > 10 and worked > 10, (refused, worked)


def test_info_on_damaged_fat_binaries(pieces, tmp_path, capsys):
    """--info on truncated fat binaries and on changed bytes in what hybridize added: a description
    or one clean line."""
    data = hybridize((BUILD / "hello.musl").read_bytes(), *pieces)
    segment = Elf(data).loads[-1]
    rng = random.Random(7)
    variants = [data[:n] for n in range(segment.offset, len(data), 4999)]
    for _ in range(60):
        damaged = bytearray(data)
        damaged[rng.randrange(segment.offset, segment.offset + 0x300)] ^= rng.randrange(1, 256)
        variants.append(bytes(damaged))
    outcomes = set()
    for damaged in variants:
        (tmp_path / "fat").write_bytes(damaged)
        status, out, err = mvemu_hybridize(capsys, "--info", tmp_path / "fat")
        if status == 1 and err:
            line = assert_one_error_line(status, err, expect_status=1, mentions=("hybridize:",))
            assert "internal error" not in line
        else:
            assert status in (0, 1) and err == "" and "fat binary" in out
        outcomes.add(status)
    assert outcomes == {0, 1}


# -- HRT pthreads, repeatedly ---------------------------------------------------------------------
THREAD_RUNS = 20


@pytest.mark.parametrize("name", ["threads.glibc", "threads.musl"])
def test_hrt_pthreads_repeatedly(name, pieces, tmp_path):
    """With the default overrides, pthread_create in the HRT makes HRT threads partnered by ROS
    threads (docs/overrides.md): the threads image (mutex, condvar, barrier, atomics, TLS, many
    short threads, a spin on a flag) gives the native output every time, on one HRT vCPU and on
    two (threads interleave differently)."""
    from toolchain import overrides as ov
    runtime, image = pieces
    fat = tmp_path / name
    fat.write_bytes(hybridize((BUILD / name).read_bytes(), runtime, image, ov.load_config(ov.DEFAULT_CONFIG)))
    fat.chmod(0o755)
    case = CASES[name]
    native = harness.run_native(case, tmp_path / "native")

    def one(i: int) -> harness.Result:
        c = dataclasses.replace(case, prog=str(fat),
                                mvemu_options=(*case.mvemu_options, "--hrt-cpus", str(1 + i % 2)))
        return harness.run_mvemu(c, tmp_path / f"run{i}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, range(THREAD_RUNS)))
    bad = [(i, r) for i, r in enumerate(results) if harness.compare(case, native, r)]
    assert not bad, f"{len(bad)} of {THREAD_RUNS} runs differ; first:\n" + \
        "\n".join(harness.compare(case, native, bad[0][1]))
