"""--trace's named constants (ros_shim/syscalls/symbols.py): flags, enumerations, and what no name
covers still shown."""
from __future__ import annotations

import pytest

import ros_shim.kernel  # noqa: F401  (imports every system call module: they fill TABLE)
from ros_shim.syscalls import symbols
from ros_shim.syscalls.table import TABLE, format_call


@pytest.mark.parametrize("kind, value, shown", [
    ("prot", 0, "PROT_NONE"),
    ("prot", 7, "PROT_READ|PROT_WRITE|PROT_EXEC"),
    ("prot", 0x11, "PROT_READ|0x10"),                       # an unknown bit stays visible
    ("map", 0x22, "MAP_PRIVATE|MAP_ANONYMOUS"),
    ("map", 0x100012, "MAP_PRIVATE|MAP_FIXED|MAP_FIXED_NOREPLACE"),
    ("oflags", 0, "O_RDONLY"),
    ("oflags", 0o2000002, "O_RDWR|O_CLOEXEC"),
    ("oflags", 0o1101, "O_WRONLY|O_CREAT|O_TRUNC"),
    ("oflags", 0o4010001, "O_WRONLY|O_SYNC"),
    ("amode", 0, "F_OK"),
    ("amode", 6, "R_OK|W_OK"),
    ("madv", 23, "MADV_POPULATE_WRITE"),
    ("madv", 77, "77"),                                      # no name: the number
    ("sig", 17, "SIGCHLD"),
    ("sig", 32, "SIGRTMIN"),
    ("sig", 33, "SIGRT_1"),
    ("sig", 0, "0"),
    ("futex", 0x80, "FUTEX_WAIT_PRIVATE"),
    ("futex", 0x189, "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"),
    ("clone", 0x11, "SIGCHLD"),
    ("clone", 0x3D0F00, "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|"
                        "CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"),
    ("ioctl", 0x5413, "TIOCGWINSZ"),
    ("ioctl", 0x480A, "HVM_IOC_COMPLETE_WAIT"),
    ("rusage", (1 << 64) - 1, "RUSAGE_CHILDREN"),
    ("seek", 2, "SEEK_END"),
    ("wait", 1, "WNOHANG"),
    ("clock", 1, "CLOCK_MONOTONIC"),
])
def test_named_constants(kind, value, shown):
    assert symbols.KINDS[kind](value) == shown


def test_a_call_with_named_arguments():
    entry = next(e for e in TABLE.values() if e.name == "mmap")
    line = format_call(None, None, entry, entry.nr, (0, 8192, 3, 0x22, (1 << 64) - 1, 0), 0x7FFF0000)
    assert line == "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7fff0000"


def test_every_spec_kind_is_known():
    kinds = {k for e in TABLE.values() for k in e.args}
    assert len(TABLE) >= 150
    assert kinds <= {"i", "u", "x", "fd", "s", "o", "w", "r", "-"} | set(symbols.KINDS)
