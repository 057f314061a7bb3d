"""Scheduling of ROS threads on the ROS vCPUs, blocking and waking, and waiting for host events.

Deterministic by default: one host thread runs every vCPU in turn; a thread runs until it blocks,
exits, is interrupted by a signal, or uses up its time slice. Runnable threads wait in one run queue
that every ROS vCPU takes from (`--ros-cpus N`); a thread can migrate from one vCPU to another. The
time slice is enforced by a watchdog host thread that stops the vCPU (an asynchronous `emu_stop`)
only when another thread is runnable, another vCPU has work or a timer is due, so a program that
spins can never hang the machine and a lone thread costs nothing. The watchdog also
watches the wakeup fd of host signals (Ctrl-C), so they reach the guest even while it computes.
"""
from __future__ import annotations

import collections
import os
import select
import signal as host_signal
import threading
import time

from .process import BLOCKED, DEAD, RUNNABLE, Thread, Wait

QUANTUM_S = 0.01


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class RosCpu:
    """One ROS vCPU as the ROS kernel sees it: which thread it holds and what it must do next."""

    def __init__(self, index: int, kstack_pa: int, kstack_top: int):
        self.index = index
        self.vcpu = None                  # the hvm Vcpu, once booted
        self.current: Thread | None = None    # the thread whose registers the vCPU holds
        self.need_resched = False         # leave the fast path: switch, deliver a signal, ...
        self.slice_over = False           # its thread used up its slice: switch if others wait
        self.idle = True                  # nothing to run on it
        self.kstack_pa = kstack_pa        # its kernel stack (the ring-3 entry frame lives there)
        self.kstack_top = kstack_top

    def __repr__(self) -> str:
        return f"<RosCpu {self.index} {'idle' if self.idle else self.current}>"


