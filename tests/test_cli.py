"""The `mvemu` command line: user mistakes end with one clear `mvemu:` line and a non-zero status,
never a Python traceback; --help, --trace and the reporting of unimplemented system calls."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from harness import BASE_ENV, BUILD, mvemu_command


def mvemu(*argv, cwd=None, env=None, stdin=None, timeout=60):
    """Run `python -m hvm ARGV...`; returns (status, stdout bytes, stderr text)."""
    p = subprocess.run([sys.executable, "-m", "hvm", *argv], cwd=cwd, env=env or dict(BASE_ENV),
                       input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def assert_one_error_line(status, stderr, *, expect_status=None, mentions=()):
    """A user mistake: non-zero status, exactly one `mvemu:` line (the last one), no traceback."""
    assert "Traceback" not in stderr, f"Python traceback on stderr:\n{stderr}"
    assert status != 0, f"status 0 for a user mistake; stderr:\n{stderr}"
    if expect_status is not None:
        assert status == expect_status, f"status {status}, expected {expect_status}; stderr:\n{stderr}"
    lines = stderr.splitlines()
    ours = [ln for ln in lines if ln.startswith("mvemu:")]
    assert len(ours) == 1, f"expected exactly one 'mvemu:' line, got {len(ours)}:\n{stderr}"
    assert lines[-1] == ours[0], f"the 'mvemu:' line should be the last line of stderr:\n{stderr}"
    for word in mentions:
        assert word.lower() in ours[0].lower(), f"{ours[0]!r} does not mention {word!r}"
    return ours[0]


# -- programs that cannot run ---------------------------------------------------------------------
def test_missing_file(tmp_path, mvemu_importable):
    status, out, err = mvemu("run", str(tmp_path / "no-such-program"), cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=127, mentions=("no-such-program", "No such file"))


def test_missing_name_not_in_path(tmp_path, mvemu_importable):
    status, out, err = mvemu("run", "no-such-program-xyz", cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=127, mentions=("no-such-program-xyz",))


def test_directory(tmp_path, mvemu_importable):
    status, _, err = mvemu("run", str(tmp_path), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126, mentions=("directory",))


def test_text_file(tmp_path, mvemu_importable):
    f = tmp_path / "notes.txt"
    f.write_text("just some text\nwith lines\n")
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126, mentions=("notes.txt",))


def test_shell_script(tmp_path, mvemu_importable):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(0o755)
    status, out, err = mvemu("run", str(f), cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=126, mentions=("script.sh",))


def test_binary_blob(tmp_path, mvemu_importable):
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 16)
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126, mentions=("ELF",))


def test_empty_file(tmp_path, mvemu_importable):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126)


def test_truncated_elf(tmp_path, images, mvemu_importable):
    f = tmp_path / "truncated"
    f.write_bytes((images / "hello.glibc").read_bytes()[:100])
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126)


def test_dynamically_linked(tmp_path, mvemu_importable):
    src = tmp_path / "dyn.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("dynamic"); return 0; }\n')
    exe = tmp_path / "dyn"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    assert subprocess.run([str(exe)], capture_output=True).stdout == b"dynamic\n"
    status, out, err = mvemu("run", str(exe), cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=126, mentions=("dynamic", "static"))


def test_32bit_elf(tmp_path, mvemu_importable):
    src = tmp_path / "s32.c"
    src.write_text("void _start(void) { for (;;) ; }\n")
    exe = tmp_path / "s32"
    p = subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-ffreestanding", "-o", str(exe), str(src)],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"this toolchain cannot build a 32-bit ELF: {p.stderr.decode(errors='replace')[:200]}")
    status, _, err = mvemu("run", str(exe), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126, mentions=("architecture",))


def _elf64_header(e_machine: int) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)              # ELFCLASS64, little endian, v1
    # e_type ET_EXEC, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
    # e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0x80, 0x80, 0x1000)   # PT_LOAD R+X
    return (hdr + phdr).ljust(0x80, b"\0")


def test_arm_elf(tmp_path, mvemu_importable):
    f = tmp_path / "arm64-prog"
    f.write_bytes(_elf64_header(183))          # EM_AARCH64
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    line = assert_one_error_line(status, err, expect_status=126, mentions=("architecture",))
    assert "AArch64" in line or "ARM" in line or "183" in line, line


def test_riscv_elf(tmp_path, mvemu_importable):
    f = tmp_path / "riscv-prog"
    f.write_bytes(_elf64_header(243))          # EM_RISCV
    f.chmod(0o755)
    status, _, err = mvemu("run", str(f), cwd=tmp_path)
    assert_one_error_line(status, err, expect_status=126, mentions=("architecture",))


def test_not_executable(tmp_path, images, mvemu_importable):
    f = tmp_path / "hello-noexec"
    shutil.copy(images / "hello.glibc", f)
    f.chmod(0o644)
    with pytest.raises(PermissionError):
        subprocess.run([str(f)])
    status, out, err = mvemu("run", str(f), cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=126, mentions=("Permission denied",))


# -- bad command lines ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ("run", "--bogus", "prog"),
    ("--bogus",),
    ("frobnicate",),
    ("run",),
    ("run", "--mem"),
], ids=" ".join)
def test_bad_command_line(argv, tmp_path, mvemu_importable):
    status, out, err = mvemu(*argv, cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=2)


@pytest.mark.parametrize("size", ["lots", "12X", "-5M", "0", "1K", "1T", "", "1.5G"])
def test_bad_mem_value(size, tmp_path, images, mvemu_importable):
    status, out, err = mvemu("run", "--mem", size, str(images / "hello.glibc"), cwd=tmp_path)
    assert out == b""
    assert_one_error_line(status, err, expect_status=2, mentions=("--mem",))


@pytest.mark.parametrize("size", ["64M", "512m", "2G", "1024M", "65536K"])
def test_good_mem_value(size, tmp_path, images, mvemu_importable):
    status, out, err = mvemu("run", "--mem", size, str(images / "hello.glibc"), "x", cwd=tmp_path)
    assert (status, out, err) == (0, b"Hello from mvemu guest\nx\n", "")


def test_no_command(tmp_path, mvemu_importable):
    status, out, err = mvemu(cwd=tmp_path)
    assert status != 0
    assert "Traceback" not in err
    assert b"run" in out + err.encode()


def test_help(tmp_path, mvemu_importable):
    status, out, err = mvemu("--help", cwd=tmp_path)
    assert status == 0, err
    text = out.decode()
    assert "run" in text and "usage" in text.lower()
    assert "Traceback" not in err


def test_run_help(tmp_path, mvemu_importable):
    status, out, err = mvemu("run", "--help", cwd=tmp_path)
    assert status == 0, err
    text = out.decode()
    for opt in ("--mem", "--trace", "PROGRAM"):
        assert opt in text, f"`mvemu run --help` does not mention {opt}:\n{text}"


def test_program_found_in_path(tmp_path, images, mvemu_importable):
    env = {**BASE_ENV, "PATH": f"{images}:/usr/bin:/bin"}
    status, out, err = mvemu("run", "hello.musl", "a", cwd=tmp_path, env=env)
    assert (status, out, err) == (0, b"Hello from mvemu guest\na\n", "")


def test_guest_args_that_look_like_options(tmp_path, images, mvemu_importable):
    """Everything after PROGRAM belongs to the guest, even --trace and --help."""
    status, out, err = mvemu("run", str(images / "hello.glibc"), "--trace", "--help", "--mem", "1",
                             cwd=tmp_path)
    assert (status, out, err) == (0, b"Hello from mvemu guest\n--trace\n--help\n--mem\n1\n", "")


def test_out_of_guest_memory(tmp_path, cprog, mvemu_importable):
    """A guest that needs more RAM than --mem gives ends with one line, not a traceback."""
    prog = cprog("touch_mem")
    native = subprocess.run([prog, "48"], capture_output=True)
    assert native.returncode == 0
    status, out, err = mvemu("run", "--mem", "16M", prog, "48", cwd=tmp_path)
    assert_one_error_line(status, err, mentions=("memory",))
    ok_status, ok_out, ok_err = mvemu("run", "--mem", "128M", prog, "48", cwd=tmp_path)
    assert (ok_status, ok_out, ok_err) == (0, native.stdout, "")


# -- --trace ------------------------------------------------------------------------------------
def test_trace_hello(tmp_path, images, mvemu_importable):
    prog = str(images / "hello.glibc")
    plain = mvemu("run", prog, cwd=tmp_path)
    traced = mvemu("run", "--trace", prog, cwd=tmp_path)
    assert plain == (0, b"Hello from mvemu guest\n", "")
    assert traced[0] == 0 and traced[1] == plain[1], "--trace must not change stdout or the status"
    lines = traced[2].splitlines()
    assert any('write(1, "Hello from mvemu guest\\n", 23) = 23' in ln for ln in lines), traced[2]
    assert any(re.search(r"\bexit_group\(0\) = \?", ln) for ln in lines), traced[2]
    assert "Traceback" not in traced[2]
    # flags and constants by name, as strace shows them
    for call in (r"arch_prctl\(ARCH_SET_FS, 0x[0-9a-f]+\) = 0", r"prlimit64\(0, RLIMIT_STACK, NULL, 0x[0-9a-f]+\) = 0",
                 r"getrandom\(0x[0-9a-f]+, 8, GRND_NONBLOCK\) = 8", r"mprotect\(0x[0-9a-f]+, \d+, PROT_READ\) = 0",
                 r'newfstatat\(1, "", 0x[0-9a-f]+, AT_EMPTY_PATH\) = 0'):
        assert any(re.search(call, ln) for ln in lines), f"{call} not in:\n{traced[2]}"


def test_trace_names_threads_calls(tmp_path, images, mvemu_importable):
    """A threaded program: mmap's protection and flags, futex operations, signal names."""
    status, _out, err = mvemu("run", "--trace", str(images / "threads.glibc"), "2", cwd=tmp_path)
    assert status == 0, err
    for call in (r"mmap\(NULL, \d+, PROT_NONE, MAP_PRIVATE\|MAP_ANONYMOUS\|MAP_STACK, -1, 0\) = 0x",
                 r"futex\(0x[0-9a-f]+, FUTEX_WAIT_BITSET\|FUTEX_CLOCK_REALTIME, ",
                 r"rt_sigprocmask\(SIG_SETMASK, ", r"madvise\(0x[0-9a-f]+, \d+, MADV_DONTNEED\) = 0"):
        assert re.search(call, err), f"{call} not in:\n{err}"


