"""futex(2): wait queues keyed by address, with the variants glibc and musl use.

Keys follow Linux's get_futex_key: a word in process-private memory is keyed by (address space,
virtual address) whether or not FUTEX_PRIVATE_FLAG is given; a word in a MAP_SHARED mapping
(without the flag) by its guest-physical address, so processes sharing the page meet on one queue. A woken waiter
re-runs its futex call (the ROS restarts blocked calls) and finds its outcome in its Wait.
"""
from __future__ import annotations

import collections
import errno
import struct
import time

from .. import signals
from ..process import Wait
from ..sched import now_ns
from .table import i32, syscall
from .time import timespec_ns

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_BITSET_MATCH_ANY = 0xFFFF_FFFF
_OPS = {0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
        3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}
_CMPS = {0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
         3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b}


def _queues(k) -> dict:
    q = getattr(k, "futex_queues", None)
    if q is None:
        q = k.futex_queues = collections.defaultdict(list)
    return q


def _key(mm, addr: int, private: bool):
    from ..mm import MAP_SHARED
    vma = None if private else mm.find(addr)
    if vma is None or not vma.flags & MAP_SHARED:
        return ("mm", id(mm), addr)
    pa = mm.user_page(addr, False)
    return ("pa", pa) if pa is not None else ("mm", id(mm), addr)


def _read_u32(mm, addr):
    raw = mm.read(addr, 4)
    return None if raw is None else struct.unpack("<I", raw)[0]


def wake(k, mm, addr: int, n: int, bitset: int = FUTEX_BITSET_MATCH_ANY, private: bool = False) -> int:
    """Wake up to n waiters on the word at addr. Also used at thread exit (CLONE_CHILD_CLEARTID,
    a shared wake as in Linux's mm_release)."""
    queues = _queues(k)
    key = _key(mm, addr, private)
    waiters = queues.get(key)
    woken = 0
    for t in list(waiters or ()):
        if woken >= n:
            break
        if t.wait is None or not t.wait.bitset & bitset:
            continue
        waiters.remove(t)
        k.sched.wake(t, woken=True)
        woken += 1
    if waiters is not None and not waiters:
        queues.pop(key, None)
    return woken


def _unqueue(k, t, w) -> None:
    waiters = _queues(k).get(w.key)
    if waiters and t in waiters:
        waiters.remove(t)


@syscall("futex", "x,futex,i,x,x,x")
def sys_futex(k, t, uaddr, op, val, timeout, uaddr2, val3, *_):
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    private = bool(op & FUTEX_PRIVATE_FLAG)
    mm = t.proc.mm
    val &= 0xFFFF_FFFF
    val3 &= 0xFFFF_FFFF
    if uaddr & 3:
        return -errno.EINVAL
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        w = k.resume_wait(t, "futex")
        if w is not None:
            _unqueue(k, t, w)
            if w.woken:
                return 0
            if w.timed_out:
                return -errno.ETIMEDOUT
            return -signals.ERESTARTSYS
        bitset = val3 if cmd == FUTEX_WAIT_BITSET else FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            return -errno.EINVAL
        cur = _read_u32(mm, uaddr)
        if cur is None:
            return -errno.EFAULT
        if cur != val:
            return -errno.EAGAIN
        deadline = None
        if timeout:
            span = timespec_ns(t, timeout)
            if span < 0:
                return span
            if cmd == FUTEX_WAIT_BITSET:                  # an absolute time on the chosen clock
                clock = time.CLOCK_REALTIME if op & FUTEX_CLOCK_REALTIME else time.CLOCK_MONOTONIC
                span -= time.clock_gettime_ns(clock)
            deadline = now_ns() + max(0, span)
        key = _key(mm, uaddr, private)
        _queues(k)[key].append(t)
        if len(k.sched.runq) == 0 and not _others_can_run(k, t) and deadline is None:
            k.report_once(("futex-deadlock", t.tid),
                          f"mvemu: {t.proc.comm}: thread {t.tid} waits on a futex that no other thread "
                          f"can wake (it would hang natively too); press Ctrl-C to stop")
        return k.block(t, Wait("futex", key=key, bitset=bitset, deadline=deadline))
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 if cmd == FUTEX_WAKE_BITSET else FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            return -errno.EINVAL
        if _read_u32(mm, uaddr) is None and not private:
            return -errno.EFAULT
        return wake(k, mm, uaddr, val, bitset, private)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            cur = _read_u32(mm, uaddr)
            if cur is None:
                return -errno.EFAULT
            if cur != val3:
                return -errno.EAGAIN
        n_requeue = timeout & 0xFFFF_FFFF           # val2 travels in the timeout slot
        woken = wake(k, mm, uaddr, val, private=private)
        src, dst = _key(mm, uaddr, private), _key(mm, uaddr2, private)
        queues = _queues(k)
        moved = 0
        while queues.get(src) and moved < n_requeue:
            th = queues[src].pop(0)
            th.wait.key = dst
            queues[dst].append(th)
            moved += 1
        return woken + moved
    if cmd == FUTEX_WAKE_OP:
        opnum, cmp, oparg, cmparg = (val3 >> 28) & 7, (val3 >> 24) & 15, (val3 >> 12) & 0xFFF, val3 & 0xFFF
        if val3 >> 31:
            oparg = 1 << oparg
        if opnum not in _OPS or cmp not in _CMPS:
            return -errno.ENOSYS
        old = _read_u32(mm, uaddr2)
        if old is None:
            return -errno.EFAULT
        if not mm.write(uaddr2, struct.pack("<I", _OPS[opnum](old, oparg) & 0xFFFF_FFFF)):
            return -errno.EFAULT
        woken = wake(k, mm, uaddr, val, private=private)
        if _CMPS[cmp](old, cmparg):
            woken += wake(k, mm, uaddr2, timeout & 0xFFFF_FFFF, private=private)
        return woken
    if cmd in (FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI):
        k.report_once(("futex-pi",), "mvemu: priority-inheritance futexes are not supported: returning ENOSYS")
        return -errno.ENOSYS
    return -errno.ENOSYS


def _others_can_run(k, t) -> bool:
    from ..process import BLOCKED, RUNNABLE
    for p in k.processes.values():
        for th in p.threads:
            if th is not t and th.state == RUNNABLE:
                return True
            if th is not t and th.state == BLOCKED and th.wait and th.wait.kind != "futex":
                return True
    return False
