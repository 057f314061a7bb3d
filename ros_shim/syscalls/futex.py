"""futex(2).

[core] has one thread per process, so no futex ever has a waiter: wakes wake nobody (0), and a
wait whose value matches can only end by its timeout, exactly as on Linux with no other thread.
Wait queues arrive with clone threads ([process]).
"""
from __future__ import annotations

import errno
import struct
import time

from .table import i32, syscall

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
_OPS = {  # FUTEX_WAKE_OP operations on *uaddr2
    0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
    3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}


def _read_u32(t, addr):
    if addr & 3:
        return None
    raw = t.proc.mm.read(addr, 4)
    return None if raw is None else struct.unpack("<I", raw)[0]


@syscall("futex", "x,x,i,x,x,i")
def sys_futex(k, t, uaddr, op, val, timeout, uaddr2, val3, *_):
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        if cmd == FUTEX_WAKE_BITSET and val3 & 0xFFFF_FFFF == 0:
            return -errno.EINVAL
        if uaddr & 3:
            return -errno.EINVAL
        return 0 if _read_u32(t, uaddr) is not None else -errno.EFAULT
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if cmd == FUTEX_WAIT_BITSET and val3 & 0xFFFF_FFFF == 0:
            return -errno.EINVAL
        cur = _read_u32(t, uaddr)
        if cur is None:
            return -errno.EINVAL if uaddr & 3 else -errno.EFAULT
        if cur != val & 0xFFFF_FFFF:
            return -errno.EAGAIN
        return _wait_alone(k, t, cmd, op, timeout)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            cur = _read_u32(t, uaddr)
            if cur is None:
                return -errno.EFAULT
            if cur != val3 & 0xFFFF_FFFF:
                return -errno.EAGAIN
        return 0
    if cmd == FUTEX_WAKE_OP:
        encoded = val3 & 0xFFFF_FFFF
        opnum, cmp, oparg, cmparg = (encoded >> 28) & 7, (encoded >> 24) & 15, (encoded >> 12) & 0xFFF, encoded & 0xFFF
        if encoded >> 31:                      # FUTEX_OP_OPARG_SHIFT
            oparg = 1 << oparg
        old = _read_u32(t, uaddr2)
        if old is None or opnum not in _OPS:
            return -errno.EFAULT if old is None else -errno.ENOSYS
        if not t.proc.mm.write(uaddr2, struct.pack("<I", _OPS[opnum](old, oparg) & 0xFFFF_FFFF)):
            return -errno.EFAULT
        return 0
    if cmd in (FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI):
        return _pi(k, t, cmd, uaddr)
    return -errno.ENOSYS


def _wait_alone(k, t, cmd, op, timeout):
    """No other thread can change the word: the wait ends only by timeout (or never, as on Linux)."""
    if not timeout:
        k.log_line(f"mvemu: {t.proc.comm}: thread {t.tid} waits on a futex no other thread can wake "
                   f"(it would hang natively too); press Ctrl-C to stop")
        while True:
            time.sleep(3600)
    raw = t.proc.mm.read(timeout, 16)
    if raw is None:
        return -errno.EFAULT
    sec, nsec = struct.unpack("<qq", raw)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -errno.EINVAL
    span = sec * 1_000_000_000 + nsec
    if cmd == FUTEX_WAIT_BITSET:                  # absolute deadline
        clock = time.CLOCK_REALTIME if op & FUTEX_CLOCK_REALTIME else time.CLOCK_MONOTONIC
        span -= time.clock_gettime_ns(clock)
    if span > 0:
        time.sleep(span / 1e9)
    return -errno.ETIMEDOUT


def _pi(k, t, cmd, uaddr):
    """Priority-inheritance locks with one thread: the lock word holds our tid or 0."""
    cur = _read_u32(t, uaddr)
    if cur is None:
        return -errno.EFAULT
    owner = cur & 0x3FFF_FFFF
    if cmd == FUTEX_UNLOCK_PI:
        if owner != t.tid:
            return -errno.EPERM
        return 0 if t.proc.mm.write(uaddr, struct.pack("<I", 0)) else -errno.EFAULT
    if owner == t.tid:
        return -errno.EDEADLK
    if owner == 0:
        return 0 if t.proc.mm.write(uaddr, struct.pack("<I", t.tid)) else -errno.EFAULT
    return -errno.EAGAIN if cmd == FUTEX_TRYLOCK_PI else -errno.ESRCH
