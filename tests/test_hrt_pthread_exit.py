"""Threads that end early, hybridized: pthread_exit in HRT threads (tests/c/hrt_pthread_exit.c:
cleanup handler and exit value, and pthread_cancel acting at pthread_testcancel; tests/c/hrt_pthread_exit_main.c: detached threads with
thread-specific data destructors, and main calling pthread_exit while another thread runs on and
ends the process). musl's pthread_exit ends with the exit system call, which the AeroKernel turns
into the thread's end. glibc's unwinds to the buffer start_thread (or __libc_start_call_main) set
on the partner's ROS stack and runs their tail there in the HRT; the partner loop runs on a stack
of its own, so that is safe (docs/split.md, "How a thread ends")."""
from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness import Case
from test_hybridize import default_overrides, fat_of, pieces  # noqa: F401  (a fixture)

ENDINGS = {
    "hrt_pthread_exit": (0, b"pthread_exit value 42, returned value 7\ncleanup handler: cancelled\n"
                            b"cancelled thread: PTHREAD_CANCELED\n"),
    "hrt_pthread_exit_main": (3, b"key destructor: main\nmain has exited; this thread ends the process\n"),
}


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("prog", sorted(ENDINGS))
def test_pthread_exit_in_an_hrt_thread(prog, libc, cprog, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(Path(cprog(prog, libc)), pieces, tmp_path / prog, default_overrides())
    case = Case(str(fat))
    native = harness.run_native(case, tmp_path / "native")
    status, tail = ENDINGS[prog]
    assert native.status == status and native.stdout.endswith(tail), native.stdout
    mvemu = harness.run_mvemu(case, tmp_path / "mvemu")
    assert (mvemu.status, mvemu.stdout) == (native.status, native.stdout), mvemu.stderr.decode()
