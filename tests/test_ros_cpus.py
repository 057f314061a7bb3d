"""--ros-cpus N: the ROS kernel schedules processes and threads on N ROS vCPUs (one run queue,
threads migrate between vCPUs; all vCPUs run in turn on one host thread).

What the guest sees changes (sched_getaffinity, getcpu, threads really on different vCPUs); what
it computes must not: the process, signal and thread programs of the differential suite give native
output on 4 ROS vCPUs, the threaded ones twenty times in a row, and hybridized programs too (their
partner threads are ROS threads)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness import BUILD, Case
from test_differential import IMAGE_CASES, PROCESS_CASES
from test_hybridize import fat_of, pieces  # noqa: F401  (a fixture)

# The guest images whose behaviour depends on scheduling: processes, pipes, signals, threads.
SCHEDULED = ("threads", "thread_loop", "par_mandelbrot", "pingpong", "signals", "fork_wait", "pipeline", "cow")


def _on(cpus: int, param):
    case = param.values[0]
    return pytest.param(dataclasses.replace(case, mvemu_options=case.mvemu_options + ("--ros-cpus", str(cpus))),
                        id=f"{case.id} --ros-cpus {cpus}", marks=param.marks)


CASES = [_on(4, p) for p in IMAGE_CASES
         if os.path.basename(p.values[0].prog).split(".") in ([n, v] for n in SCHEDULED for v in ("glibc", "musl"))]
CASES += [_on(3, p) for p in PROCESS_CASES]


def test_the_selection_is_not_empty():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_differential_on_several_ros_cpus(case, differ):
    differ(case)


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_threads_repeatedly_on_three_ros_cpus(variant, differ):
    """Threads that really run on different vCPUs (and migrate between them) twenty times in a row."""
    case = Case(str(BUILD / f"threads.{variant}"), ("4",), mvemu_options=("--ros-cpus", "3"))
    for _ in range(20):
        differ(case)


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_threads_spread_over_the_ros_cpus(cpus, libc, cprog, mvemu_importable, tmp_path):
    """tests/c/ros_cpus.c: four threads meet at a spin barrier (no system call while they wait), then
    each asks getcpu where it is. The affinity mask has N CPUs, sysconf counts N online (glibc
    reads /sys/devices/system/cpu/online, which mvemu answers), and the threads were on min(N, 4)
    distinct vCPUs: with N >= 4 each waiting thread holds a vCPU of its own, with fewer they share
    them by time slices. (Not compared with native: the host's CPU count is not the guest's.)"""
    case = Case(cprog("ros_cpus", libc), ("4",), mvemu_options=("--ros-cpus", str(cpus)))
    r = harness.run_mvemu(case, tmp_path / "mvemu")
    assert r.status == 0, r.stderr.decode()
    assert r.stdout == f"cpus: {cpus}, online: {cpus}\ndistinct cpus: {min(cpus, 4)}\n".encode(), r.stderr.decode()


@pytest.mark.parametrize("name", ["signals.musl", "threads.glibc", "pipeline.musl"])
def test_hybridized_programs_on_two_ros_cpus(name, pieces, tmp_path, mvemu_importable):  # noqa: F811
    """A hybridized program's partner (and its forked children) are ROS threads; without function
    overrides its pthreads are forwarded clones, ROS threads too. With two ROS vCPUs its forwarded
    calls, signals (a SIGALRM interrupting the partner's wait) and exits still give native output."""
    fat = fat_of(BUILD / name, pieces, tmp_path / name)
    args = ("3",) if name.startswith("threads") else ()
    case = Case(str(fat), args, mvemu_options=("--ros-cpus", "2"))
    native = harness.run_native(case, tmp_path / "native")
    mvemu = harness.run_mvemu(case, tmp_path / "mvemu")
    assert harness.compare(case, native, mvemu) == []


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_a_bad_cpu_count_is_a_usage_error(value, images):
    r = subprocess.run([sys.executable, "-m", "hvm", "run", "--ros-cpus", value, str(BUILD / "hello.glibc")],
                       capture_output=True, cwd=Path(harness.REPO), timeout=60)
    assert r.returncode == 2 and b"Traceback" not in r.stderr, r.stderr.decode()
    assert b"--ros-cpus" in r.stderr, r.stderr.decode()


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_affinity(cpus, libc, cprog, differ):
    """tests/c/affinity.c: sched_setaffinity pins the calling thread at once (sched_getcpu), threads
    and forked children inherit the mask, threads pinned one to each CPU run there (the scheduler
    keeps a pinned thread off other vCPUs), and Linux's errors; the same output as natively on the
    host's CPUs."""
    differ(Case(cprog("affinity", libc), mvemu_options=("--ros-cpus", str(cpus))))
