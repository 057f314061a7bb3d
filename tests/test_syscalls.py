"""System calls checked against native Linux: small static C programs from tests/c/ (compiled with
gcc -static and musl-gcc -static by the `cprog` fixture) run through the differential harness, so
errno values, contents and edge cases are Linux's own. Each program prints one deterministic line
per check (errno names, never addresses)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness import BASE_ENV, Case

LIBCS = ("glibc", "musl")

# name -> (args, xfail reason or None)
PROGRAMS = {
    "errnos": ((), None),
    "fdio": ((), None),
    "mremap": ((), None),
    "brk": ((), None),
    "startup": (("one", "", "two words"), None),
    "self_exe": ((), None),
    "longpath": ((), None),
    "fpu_init": ((), None),
    "sigtrap": ((), None),
    "eventfd": ((), None),
    "madv_populate": ((), None),
}


def _params():
    for name, (args, xfail) in PROGRAMS.items():
        for libc in LIBCS:
            marks = [pytest.mark.xfail(reason=xfail, strict=True)] if xfail else []
            yield pytest.param(name, libc, args, id=f"{name}.{libc}", marks=marks)


@pytest.mark.parametrize("name, libc, args", list(_params()))
def test_c_program(name, libc, args, cprog, differ):
    differ(Case(cprog(name, libc), args, env={**BASE_ENV, "EXTRA": "x=y"}))


def test_startup_static_pie(cprog, differ):
    """The initial stack and auxv of a relocated (static-pie) image."""
    differ(Case(cprog("startup", "pie"), ("pie",)))


@pytest.mark.parametrize("what", [
    "noreserve", "mmap", "mremap", "brk",
])
def test_overcommit(what, cprog, differ):
    differ(Case(cprog("overcommit"), (what,)))



@pytest.mark.parametrize("mode", [
    "basic", "coherence", "mprotect",
])
def test_mmap_shared(mode, cprog, differ):
    differ(Case(cprog("mmap_shared"), (mode,)))


def test_mremap_shrinking_move_frees_the_tail(cprog, tmp_path):
    """A shrinking MREMAP_FIXED move must release the frames of the pages it drops."""
    prog = cprog("mremap_shrink")
    r = subprocess.run([sys.executable, "-m", "hvm", "run", "--mem", "32M", str(prog)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
