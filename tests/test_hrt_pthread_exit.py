"""pthread_exit in an HRT thread (tests/c/hrt_pthread_exit.c), hybridized: cleanup handler and exit
value as natively. musl's pthread_exit ends with the exit system call, which the AeroKernel turns
into the thread's end; glibc's unwinds to the setjmp in start_thread, which is the partner's, on
the partner's stack (docs/split.md, Limits): not supported yet."""
from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness import Case
from test_hybridize import default_overrides, fat_of, pieces  # noqa: F401  (a fixture)


@pytest.mark.parametrize("libc", [
    pytest.param("glibc", marks=pytest.mark.xfail(strict=True, reason="glibc's pthread_exit unwinds to "
                                                  "start_thread on the partner's stack (docs/split.md)")),
    "musl"])
def test_pthread_exit_in_an_hrt_thread(libc, cprog, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(Path(cprog("hrt_pthread_exit", libc)), pieces, tmp_path / "hrt_pthread_exit",
                 default_overrides())
    case = Case(str(fat))
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0 and native.stdout.endswith(b"pthread_exit value 42, returned value 7\n")
    mvemu = harness.run_mvemu(case, tmp_path / "mvemu")
    assert (mvemu.status, mvemu.stdout) == (native.status, native.stdout), mvemu.stderr.decode()