def test_trace_musl_and_errors(tmp_path, images, mvemu_importable):
    """Failing calls show strace's `= -1 ENOENT (No such file or directory)`."""
    status, out, err = mvemu("run", "--trace", str(images / "busybox"), "cat", "missing-file", cwd=tmp_path)
    assert status == 1 and out == b""
    assert re.search(r'open(at)?\((AT_FDCWD, )?"missing-file".*\) = -1 ENOENT \(No such file or directory\)',
                     err), err
    assert "cat: can't open 'missing-file': No such file or directory" in err


def test_trace_stdin_passthrough(tmp_path, images, mvemu_importable):
    data = b"one\ntwo\nthree\n"
    status, out, err = mvemu("run", "--trace", str(images / "busybox"), "wc", "-l", stdin=data, cwd=tmp_path)
    assert status == 0 and out.split() == [b"3"]
    assert re.search(r'read\(0, "one\\ntwo\\nthree\\n", \d+\) = 14', err), err


# -- unimplemented system calls -------------------------------------------------------------------
def test_unimplemented_syscall_reported_once(tmp_path, cprog, mvemu_importable):
    """A system call Linux has but mvemu does not: -ENOSYS to the guest, and one report by name
    however often it is called."""
    status, out, err = mvemu("run", cprog("nosys"), cwd=tmp_path)
    assert status == 0, err
    assert out.decode().splitlines() == ["io_uring_setup: -1 ENOSYS", "io_uring_setup: -1 ENOSYS",
                                         "syscall 1000: -1 ENOSYS"]
    reports = [ln for ln in err.splitlines() if ln.startswith("mvemu:")]
    assert len(reports) == 1, err
    assert "io_uring_setup" in reports[0] and "425" in reports[0] and "ENOSYS" in reports[0], reports[0]
    assert "Traceback" not in err


