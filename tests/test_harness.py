"""The differential harness checks itself: it must notice every kind of difference (so that a green
differential test means something) and accept exactly the documented mvemu additions."""
from __future__ import annotations

import os
import signal
import sys

import pytest

import harness
from harness import Case, Result, compare

SEGV = signal.SIGSEGV.value


def res(stdout=b"", stderr=b"", status=0, sig=None, files=None):
    return Result(stdout, stderr, status, sig, files or {})


CASE = Case("/bin/true")


def test_identical_runs_agree():
    r = res(b"out\n", b"err\n", 3, files={"f": ("file", "0o644", 2, b"hi")})
    assert compare(CASE, r, r) == []


@pytest.mark.parametrize("field, other", [
    ("stdout", res(b"OUT\n", b"err\n", 3)),
    ("stderr", res(b"out\n", b"ERR\n", 3)),
    ("exit status", res(b"out\n", b"err\n", 4)),
])
def test_each_difference_is_reported(field, other):
    problems = compare(CASE, res(b"out\n", b"err\n", 3), other)
    assert len(problems) == 1 and field in problems[0]


def test_signal_death_needs_exactly_one_mvemu_line_naming_it():
    native = res(b"before\n", b"", 128 + SEGV, SEGV)
    good = res(b"before\n", b"mvemu: prog: killed by SIGSEGV: invalid write at 0x10\n", 128 + SEGV)
    assert compare(CASE, native, good) == []
    none = res(b"before\n", b"", 128 + SEGV)
    assert any("exactly one" in p for p in compare(CASE, native, none))
    two = res(b"before\n", b"mvemu: a SIGSEGV\nmvemu: b SIGSEGV\n", 128 + SEGV)
    assert any("exactly one" in p for p in compare(CASE, native, two))
    wrong = res(b"before\n", b"mvemu: prog: killed by SIGBUS\n", 128 + SEGV)
    assert any("does not name SIGSEGV" in p for p in compare(CASE, native, wrong))
    status = res(b"before\n", b"mvemu: prog: killed by SIGSEGV\n", 1)
    assert any("exit status" in p for p in compare(CASE, native, status))


def test_signal_death_line_is_removed_before_comparing_stderr():
    native = res(b"", b"guest said this\n", 134, signal.SIGABRT.value)
    mvemu = res(b"", b"guest said this\nmvemu: prog: killed by SIGABRT\n", 134)
    assert compare(CASE, native, mvemu) == []


def test_mvemu_lines_without_a_signal_death_are_differences():
    problems = compare(CASE, res(), res(stderr=b"mvemu: unimplemented system call foo (1): returning -ENOSYS\n"))
    assert len(problems) == 1 and "stderr" in problems[0]


def test_tolerated_notes():
    case = Case("/bin/true", mvemu_notes=harness.nosys("socket"))
    note = b"mvemu: unimplemented system call socket (41): returning -ENOSYS\n"
    assert compare(case, res(b"x"), res(b"x", note)) == []
    assert compare(case, res(b"x"), res(b"x")) == [], "a tolerated note is optional"
    assert compare(case, res(b"x"), res(b"x", note + note)) != [], "each pattern removes one line only"


def test_files_differences():
    a = {"f": ("file", "0o644", 2, b"hi"), "d": ("dir", "0o755"), "l": ("symlink", "f")}
    for b, word in [({**a, "g": ("file", "0o644", 0, b"")}, "only after the mvemu run"),
                    ({k: v for k, v in a.items() if k != "d"}, "only after the native run"),
                    ({**a, "f": ("file", "0o600", 2, b"hi")}, "mode"),
                    ({**a, "f": ("file", "0o644", 2, b"ho")}, "contents"),
                    ({**a, "l": ("symlink", "g")}, "symlink")]:
        problems = compare(CASE, res(files=a), res(files=b))
        assert len(problems) == 1 and word in problems[0], (word, problems)


def test_unordered_stdout():
    case = Case("/bin/true", unordered_stdout=True)
    assert compare(case, res(b"a\nb\n"), res(b"b\na\n")) == []
    assert compare(case, res(b"a\nb\n"), res(b"b\nb\n")) != []


def test_binary_diff_is_readable():
    text = harness.bytes_diff("stdout", b"\0\1\2\3", b"\0\1\7\3")
    assert "offset 2" in text and "binary" in text


def test_text_diff_is_unified():
    text = harness.bytes_diff("stdout", b"one\ntwo\nthree\n", b"one\n2\nthree\n")
    assert "-two" in text and "+2" in text


def test_timeouts_are_reported():
    problems = compare(CASE, res(), Result(b"", b"", -1, None, {}, timed_out=True))
    assert any("timed out" in p for p in problems)


def test_snapshot_and_prepare(tmp_path):
    work = tmp_path / "w"
    harness._prepare(work, {"a/b.txt": b"data", "empty": None, "top": b""})
    os.symlink("a/b.txt", work / "link")
    (work / "a").chmod(0o500)                 # a read-only directory must not stop the wipe
    snap = harness._snapshot(work)
    assert snap["a/b.txt"][0] == "file" and snap["a/b.txt"][2:] == (4, b"data")
    assert snap["empty"][0] == "dir" and snap["link"] == ("symlink", "a/b.txt")
    harness._prepare(work, {})                 # wipes and recreates
    assert harness._snapshot(work) == {}


def test_native_and_mvemu_see_the_same_argv0_cwd_and_env(tmp_path, images, mvemu_importable):
    """The harness's own promise: same argv[0], same working directory, same environment."""
    prog = str(images / "busybox")
    case = Case(prog, ("sh", "-c", 'echo "$0|$PWD|$HOME|$FOO"; busybox pwd'),
                env={**harness.BASE_ENV, "FOO": "bar", "PATH": f"{images}:/usr/bin:/bin"})
    native = harness.run_native(case, tmp_path / "w")
    mvemu = harness.run_mvemu(case, tmp_path / "w")
    assert native.stdout.endswith(f"{tmp_path / 'w'}\n".encode())
    assert compare(case, native, mvemu) == [], compare(case, native, mvemu)


def test_mvemu_command_uses_this_interpreter():
    cmd = harness.mvemu_command("/p", ["a"], ("--trace",))
    assert cmd == [sys.executable, "-m", "hvm", "run", "--trace", "/p", "a"]