class Scheduler:
    def __init__(self):
        self.runq: collections.deque[Thread] = collections.deque()
        self.blocked: set[Thread] = set()
        self.timed: set[Thread] = set()    # of those, the ones whose wait has a deadline
        self.fd_waiters: dict[int, set[Thread]] = {}    # host fd -> threads waiting on it
        self.external_waits = 0        # fd waits the ROS cannot see change (not guest pipes): poll them
        self.timers: list = []            # (deadline ns, callback) of interval timers, kept sorted

    def make_runnable(self, t: Thread) -> None:
        if t.state == DEAD:
            return
        self._unblock(t)
        t.state = RUNNABLE
        if t not in self.runq:
            self.runq.append(t)

    def block(self, t: Thread, wait: Wait) -> None:
        t.wait = wait
        t.state = BLOCKED
        self.blocked.add(t)
        if wait.deadline is not None:
            self.timed.add(t)
        if wait.kind == "fd":
            for fd, _ in wait.fds:
                self.fd_waiters.setdefault(fd, set()).add(t)
            if not wait.internal:
                self.external_waits += 1

    def _unblock(self, t: Thread) -> None:
        if t not in self.blocked:
            return
        self.blocked.discard(t)
        self.timed.discard(t)
        w = t.wait
        if w is not None and w.kind == "fd":
            for fd, _ in w.fds:
                waiters = self.fd_waiters.get(fd)
                if waiters is not None:
                    waiters.discard(t)
                    if not waiters:
                        del self.fd_waiters[fd]
            if not w.internal:
                self.external_waits -= 1

    def run_in_place(self, t: Thread) -> None:
        """End `t`'s wait without queueing it: the vCPU that holds it runs it next."""
        self._unblock(t)
        t.state = RUNNABLE

    def wake_fd(self, host_fd: int) -> None:
        """Something happened on host_fd (a guest wrote, read or closed the other end of a pipe):
        its waiters look again."""
        for t in list(self.fd_waiters.get(host_fd, ())):
            self.wake(t, woken=True)

    def wake(self, t: Thread, **outcome) -> None:
        """End `t`'s wait (woken/timed_out/interrupted=True); it becomes runnable."""
        if t.state != BLOCKED:
            return
        if t.wait is not None:
            for k, v in outcome.items():
                setattr(t.wait, k, v)
        self.make_runnable(t)

    def remove(self, t: Thread) -> None:
        self._unblock(t)
        if t in self.runq:
            self.runq.remove(t)

    def pick(self, cpu: int) -> Thread | None:
        """The first queued thread that may run on ROS vCPU `cpu` (its affinity), out of the queue;
        threads that no longer wait to run are dropped on the way."""
        q = self.runq
        while q and q[0].state != RUNNABLE:
            q.popleft()
        for i, t in enumerate(q):
            if t.state == RUNNABLE and t.allowed_on(cpu):
                del q[i]
                return t
        return None

    def runnable_on(self, cpu: int) -> bool:
        """A queued thread may run on ROS vCPU `cpu`."""
        return any(t.state == RUNNABLE and t.allowed_on(cpu) for t in self.runq)

    def next_deadline(self, extra: int | None = None) -> int | None:
        deadlines = [t.wait.deadline for t in self.timed]
        if extra is not None:
            deadlines.append(extra)
        return min(deadlines) if deadlines else None

    def poll_events(self, timeout_ns: int | None, wakeup_fd: int) -> None:
        """Wait (up to timeout_ns; None = forever, 0 = just look) for a blocked thread's fd or deadline,
        then wake the threads whose wait is over."""
        fd_waiters = [t for t in self.blocked if t.wait and t.wait.kind == "fd"]
        p = select.poll()
        wanted: dict[int, int] = {}
        for t in fd_waiters:
            for fd, events in t.wait.fds:
                wanted[fd] = wanted.get(fd, 0) | events
        if wakeup_fd >= 0:
            wanted[wakeup_fd] = select.POLLIN
        for fd, events in wanted.items():
            p.register(fd, events)
        ms = None if timeout_ns is None else max(0, (timeout_ns + 999_999) // 1_000_000)
        try:
            ready = dict(p.poll(ms))
        except InterruptedError:
            ready = {}
        if wakeup_fd in ready:
            try:
                os.read(wakeup_fd, 4096)
            except BlockingIOError:
                pass
        for t in fd_waiters:
            if any(ready.get(fd) for fd, _ in t.wait.fds):
                self.wake(t, woken=True)
        self.wake_timed_out()

    def wake_timed_out(self) -> None:
        """Wake the blocked threads whose deadline has passed."""
        if self.timed:
            now = now_ns()
            for t in [t for t in self.timed if now >= t.wait.deadline]:
                self.wake(t, timed_out=True)


class Watchdog:
    """Ends a vCPU run when its time slice is over and something else needs the CPU."""

    def __init__(self, kernel):
        self.k = kernel
        self.running = None               # the vCPU inside run(), if any
        self.slice_start = 0
        self.wants = None                 # for a lent vCPU (lend): does anyone else want the CPU?
        self._lent_calls = 0              # its hook count when last seen
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup_r, self.wakeup_w = r, w
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="mvemu-watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                readable, _, _ = select.select([self.wakeup_r], [], [], QUANTUM_S)
            except (OSError, ValueError):
                return
            v = self.running
            if v is None:
                continue
            if readable:                        # a host signal arrived: let the main thread see it
                v.request_preempt()
                continue
            if self.wants is not None and v.hook_calls != self._lent_calls:
                # A lent vCPU that exits to the VMM (hypercalls, forwarded events) gives the CPU
                # back by itself soon; only one that has run a whole slice without a single
                # exit (a thread spinning on a flag) is stopped from here.
                self._lent_calls = v.hook_calls
                self.slice_start = time.monotonic()
                continue
            wants = self.wants or self.k.wants_cpu
            if time.monotonic() - self.slice_start >= QUANTUM_S and wants():
                v.request_preempt()

    def lend(self, vcpu, wants) -> None:
        """Time-slice a vCPU that is not the guest's (an HRT vCPU): stop it at the end of its slice
        if `wants()` says someone else needs the host CPU. `lend(None, None)` ends that."""
        self.running = None
        self.wants = wants
        self._lent_calls = vcpu.hook_calls if vcpu is not None else 0
        self.slice_start = time.monotonic()
        self.running = vcpu

    def close(self) -> None:
        self._stop = True
