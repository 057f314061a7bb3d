"""Named constants for `--trace`: flags and enumerations shown the way strace shows them
(`PROT_READ|PROT_WRITE`, `O_RDONLY|O_CLOEXEC`, `FUTEX_WAIT_PRIVATE`, `SIGCHLD`, `ARCH_SET_FS`).

Each argument kind of a system call's spec (table.py) that names constants maps to a formatter
here: `KINDS[kind](value) -> str`. Bits no name covers are shown in hex after the names, so
nothing is ever hidden; a value with no name at all is shown as a number.
"""
from __future__ import annotations

from hvm import abi

from .. import signals


def _flags(names: dict[int, str], zero: str = "0"):
    """A formatter for OR-ed flag bits (the multi-bit masks of `names` first, in table order)."""
    items = list(names.items())

    def fmt(v: int) -> str:
        v &= 0xFFFF_FFFF_FFFF_FFFF
        if v == 0:
            return zero
        out = []
        for bits, name in items:
            if bits and v & bits == bits:
                out.append(name)
                v &= ~bits
        if v:
            out.append(f"{v:#x}")
        return "|".join(out)
    return fmt


def _enum(names: dict[int, str], width: int = 32):
    """A formatter for one value of an enumeration (shown signed, as a number, when unnamed)."""
    def fmt(v: int) -> str:
        v &= (1 << width) - 1
        if v >> (width - 1):
            v -= 1 << width
        return names.get(v, str(v))
    return fmt


def _prefixed(mask: int, names: dict[int, str], rest):
    """A value whose bits in `mask` are an enumeration (`names`) and the rest flags (`rest`)."""
    def fmt(v: int) -> str:
        low = names.get(v & mask, f"{v & mask:#x}")
        high = v & ~mask & 0xFFFF_FFFF
        return low if not high else f"{low}|{rest(high)}"
    return fmt


PROT = _flags({1: "PROT_READ", 2: "PROT_WRITE", 4: "PROT_EXEC", 0x0100_0000: "PROT_GROWSDOWN",
               0x0200_0000: "PROT_GROWSUP"}, zero="PROT_NONE")

_MAP_FLAGS = _flags({0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS", 0x100: "MAP_GROWSDOWN", 0x800: "MAP_DENYWRITE",
                     0x1000: "MAP_EXECUTABLE", 0x2000: "MAP_LOCKED", 0x4000: "MAP_NORESERVE",
                     0x8000: "MAP_POPULATE", 0x10000: "MAP_NONBLOCK", 0x20000: "MAP_STACK",
                     0x40000: "MAP_HUGETLB", 0x80000: "MAP_SYNC", 0x100000: "MAP_FIXED_NOREPLACE"})
MAP = _prefixed(0xF, {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}, _MAP_FLAGS)

_O_FLAGS = _flags({0o100: "O_CREAT", 0o200: "O_EXCL", 0o400: "O_NOCTTY", 0o1000: "O_TRUNC", 0o2000: "O_APPEND",
                   0o4000: "O_NONBLOCK", 0o4010000: "O_SYNC", 0o10000: "O_DSYNC", 0o20000: "O_ASYNC",
                   0o40000: "O_DIRECT", 0o100000: "O_LARGEFILE", 0o20200000: "O_TMPFILE",
                   0o200000: "O_DIRECTORY", 0o400000: "O_NOFOLLOW", 0o1000000: "O_NOATIME",
                   0o2000000: "O_CLOEXEC", 0o10000000: "O_PATH"})
OPEN = _prefixed(3, {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}, _O_FLAGS)
FD_FLAGS = _flags({0o4000: "O_NONBLOCK", 0o2000000: "O_CLOEXEC"})       # pipe2, dup3
EFD_FLAGS = _flags({1: "EFD_SEMAPHORE", 0o4000: "EFD_NONBLOCK", 0o2000000: "EFD_CLOEXEC"})

AT = _flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_REMOVEDIR", 0x400: "AT_SYMLINK_FOLLOW",
             0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH", 0x6000: "AT_STATX_SYNC_TYPE"})
AT_ACCESS = _flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_EACCESS", 0x1000: "AT_EMPTY_PATH"})
ACCESS_MODE = _flags({4: "R_OK", 2: "W_OK", 1: "X_OK"}, zero="F_OK")

MADV = _enum({0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
              8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
              13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
              17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD",
              21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ", 23: "MADV_POPULATE_WRITE", 100: "MADV_HWPOISON",
              101: "MADV_SOFT_OFFLINE"})
MREMAP = _flags({1: "MREMAP_MAYMOVE", 2: "MREMAP_FIXED", 4: "MREMAP_DONTUNMAP"})
MSYNC = _flags({1: "MS_ASYNC", 2: "MS_INVALIDATE", 4: "MS_SYNC"})


def SIG(v: int) -> str:
    """A signal number as strace names it (SIGRTMIN is 32, SIGRT_n is 32 + n)."""
    v &= 0xFFFF_FFFF
    if 0 < v < 32:
        return signals.name(v)
    if 32 <= v <= signals.NSIG:
        return "SIGRTMIN" if v == 32 else f"SIGRT_{v - 32}"
    return str(v - (1 << 32) if v >> 31 else v)


