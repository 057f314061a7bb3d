"""The machine: guest-physical memory in partitions, vCPUs and the run loop (kvmtool's shape).

The ROS partition is all a ROS vCPU can reach; HRT vCPUs reach all of memory. The VMM serves
hypercalls itself and hands every other exit of a ROS vCPU to the guest OS that runs there (the ROS
kernel model) through the `GuestOS` interface. One host thread runs every vCPU in a fixed order:
the ROS vCPUs (`--ros-cpus`), then the HRT vCPUs with work.
"""
from __future__ import annotations

import errno
import sys
import time
from typing import Callable, Protocol

from . import abi
from .events import Channels
from .hrt import Hrt, HrtError
from .memory import GuestMemory
from .vcpu import PARKED, Exit, Vcpu

_HC_NAMES = {number: name for name, number in abi.HC.items()}
_HC_COMPLETE_EVENT = abi.HC["COMPLETE_EVENT"]


class GuestOS(Protocol):
    finished: bool
    exit_status: int
    idle: bool                                  # nothing to run on its vCPU right now

    def boot(self, vcpus: list[Vcpu]) -> None: ...
    def ready(self, vcpu: Vcpu) -> bool: ...                    # before a run: anything to run on it?
    def on_syscall(self, vcpu: Vcpu) -> bool: ...
    def on_exception(self, vcpu: Vcpu, exit: Exit) -> bool: ...
    def on_exit(self, vcpu: Vcpu, exit: Exit) -> None: ...
    def reschedule(self, vcpu: Vcpu) -> None: ...
    def hvm_event(self, channel: int) -> None: ...              # the HRT posted on a channel
    def wants_cpu(self) -> bool: ...
    def lend_cpu(self, vcpu: Vcpu | None, others_want=None) -> None: ...  # time-slice a vCPU of ours
    def console_write(self, pid: int, fd: int, data: bytes) -> int | None: ...  # --hrt-local write


class _Dispatch:
    """What a vCPU calls from inside its hooks; bound methods as attributes keep the hot path short."""

    def __init__(self, on_syscall, on_exception, on_hypercall):
        self.on_syscall = on_syscall
        self.on_exception = on_exception
        self.on_hypercall = on_hypercall


