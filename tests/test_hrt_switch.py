"""Threads sharing one HRT vCPU. tests/c/hrt_switch.c: what an HRT thread keeps when its vCPU runs
other threads or the VMM stops it: four threads, each with its own XMM registers, MXCSR and x87
control word across forwarded page faults and system calls, and a register-only loop the VMM
time-slices; native output, run after run. tests/c/hrt_spin_flag.c: a thread spinning on a flag
that another thread of the vCPU sets is preempted."""
from __future__ import annotations

import re
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


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_a_spinning_thread_is_preempted(libc, cprog, pieces, tmp_path, mvemu_importable):  # noqa: F811
    """tests/c/hrt_spin_flag.c: an HRT thread spins on a flag (no system call in the loop) that
    another HRT thread of the same vCPU sets. Without the VMM's time-slice interrupt the setter
    never runs and the program hangs; with it, native output, and --stats counts preemptions."""
    fat = fat_of(Path(cprog("hrt_spin_flag", libc)), pieces, tmp_path / "hrt_spin_flag", default_overrides())
    case = Case(str(fat), mvemu_options=("--hrt-cpus", "1", "--stats"), timeout=120)
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0 and native.stdout == b"the spinner saw the flag: yes\n"
    mvemu = harness.run_mvemu(case, tmp_path / "mvemu")
    assert (mvemu.status, mvemu.stdout) == (native.status, native.stdout), mvemu.stderr.decode()
    m = re.search(rb"HRT thread preemptions +(\d+)", mvemu.stderr)
    assert m and int(m.group(1)) >= 1, mvemu.stderr.decode()
