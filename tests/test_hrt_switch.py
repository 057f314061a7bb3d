"""What an HRT thread keeps when its vCPU runs other threads or the VMM stops it (tests/c/hrt_switch.c):
four threads on one HRT vCPU, each with its own XMM registers, MXCSR and x87 control word across
forwarded page faults and system calls, and a register-only loop the VMM time-slices. Hybridized,
the output must be the native one, run after run."""
from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness import Case
from test_hybridize import default_overrides, fat_of, pieces  # noqa: F401  (a fixture)

RUNS = 3


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_threads_keep_their_state_on_one_hrt_vcpu(libc, cprog, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(Path(cprog("hrt_switch", libc)), pieces, tmp_path / "hrt_switch", default_overrides())
    case = Case(str(fat), args=("4",), mvemu_options=("--hrt-cpus", "1"))
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0 and native.stdout.count(b"kept") == 12 and b"right" in native.stdout
    for i in range(RUNS):
        mvemu = harness.run_mvemu(case, tmp_path / f"mvemu{i}")
        assert (mvemu.status, mvemu.stdout) == (native.status, native.stdout), \
            f"run {i}:\n{mvemu.stdout.decode()}{mvemu.stderr.decode()}"