class Machine:
    def __init__(self, mem_size: int, hrt_size: int = 0, hrt_cpus: int = 1, log=None, trace: bool = False,
                 stats: bool = False, console: bool = False, hrt_wp: bool = True,
                 hrt_local: frozenset[str] = frozenset(), ros_cpus: int = 1):
        self.memory = GuestMemory(mem_size + hrt_size)
        self.ros = self.memory.add_partition("ros", 0, mem_size)
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.trace = trace
        self.vcpus: list[Vcpu] = []
        self.ros_cpus = ros_cpus
        self.hrt: Hrt | None = None
        self.debugger = None                  # a gdb stub (hvm.gdbstub.server.GdbServer), if any
        self._pending_calls: dict[int, Callable[[int], None]] = {}
        self._async_calls: dict[int, int] = {}      # per HRT vCPU: INVOKE_FUNC calls not done yet
        self.channels = Channels(self.memory, self.log, trace, stats)
        self.console = console or trace
        self.hrt_wp = hrt_wp
        self.hrt_local = hrt_local
        self.guest: GuestOS | None = None
        self._ros_vcpus: list[Vcpu] = []
        if hrt_size:
            hpart = self.memory.add_partition("hrt", mem_size, hrt_size)
            self.hrt = self._new_hrt(hpart, [self.ros, hpart], hrt_cpus)

    def add_ros_vcpu(self, guest: GuestOS) -> Vcpu:
        dispatch = _Dispatch(guest.on_syscall, guest.on_exception, self.on_port_io)
        vcpu = Vcpu(len(self.vcpus), self.memory, [self.ros], dispatch)
        # The ROS may park a run inside a blocking system call (Vcpu.park), not with a debugger
        # (its stops and register views assume a stopped vCPU).
        vcpu.parkable = self.debugger is None
        self.vcpus.append(vcpu)
        return vcpu

    def on_port_io(self, vcpu: Vcpu, port: int, value: int) -> bool:
        """`out` on a ROS vCPU. The ROS kernel's own hypercalls come through `ros_hypercall` (it is
        modelled in Python); a guest program in ring 3 doing port I/O gets #GP from the guest OS."""
        return False

    # -- hypercalls from the ROS kernel ------------------------------------------------------------
    def ros_hypercall(self, nr: int, a0: int = 0, a1: int = 0, *, data: bytes | None = None,
                      on_done: Callable[[int], None] | None = None) -> int | None:
        """A hypercall issued by the ROS kernel (ring 0 of a ROS vCPU). Returns its result, or None
        when it completes later (INVOKE_FUNC_SYNC): then `on_done(result)` is called."""
        if nr == _HC_COMPLETE_EVENT and not self.trace:      # the partner's, once per forwarded event
            return self._complete_event(a0)
        name = _HC_NAMES.get(nr)
        if name == "GET_STATE":                  # the null hypercall (either side): nothing to check
            result = 0 if self.hrt is None else self.hrt.state_bits()
        else:
            result = self._ros_hypercall(name, a0, a1, data, on_done)
        if self.trace:
            shown = "pending" if result is None else result
            self.log(f"[hvm] ROS hypercall {name or nr}({a0:#x}, {a1:#x}) = {shown}")
        return result

    def _ros_hypercall(self, name, a0, a1, data, on_done):
        if name is None:
            return -errno.ENOSYS
        if abi.HYPERCALLS[name][1] == "hrt":
            return -errno.EPERM
        hrt = self.hrt
        if hrt is None:
            return -errno.ENODEV                     # this machine has no HRT partition (--hrt-mem 0)
        if name == "COMPLETE_EVENT":
            return self._complete_event(a0)
        try:
            if name == "INSTALL_IMAGE":
                if hrt.booted:
                    return -errno.EBUSY
                hrt.install(data or b"")
                return 0
            if name == "BOOT_HRT":
                if hrt.image is None:
                    return -errno.ENOENT
                if hrt.booted:
                    return -errno.EBUSY
                hrt.boot(self._make_hrt_vcpu)
                return 0
            if name in ("INVOKE_FUNC", "INVOKE_FUNC_SYNC"):
                if not hrt.booted:
                    return -errno.ENOENT
                cpu = 0
                if hrt.cpus[cpu].state in ("halted", "dead"):
                    return -errno.EIO                  # the AeroKernel on it has stopped
                if name == "INVOKE_FUNC_SYNC":
                    if cpu in self._pending_calls:
                        return -errno.EBUSY
                    self._pending_calls[cpu] = on_done
                else:
                    self._async_calls[cpu] = self._async_calls.get(cpu, 0) + 1
                kind = abi.WORK["SELFTEST"] if a0 == 0 else abi.WORK["CALL"]
                hrt.post_work(cpu, kind, a0, a1)
                return None if name == "INVOKE_FUNC_SYNC" else 0
            if name == "RESET_HRT":
                self._reset_hrt(clear=a0 == 0)
                return 0
            if name == "MERGE":
                if not hrt.booted:
                    return -errno.ENOENT
                if a0 & 0xFFF or not self.ros.base <= a0 < self.ros.end:
                    return -errno.EINVAL              # a CR3 outside the ROS partition
                hrt.merge(a0)
                return 0
            if name == "UNMERGE":
                hrt.unmerge()
                return 0
            if name == "CREATE_THREAD":
                if not (hrt.booted and hrt.merged):
                    return -errno.ENOENT
                func, arg0, arg1, arg2, stack, fs_base, channel, cpu = data
                if any(v >> 47 for v in (func, stack, channel)) or not func or not stack or not channel:
                    return -errno.EINVAL              # program addresses live in the lower half
                if cpu >= len(hrt.cpus) and cpu != 0xFFFF_FFFF_FFFF_FFFF:
                    return -errno.EINVAL
                return hrt.create_thread(func, (arg0, arg1, arg2), stack, fs_base, channel,
                                         -1 if cpu >> 63 else cpu, partner=a0, pid=a1)
            if name == "TLB_SHOOTDOWN":
                if hrt.merged:
                    hrt.flush_tlbs(code=bool(a0 & 1))
                    self.channels.stats.shootdowns += 1
                return 0
        except HrtError as e:
            self.log(f"mvemu: HVM: {e}")
            return -errno.ENOEXEC
        return -errno.ENOSYS

    def _complete_event(self, channel: int) -> int:
        """COMPLETE_EVENT: the partner completed the event on `channel`; wake the HRT vCPU on it."""
        hrt = self.hrt
        if hrt is None:
            return -errno.ENODEV
        waiting = self.channels.completed(channel, hrt.cr3)
        if waiting is None:
            return -errno.ENOENT
        hrt.event_completed(waiting, channel)
        return 0

    def _new_hrt(self, part, all_parts, ncpus: int) -> Hrt:
        hrt = Hrt(self.memory, part, all_parts, ncpus, self.log, self.trace, self.channels, wp=self.hrt_wp,
                  local=self.hrt_local)
        hrt.local_write = self._console_write
        hrt.show_console = self.console
        hrt.on_call_done = self._call_done
        hrt.serve_now = self._serve_now
        return hrt

    def _console_write(self, pid: int, fd: int, data: bytes) -> int | None:
        """A write the AeroKernel serves itself (--hrt-local write): the guest OS says whether fd of
        process `pid` is still mvemu's own stdout/stderr and writes it, or returns None."""
        return None if self.guest is None else self.guest.console_write(pid, fd, data)

    def _make_hrt_vcpu(self, index: int, handler) -> Vcpu:
        vcpu = Vcpu(len(self.vcpus), self.memory, self.hrt.all_parts, handler)
        self.vcpus.append(vcpu)
        if self.debugger is not None:
            self.debugger.add_vcpu(vcpu)          # breakpoints and watchpoints apply to it too
        return vcpu

    def _call_done(self, cpu, result: int) -> None:
        if self._async_calls.get(cpu.index):
            # the vCPU runs its calls in the order they were queued: this one was asynchronous
            self._async_calls[cpu.index] -= 1
            return
        done = self._pending_calls.pop(cpu.index, None)
        if done is not None:
            done(result)

    def _reset_hrt(self, clear: bool = True) -> None:
        """Stop the HRT's vCPUs and forget its image (and, if `clear`, zero its memory). The ROS
        kernel also resets it, without clearing, when the merged process exits or execs."""
        hrt = self.hrt
        for cpu in hrt.cpus:
            if cpu.vcpu is not None:
                self.vcpus.remove(cpu.vcpu)
        hrt.retired = True
        for cb in self._pending_calls.values():
            cb(-errno.ECANCELED)
        self._pending_calls.clear()
        self._async_calls.clear()
        self.channels.pending.clear()
        self.hrt = self._new_hrt(hrt.part, hrt.all_parts, len(hrt.cpus))
        if clear:
            self.memory.zero(hrt.part.base, hrt.part.size)
        if self.trace:
            self.log(f"[hvm] HRT reset: vCPUs stopped, image forgotten{', HRT memory cleared' if clear else ''}")

    def _hrt_busy(self) -> bool:
        """For the guest OS: does an HRT vCPU have work (so the machine goes on with it)?"""
        hrt = self.hrt
        return hrt is not None and hrt.any_runnable()

    # -- the run loop ------------------------------------------------------------------------------
    def _serve_now(self, hcpu) -> None:
        """From inside HRT vCPU `hcpu`'s POST_EVENT (a nested run: Unicorn runs one engine from
        another's hook): give each ROS vCPU one run, as the run loop would after the HRT vCPU
        halted, so the partner can take, perform and complete the event first. Not with a debugger
        (its stops and thread list assume one vCPU running at a time)."""
        guest, ros_vcpus = self.guest, self._ros_vcpus
        if guest is None or self.debugger is not None or guest.finished:
            return
        books = self.channels.keep_books                 # (--stats: host time per side)
        t0 = time.perf_counter_ns() if books else 0
        for vcpu in ros_vcpus:
            if guest.finished or not guest.ready(vcpu):
                continue
            exit = vcpu.run()
            if exit is not PARKED:                       # (a parked run needs nothing more)
                guest.on_exit(vcpu, exit)
        guest.lend_cpu(hcpu.vcpu, hcpu.others_want)     # the HRT vCPU's slice again
        if books:
            dt = time.perf_counter_ns() - t0
            stats = self.channels.stats
            stats.ros_ns += dt
            stats.hrt_ns -= dt                           # (the HRT run's time includes it)

    # -- the run loop ------------------------------------------------------------------------------
    def run(self, guest: GuestOS) -> int:
        """Boot `guest` on a ROS vCPU and run every vCPU until the guest finishes; its exit status.

        One host thread, a fixed order: each ROS vCPU with a thread to run, until it blocks or its
        slice ends (the guest's watchdog ends a slice only when another vCPU has work), then each
        HRT vCPU with work until it waits, halts or forwards an event."""
        ros_vcpus = self._ros_vcpus = [self.add_ros_vcpu(guest) for _ in range(self.ros_cpus)]
        self.guest = guest
        guest.hvm_busy = self._hrt_busy
        self.channels.notify_ros = guest.hvm_event
        dbg = self.debugger
        if dbg is not None:
            dbg.start()                            # gdb attaches before the first instruction
        if not guest.finished:
            guest.boot(ros_vcpus)
        stats = self.channels.stats
        clock = time.perf_counter_ns
        while not guest.finished:
            if dbg is not None:
                dbg.poll()                         # gdb's Ctrl-C while the guest waits for events
            for vcpu in ros_vcpus:
                if guest.finished or not guest.ready(vcpu):
                    continue
                t0 = clock()
                exit = vcpu.run()
                if dbg is None or not dbg.on_exit(vcpu, exit):     # a debugger's stop or a fault it shows
                    guest.on_exit(vcpu, exit)
                stats.ros_ns += clock() - t0
            hrt = self.hrt
            if hrt is not None:
                runnable = hrt.runnable
                for cpu in runnable:
                    # An HRT vCPU runs until it waits, halts or forwards an event, or until its
                    # time slice ends while the ROS or another HRT vCPU has work (the guest's
                    # watchdog slices it like a ROS thread): a spinning HRT thread cannot starve
                    # the ROS, whose partner may be about to set the flag it spins on.
                    t0 = clock()
                    guest.lend_cpu(cpu.vcpu, cpu.others_want)
                    exit = hrt.run_vcpu(cpu)
                    guest.lend_cpu(None)
                    if dbg is None or not dbg.on_exit(cpu.vcpu, exit):
                        hrt.on_exit(cpu, exit)
                    stats.hrt_ns += clock() - t0
            if guest.idle and not guest.finished:
                guest.reschedule(ros_vcpus[0])     # waits for events when no vCPU has work
        for vcpu in ros_vcpus:
            vcpu.unpark()                          # (a run parked in a call ends here)
        if dbg is not None:
            dbg.finish(guest.exit_status)
        return guest.exit_status