def test_unknown_syscall_number_is_plain_enosys(tmp_path, images, mvemu_importable):
    """Syscall 1000 does not exist on Linux either: ENOSYS is Linux's own answer (syscalls_misc checks it)."""
    status, out, err = mvemu("run", str(images / "syscalls_misc.musl"), cwd=tmp_path)
    assert status == 0, err
    assert b"unknown syscall 1000: ENOSYS" in out
    assert err == "", "nothing to report for a number Linux does not have either"


# -- a terminal ------------------------------------------------------------------------------------
def _run_on_pty(cmd, cwd, rows=24, cols=60, timeout=60):
    """Run cmd with stdin/stdout/stderr on a fresh pseudo-terminal (its own session); returns
    (status, everything it wrote)."""
    import fcntl
    import pty  # noqa: F401  (documents the dependency; os.openpty is the call)
    import select
    import termios
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=dict(BASE_ENV, TERM="dumb"),
                         start_new_session=True)
    os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:          # EIO: every writer has closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        os.close(master)
    try:
        status = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    return (128 - status if status < 0 else status), out


@pytest.mark.parametrize("args", [
    ("hello.glibc", "on", "a terminal"),
    ("stdio_exit.musl", "_exit"),          # on a terminal stdio is still set to full buffering here
    ("busybox", "stty", "size"),
    ("busybox", "ls", "-C", "."),          # column layout follows the terminal width
    ("bash", "-c", "[ -t 0 ] && [ -t 1 ] && echo both-ttys; echo $COLUMNS"),
], ids=lambda a: " ".join(a))
def test_terminal_stdio(args, images, tmp_path, mvemu_importable):
    prog = str(images / args[0])
    for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"):
        (tmp_path / (name * 2)).write_text("")
    native = _run_on_pty([prog, *args[1:]], tmp_path)
    emulated = _run_on_pty(mvemu_command(prog, args[1:]), tmp_path)
    notes = b"mvemu: unimplemented system call socket (41): returning -ENOSYS\r\n"   # bash asks for a socket
    emulated = (emulated[0], emulated[1].replace(notes, b""))
    assert emulated == native
