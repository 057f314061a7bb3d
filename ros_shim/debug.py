"""The ROS as a debugger sees it: its threads and where their registers are (OS awareness).

The VMM's gdb stub knows vCPUs; this module implements `hvm.gdbstub.target.GuestDebugView` for the
ROS kernel, so that every ROS thread is a gdb thread: the one that runs has its registers in the
vCPU, a thread switched out has them in its saved context, and a thread that has not started yet
(a fresh exec) only has the place where it will start.
"""
from __future__ import annotations

import time

from hvm.gdbstub.target import FixedRegisters, GuestThread, LiveRegisters, SavedRegisters
from hvm.vcpu import MSR_EFER, Exit, ExitKind, Vcpu

from . import layout, signals
from .mm import PF_U, PF_W
from .process import BLOCKED, DEAD, STOPPED, Thread
from .syscalls.table import name_of


class RosDebugView:
    def __init__(self, kernel):
        self.k = kernel

    @staticmethod
    def _live(t: Thread) -> bool:
        """Whether t's registers are in a ROS vCPU right now."""
        return t.on_cpu is not None and t.on_cpu.vcpu is not None and t.entry is None

    def _thread(self, t: Thread) -> GuestThread:
        k = self.k
        proc = t.proc
        if self._live(t):
            vcpu = t.on_cpu.vcpu
            regs = LiveRegisters(vcpu)
            ring = vcpu.cpl()
            on = f"vCPU {t.on_cpu.index}"
            where = on if t.state not in (BLOCKED, STOPPED) else self._state(t) + ", on " + on
        elif t.entry is not None:
            rip, rsp = t.entry

            def moved(rip, rsp, t=t):
                t.entry = (rip, rsp)
            regs = FixedRegisters({"rip": rip, "rsp": rsp, "rflags": 0x202, "cs": layout.USER_CS,
                                   "ss": layout.USER_DS, "cr0": 0x8005_0033, "cr3": proc.mm.cr3,
                                   "cr4": 0x620, "efer": 0xD01, "fpcw": 0x37F, "mxcsr": 0x1F80,
                                   "fptag": 0xFFFF}, moved)
            ring = 3
            where = "not started"
        else:
            fixed = {"cr3": proc.mm.cr3}
            if k.vcpus:
                fixed["efer"] = k.vcpus[0].msr(MSR_EFER)
            regs = SavedRegisters(t.ctx, fixed)
            ring = regs.read(["cs"])["cs"] & 3
            where = self._state(t)
        return GuestThread(t.tid, proc.pid, regs, proc.mm.cr3,
                           f"ROS pid {proc.pid} tid {t.tid}, ring {ring}, {where}")

    @staticmethod
    def _state(t: Thread) -> str:
        if t.state == BLOCKED:
            nr = t.wait.nr if t.wait is not None else -1
            return f"blocked in {name_of(nr)}" if nr >= 0 else "blocked"
        if t.state == STOPPED:
            return "stopped"
        return "runnable"

    # -- GuestDebugView ---------------------------------------------------------------------------
    def threads(self) -> list[GuestThread]:
        out = []
        for pid in sorted(self.k.processes):
            proc = self.k.processes[pid]
            for t in proc.threads:
                if t.state != DEAD and (t.ctx is not None or t.entry is not None or self._live(t)):
                    out.append(self._thread(t))
        return out

    def thread_on(self, vcpu: Vcpu) -> int | None:
        cpu = self.k.cpu_of(vcpu)
        if cpu is None:
            return None
        t = cpu.current
        return t.tid if t is not None and t.state != DEAD else None

    def _find(self, tid: int) -> Thread | None:
        for proc in self.k.processes.values():
            for t in proc.threads:
                if t.tid == tid and t.state != DEAD:
                    return t
        return None

    def page_in(self, tid: int, va: int, write: bool) -> bool:
        t = self._find(tid)
        if t is None or va >= layout.KERNEL_BASE:
            return False
        return t.proc.mm.fault(va, PF_U | (PF_W if write else 0))

    def signal_for_exit(self, vcpu: Vcpu, exit: Exit) -> tuple[int, bytes] | None:
        cpu = self.k.cpu_of(vcpu)
        if cpu is None:
            return None
        t = cpu.current
        if t is None or t.state == DEAD or getattr(t, "oom", False):
            return None                       # (out of memory is a SIGKILL: no stop, as on Linux)
        if exit.kind in (ExitKind.SYSCALL, ExitKind.BUDGET, ExitKind.DEBUG):
            return None
        sig, code, addr, _what = self.k.fault_signal_of(t, exit)
        return sig, signals.SigInfo(sig, code, addr=addr).pack()

    def post_signal(self, tid: int, signal: int) -> None:
        t = self._find(tid)
        if t is not None:
            self.k.post_signal(t.proc, signals.SigInfo(signal, signals.SI_USER), thread=t)
            if t.on_cpu is not None and t.on_cpu.vcpu is not None:
                # Delivered at the next reschedule: end the slice now (as a time slice would).
                t.on_cpu.vcpu.preempt_requested = True

    def kill_all(self) -> None:
        k = self.k
        for proc in sorted(k.processes.values(), key=lambda p: p is k.init):
            if not proc.zombie:
                k.kill_process(proc, signals.SIGKILL, "killed by the debugger (gdb kill)")

    def exit_status(self) -> tuple[int | None, int | None]:
        init = self.k.init
        word = init.exit_status if init is not None else 0
        if word is None:
            return 0, None
        if word & 0x7F:
            return None, word & 0x7F
        return (word >> 8) & 0xFF, None

    def exe(self, pid: int | None) -> str:
        proc = self.k.processes.get(pid) if pid else self.k.init
        return (proc or self.k.init).exe

    def auxv(self, tid: int) -> bytes | None:
        t = self._find(tid)
        return t.proc.auxv if t is not None and t.proc.auxv else None

    def set_trace(self, on: bool) -> None:
        self.k.trace = on

    def kick(self) -> None:
        self.k.kick()

    def resumed(self) -> None:
        """A debugger stop is over: a stop does not end the running thread's time slice (the
        watchdog may have asked for a switch meanwhile), a new slice starts now."""
        w = self.k.watchdog
        if w is not None:
            w.slice_start = time.monotonic()
        for v in self.k.vcpus:
            v.preempt_requested = False