SIGHOW = _enum({0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"})
ARCH_PRCTL = _enum({0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS",
                    0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"})
RLIMIT = _enum({0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
                5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
                10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
                14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME"})
GRND = _flags({1: "GRND_NONBLOCK", 2: "GRND_RANDOM", 4: "GRND_INSECURE"})
CLOCK = _enum({0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
               3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
               6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
               9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"})
TIMER = _flags({1: "TIMER_ABSTIME"})
ITIMER = _enum({0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"})
RUSAGE = _enum({0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"})
SEEK = _enum({0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"})
FLOCK = _flags({1: "LOCK_SH", 2: "LOCK_EX", 4: "LOCK_NB", 8: "LOCK_UN"})
FCNTL = _enum({0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
               7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 36: "F_OFD_GETLK",
               37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE", 1025: "F_GETLEASE", 1026: "F_NOTIFY",
               1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS",
               1034: "F_GET_SEALS"})
WAIT = _flags({1: "WNOHANG", 2: "WUNTRACED", 4: "WEXITED", 8: "WCONTINUED", 0x0100_0000: "WNOWAIT",
               0x2000_0000: "__WNOTHREAD", 0x4000_0000: "__WALL", 0x8000_0000: "__WCLONE"})
IDTYPE = _enum({0: "P_ALL", 1: "P_PID", 2: "P_PGID", 3: "P_PIDFD"})
RENAME = _flags({1: "RENAME_NOREPLACE", 2: "RENAME_EXCHANGE", 4: "RENAME_WHITEOUT"})
CLOSE_RANGE = _flags({2: "CLOSE_RANGE_UNSHARE", 4: "CLOSE_RANGE_CLOEXEC"})
PRCTL = _enum({1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
               15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP",
               36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS",
               39: "PR_GET_NO_NEW_PRIVS", 23: "PR_CAPBSET_READ", 0x5356_4d41: "PR_SET_VMA"})

_FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE",
              5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI",
              9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI",
              12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}


def FUTEX(v: int) -> str:
    v &= 0xFFFF_FFFF
    name = _FUTEX_OPS.get(v & 0x7F, f"{v & 0x7F:#x}") + ("_PRIVATE" if v & 0x80 else "")
    if v & 0x100:
        name += "|FUTEX_CLOCK_REALTIME"
    if v & ~0x1FF:
        name += f"|{v & ~0x1FF:#x}"
    return name


_CLONE_FLAGS = _flags({0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
                       0x1000: "CLONE_PIDFD", 0x2000: "CLONE_PTRACE", 0x4000: "CLONE_VFORK",
                       0x8000: "CLONE_PARENT", 0x10000: "CLONE_THREAD", 0x20000: "CLONE_NEWNS",
                       0x40000: "CLONE_SYSVSEM", 0x80000: "CLONE_SETTLS", 0x100000: "CLONE_PARENT_SETTID",
                       0x200000: "CLONE_CHILD_CLEARTID", 0x400000: "CLONE_DETACHED",
                       0x800000: "CLONE_UNTRACED", 0x1000000: "CLONE_CHILD_SETTID",
                       0x2000000: "CLONE_NEWCGROUP", 0x4000000: "CLONE_NEWUTS", 0x8000000: "CLONE_NEWIPC",
                       0x10000000: "CLONE_NEWUSER", 0x20000000: "CLONE_NEWPID", 0x40000000: "CLONE_NEWNET",
                       0x80000000: "CLONE_IO"})


def CLONE(v: int) -> str:
    """clone's flags: CLONE_* bits, and the exit signal in the low byte (SIGCHLD for a fork)."""
    v &= 0xFFFF_FFFF_FFFF_FFFF
    parts = [_CLONE_FLAGS(v & ~0xFF)] if v & ~0xFF else []
    if v & 0xFF:
        parts.append(SIG(v & 0xFF))
    return "|".join(parts) or "0"


_IOCTLS = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x540B: "TCFLSH",
           0x540E: "TIOCSCTTY", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5413: "TIOCGWINSZ",
           0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5429: "TIOCGSID",
           0x5450: "FIONCLEX", 0x5451: "FIOCLEX", 0x5452: "FIOASYNC"}
_IOCTLS.update({number: f"HVM_IOC_{name}" for name, (number, _doc) in abi.ROS_IOCTLS.items()})
IOCTL = _enum(_IOCTLS)

KINDS = {
    "prot": PROT, "map": MAP, "oflags": OPEN, "fdflags": FD_FLAGS, "efd": EFD_FLAGS, "at": AT,
    "atacc": AT_ACCESS, "amode": ACCESS_MODE, "madv": MADV, "mremap": MREMAP, "msync": MSYNC, "sig": SIG,
    "sighow": SIGHOW, "arch": ARCH_PRCTL, "rlimit": RLIMIT, "grnd": GRND, "clock": CLOCK, "timer": TIMER,
    "itimer": ITIMER, "rusage": RUSAGE, "seek": SEEK, "flock": FLOCK, "fcntl": FCNTL, "wait": WAIT,
    "idtype": IDTYPE, "rename": RENAME, "closerange": CLOSE_RANGE, "prctl": PRCTL, "futex": FUTEX,
    "clone": CLONE, "ioctl": IOCTL,
}
