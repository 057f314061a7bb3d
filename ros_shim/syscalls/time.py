"""Clock and sleep system calls. Time is the host's: guest clocks read the host clocks directly."""
from __future__ import annotations

import errno
import struct
import time

from .table import i32, signed, syscall

_CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 2: time.CLOCK_PROCESS_CPUTIME_ID,
           3: time.CLOCK_THREAD_CPUTIME_ID, 4: time.CLOCK_MONOTONIC_RAW, 5: 5, 6: 6, 7: time.CLOCK_BOOTTIME,
           8: 8, 9: 9, 11: 11}
TIMER_ABSTIME = 1


def _clock_ns(clk: int) -> int | None:
    host = _CLOCKS.get(clk)
    if host is None:
        return None
    try:
        return time.clock_gettime_ns(host)
    except OSError:
        return None


def timespec_ns(t, ptr):
    """The struct timespec at ptr in nanoseconds; None for a NULL pointer; a negative errno for an
    unreadable (EFAULT) or invalid (EINVAL) one."""
    if not ptr:
        return None
    data = t.proc.mm.read(ptr, 16)
    if data is None:
        return -errno.EFAULT
    sec, nsec = struct.unpack("<qq", data)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -errno.EINVAL
    return sec * 1_000_000_000 + nsec


@syscall("clock_gettime", "clock,x")
def sys_clock_gettime(k, t, clk, tp, *_):
    ns = _clock_ns(i32(clk))
    if ns is None:
        return -errno.EINVAL
    return 0 if t.proc.mm.write(tp, struct.pack("<qq", *divmod(ns, 1_000_000_000))) else -errno.EFAULT


@syscall("clock_getres", "clock,x")
def sys_clock_getres(k, t, clk, tp, *_):
    if _clock_ns(i32(clk)) is None:
        return -errno.EINVAL
    if tp and not t.proc.mm.write(tp, struct.pack("<qq", 0, 1)):
        return -errno.EFAULT
    return 0


@syscall("gettimeofday", "x,x")
def sys_gettimeofday(k, t, tv, tz, *_):
    ns = time.time_ns()
    if tv and not t.proc.mm.write(tv, struct.pack("<qq", ns // 1_000_000_000, ns // 1000 % 1_000_000)):
        return -errno.EFAULT
    if tz and not t.proc.mm.write(tz, struct.pack("<ii", 0, 0)):
        return -errno.EFAULT
    return 0


@syscall("time", "x")
def sys_time(k, t, tloc, *_):
    now = time.time_ns() // 1_000_000_000
    if tloc and not t.proc.mm.write(tloc, struct.pack("<q", now)):
        return -errno.EFAULT
    return now


def _sleep(k, t, deadline_ns: int, clock: int, rem_ptr: int, absolute: bool):
    """Block the thread until the deadline (on the monotonic clock the scheduler uses)."""
    from .. import signals
    from ..process import Wait
    from ..sched import now_ns
    w = k.resume_wait(t, "sleep")
    if w is not None:
        if w.timed_out:
            return 0
        t.restart_deadline = w.deadline         # resumed without a handler: keep the deadline
        left = max(0, w.deadline - now_ns())
        if rem_ptr and not absolute:
            t.proc.mm.write(rem_ptr, struct.pack("<qq", *divmod(left, 1_000_000_000)))
        return -signals.ERESTART_RESTARTBLOCK if not absolute else -signals.ERESTARTNOHAND
    if t.restart_deadline is not None:
        deadline, t.restart_deadline = t.restart_deadline, None
    else:
        deadline = now_ns() + (deadline_ns - time.clock_gettime_ns(clock))
    if deadline <= now_ns():
        return 0
    return k.block(t, Wait("sleep", deadline=deadline))


@syscall("nanosleep", "x,x")
def sys_nanosleep(k, t, req, rem, *_):
    span = timespec_ns(t, req) if req else -errno.EFAULT
    if span < 0:
        return span
    return _sleep(k, t, time.clock_gettime_ns(time.CLOCK_MONOTONIC) + span, time.CLOCK_MONOTONIC, rem, False)


@syscall("clock_nanosleep", "clock,timer,x,x")
def sys_clock_nanosleep(k, t, clk, flags, req, rem, *_):
    clk = i32(clk)
    if clk in (2, 3):
        return -errno.EINVAL if clk == 3 else -errno.ENOTSUP
    host = _CLOCKS.get(clk)
    if host is None or clk not in (0, 1, 7):
        return -errno.EINVAL
    target = timespec_ns(t, req) if req else -errno.EFAULT
    if target < 0:
        return target
    absolute = bool(flags & TIMER_ABSTIME)
    if not absolute:
        target += time.clock_gettime_ns(host)
    return _sleep(k, t, target, host, rem, absolute)


@syscall("times", "x")
def sys_times(k, t, buf, *_):
    import os
    tm = os.times()
    ticks = lambda s: int(s * 100)
    if buf and not t.proc.mm.write(buf, struct.pack("<4q", ticks(tm.user), ticks(tm.system), 0, 0)):
        return -errno.EFAULT
    return ticks(tm.elapsed)


@syscall("getrusage", "rusage,x")
def sys_getrusage(k, t, who, buf, *_):
    import resource
    who = i32(who)
    if who not in (0, -1, 1):
        return -errno.EINVAL
    ru = resource.getrusage(resource.RUSAGE_SELF if who != -1 else resource.RUSAGE_CHILDREN)
    tv = lambda s: (int(s), int(s * 1e6) % 1_000_000)
    data = struct.pack("<4q14q", *tv(ru.ru_utime), *tv(ru.ru_stime), ru.ru_maxrss, 0, 0, 0,
                       ru.ru_minflt, ru.ru_majflt, 0, 0, 0, 0, 0, 0, ru.ru_nvcsw, ru.ru_nivcsw)
    return 0 if t.proc.mm.write(buf, data) else -errno.EFAULT
