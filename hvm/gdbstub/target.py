"""The debug target over the machine: threads, registers, memory, breakpoints, stepping, stop reasons.

Threads. A VMM only knows vCPUs; threads are the guest OS's. The guest OS tells the debugger about
its threads through `GuestDebugView` (the ROS implements it in ros_shim/debug.py): every ROS thread
is a gdb thread with its Linux tid, and its registers are wherever the OS keeps them (the vCPU for
the thread that runs, a saved context for the others). The AeroKernel is the other guest OS: once
the HRT is booted, each HRT vCPU is a gdb thread (tid HRT_TID_BASE + index: the vCPU's idle thread,
its work loop), and each top-level HRT thread of split execution is one too, with the VMM's id as
its tid, labelled with its vCPU and its partner in the ROS (`aerokernel.AeroKernelView` reads
which thread each vCPU runs from the AeroKernel's own tables).

Execution. Breakpoints, stepping and watchpoints are armed on every vCPU with
`Vcpu.set_guest_debug` when the machine resumes (not on each Z packet: gdb removes and re-inserts
all breakpoints around every stop, and re-arming drops translated code). The vCPU calls back
`on_code`/`on_watch` from inside its run and stops with a DEBUG exit when told to; `debug_exit`
turns that exit into a gdb stop event. With nothing armed there are no hooks at all.

Memory is read and written at virtual addresses through the page tables of the selected thread
(`hvm.pagewalk`); for a ROS thread a page its process has not touched yet is paged in first, as
ptrace does on Linux (so `print` of an untouched global reads 0 instead of failing).
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import Protocol

from .. import abi, pagewalk
from ..memory import PAGE_SIZE
from ..vcpu import MSR_EFER, Exit, ExitKind, Vcpu, context_state, set_context_state
from . import regs
from .aerokernel import AeroKernelView
from .interface import (HW_BREAK, SW_BREAK, WATCH_ACCESS, WATCH_READ, WATCH_REASON, WATCH_WRITE, ResumeAction,
                        StopEvent, TargetError)

HRT_TID_BASE = 900                       # HRT vCPU i is gdb thread 900 + i (ROS tids start at 1000);
#                                          HRT thread k (the VMM's id, k < 900) is gdb thread k
UPPER_HALF = 0xFFFF_8000_0000_0000
SIGINT, SIGTRAP = 2, 5

# gdb register name -> the vCPU's name for it (vcpu.STATE_REGS), where they differ.
_STATE_NAME = {"eflags": "rflags", "fctrl": "fpcw", "fstat": "fpsw", "ftag": "fptag", "fiseg": "fcs",
               "fioff": "fip", "foseg": "fds", "fooff": "fdp", **{f"st{i}": f"fp{i}" for i in range(8)}}
_DERIVED = ("orig_rax", "efer", "cpl")


# -- where a thread's registers are ---------------------------------------------------------------------
class RegisterFile(Protocol):
    def read(self, names) -> dict: ...
    def write(self, name: str, value) -> None: ...


class LiveRegisters:
    """The registers a vCPU holds right now."""

    def __init__(self, vcpu: Vcpu):
        self.vcpu = vcpu

    def read(self, names) -> dict:
        names = list(names)
        out = self.vcpu.state([n for n in names if n != "efer"])
        if "efer" in names:
            out["efer"] = self.vcpu.msr(MSR_EFER)
        return out

    def write(self, name: str, value) -> None:
        if name == "efer":
            self.vcpu.set_msr(MSR_EFER, value)
        else:
            self.vcpu.set_state(name, value)


class SavedRegisters:
    """A saved vCPU context (a thread off the CPU). `fixed` overrides what a context does not hold
    for that thread (its address space's CR3, EFER); those cannot be written."""

    def __init__(self, ctx, fixed: dict):
        self.ctx = ctx
        self.fixed = fixed

    def read(self, names) -> dict:
        names = list(names)
        out = context_state(self.ctx, [n for n in names if n not in self.fixed])
        out.update({n: self.fixed[n] for n in names if n in self.fixed})
        return out

    def write(self, name: str, value) -> None:
        if name in self.fixed:
            raise TargetError(f"{name} of a thread that is not running cannot be changed", errno.EPERM)
        set_context_state(self.ctx, name, value)


class FixedRegisters:
    """A thread that has not started yet: the OS knows where it will start, nothing else; only
    rip and rsp can be changed (they are where it will start)."""

    def __init__(self, values: dict, on_write):
        self.values = values
        self.on_write = on_write

    def read(self, names) -> dict:
        return {n: self.values.get(n, bytes(10) if n.startswith("fp") and n[2:].isdigit() else 0) for n in names}

    def write(self, name: str, value) -> None:
        if name not in ("rip", "rsp"):
            raise TargetError(f"{name} of a thread that has not started cannot be changed", errno.EPERM)
        self.values[name] = value
        self.on_write(self.values["rip"], self.values["rsp"])


# -- what a guest OS tells the debugger ------------------------------------------------------------------
@dataclass
class GuestThread:
    tid: int
    pid: int
    registers: RegisterFile
    cr3: int
    description: str                 # for qThreadExtraInfo: "ROS pid 1000 tid 1001, ring 3, vCPU 0"
    user_only: bool = True           # a ROS thread: its upper-half (kernel) instructions are not its own
    partner: int = 0                 # an HRT thread: its partner's tid (pages in through its process)


class GuestDebugView(Protocol):
    """OS awareness: the guest OS's threads, as the debugger needs them."""

    def threads(self) -> list[GuestThread]: ...
    def thread_on(self, vcpu: Vcpu) -> int | None: ...          # whose state the vCPU holds
    def page_in(self, tid: int, va: int, write: bool) -> bool: ...
    def signal_for_exit(self, vcpu: Vcpu, exit: Exit) -> tuple[int, bytes] | None: ...  # a fault's
    #     signal and siginfo_t, or None if the exit is not a fault that becomes a signal
    def post_signal(self, tid: int, signal: int) -> None: ...
    def kill_all(self) -> None: ...
    def exit_status(self) -> tuple[int | None, int | None]: ...  # (exit code, killing signal)
    def exe(self, pid: int | None) -> str: ...
    def auxv(self, tid: int) -> bytes | None: ...
    def set_trace(self, on: bool) -> None: ...
    def kick(self) -> None: ...                                  # leave a wait for events (any host thread)
    def resumed(self) -> None: ...                               # the debugger let the machine go on


# -- stepping ----------------------------------------------------------------------------------------------
@dataclass
class Step:
    """One thread's vCont `s` (one instruction) or `r` (while the pc is in [start, end))."""
    kind: str
    start: int = 0
    end: int = 0
    first: int | None = None          # address of the instruction the step executes
    mark: tuple = ()                  # the vCPU's (exceptions, runs) when that instruction began
    moved: bool = False
    user_only: bool = True

    def done(self, vcpu: Vcpu, addr: int) -> bool:
        """Called before each instruction of the stepping thread: True once it should stop here."""
        if self.user_only and addr >= UPPER_HALF:
            return False                              # the ROS's own entry code, not the thread's
        mark = (vcpu.exceptions, vcpu.runs)
        if self.first is None:
            self.first, self.mark = addr, mark
            return False
        if addr == self.first and not self.moved and mark != self.mark:
            self.mark = mark                          # the same instruction again: it faulted (and the
            return False                              # fault was served) or blocked in a system call
        self.moved = True
        return not (self.kind == "r" and self.start <= addr < self.end)


@dataclass
class Watch:
    kind: int                         # WATCH_WRITE, WATCH_READ, WATCH_ACCESS
    addr: int
    length: int

    @property
    def access(self) -> str:
        return {WATCH_WRITE: "w", WATCH_READ: "r", WATCH_ACCESS: "rw"}[self.kind]


@dataclass
class _Pending:
    """What the machine does on its next debug exits, set by `resume`."""
    steps: dict = field(default_factory=dict)      # tid -> Step
    signals: dict = field(default_factory=dict)    # tid -> Linux signal gdb asked to deliver (None: default)
    default_signal: int = 0


class MachineTarget:
    """interface.Target over a Machine and the guest OS's GuestDebugView."""

    def __init__(self, machine, guest: GuestDebugView, log=None):
        self.machine = machine
        self.guest = guest
        self.log = log or machine.log
        self.breakpoints: dict[int, set[int]] = {}     # address -> kinds (SW_BREAK, HW_BREAK)
        self.watches: list[Watch] = []
        self.run = _Pending()
        self.current = 0                               # the thread of the last stop
        self._after_watch: tuple[int, StopEvent] | None = None   # stepping past a watched access
        self._threads_cache: dict[int, GuestThread] | None = None
        self.siginfo: dict[int, bytes] = {}           # tid -> siginfo_t of the fault it stopped on
        self.detached = False
        self._ak_view: AeroKernelView | None = None     # the booted AeroKernel's threads

    # -- threads ---------------------------------------------------------------------------------
    def _hrt_cpus(self):
        hrt = self.machine.hrt
        if hrt is None or not hrt.booted:
            return []
        return [c for c in hrt.cpus if c.vcpu is not None]

    def _aerokernel(self) -> AeroKernelView | None:
        """The view of the booted AeroKernel (made again when the HRT is reset and booted anew)."""
        hrt = self.machine.hrt
        if hrt is None or not hrt.booted or hrt.image is None:
            return None
        view = self._ak_view
        if view is None or view.hrt is not hrt:
            view = self._ak_view = AeroKernelView(hrt)
        return view

    @staticmethod
    def _is_hrt_thread(t) -> bool:
        """An AeroKernel thread that is a gdb thread of its own: a program thread with the VMM's id."""
        return t is not None and t.program and 0 < t.id < HRT_TID_BASE

    def _hrt_threads(self, ros: dict[int, GuestThread]) -> dict[int, GuestThread]:
        """The HRT's gdb threads: each vCPU (its idle thread: live while it runs, else what it saved
        when it switched to a program thread) and each live top-level HRT thread."""
        cpus = self._hrt_cpus()
        if not cpus:
            return {}
        hrt = self.machine.hrt
        ak = self._aerokernel()
        snap = ak.snapshot(len(hrt.cpus)) if ak is not None else None
        out: dict[int, GuestThread] = {}
        by_cpu = {c.index: c for c in cpus}
        for cpu in cpus:
            v = cpu.vcpu
            cur = snap.current.get(cpu.index) if snap else None
            system = self._system_registers(v)
            tid = HRT_TID_BASE + cpu.index
            if self._is_hrt_thread(cur) and cpu.index in snap.idle:
                regs_ = ak.saved_registers(snap.idle[cpu.index], system)
                out[tid] = GuestThread(tid, 0, regs_, system["cr3"],
                                       f"HRT vCPU {cpu.index}, ring 0, idle thread switched out for "
                                       f"HRT thread {cur.id}", user_only=False)
            else:
                what = cpu.state
                if cur is not None and not cur.idle and not cur.program:
                    what += f", kernel thread {cur.id:#x}"
                out[tid] = GuestThread(tid, 0, LiveRegisters(v), system["cr3"],
                                       f"HRT vCPU {cpu.index}, ring {v.cpl()}, {what}", user_only=False)
        for t in (snap.program if snap else []):
            if not self._is_hrt_thread(t):
                continue
            cpu = by_cpu.get(t.cpu)
            if cpu is None:
                continue
            v = cpu.vcpu
            info = hrt.threads.get(t.id, {})
            partner = info.get("partner", 0)
            pt = ros.get(partner)
            running = snap.current.get(t.cpu) is not None and snap.current[t.cpu].addr == t.addr
            if running:
                regs_, ring, where = LiveRegisters(v), v.cpl(), self._forwarding(hrt, t)
            else:
                regs_, ring, where = ak.saved_registers(t, self._system_registers(v)), 0, ", switched out"
            out[t.id] = GuestThread(t.id, pt.pid if pt else 0, regs_, v.reg("cr3"),
                                    f"HRT thread {t.id}, ring {ring}, vCPU {t.cpu}, partner {partner}{where}",
                                    user_only=False, partner=partner if pt else 0)
            if pt is not None:
                pt.description += f", partner of HRT thread {t.id}"
        return out

    @staticmethod
    def _system_registers(v: Vcpu) -> dict:
        """What a switched-out AeroKernel thread shares with its vCPU: the system registers."""
        return {"cr0": v.reg("cr0"), "cr2": v.reg("cr2"), "cr3": v.reg("cr3"), "cr4": v.reg("cr4"),
                "efer": v.msr(MSR_EFER)}

    def _forwarding(self, hrt, t) -> str:
        """', forwarded write' while the thread waits for its partner to perform an event."""
        try:
            raw = pagewalk.read(self.machine.memory, hrt.cr3, t.channel, 8 * len(abi.EVENT_FIELDS))
        except pagewalk.PageFault:
            return ""
        ev = dict(zip(abi.EVENT_FIELDS, struct.unpack(f"<{len(abi.EVENT_FIELDS)}Q", raw)))
        if ev["thread"] != t.id or ev["state"] not in (abi.EVENT_STATE["POSTED"], abi.EVENT_STATE["TAKEN"]):
            return ""
        kind = ev["kind"]
        if kind == abi.EVENT_KIND["SYSCALL"]:
            from ros_shim.syscalls.names import NAMES       # (as hvm/events.py names them)
            nr = ev["nr"]
            return f", forwarded {NAMES.get(nr, f'syscall {nr}')}"
        if kind == abi.EVENT_KIND["PAGE_FAULT"]:
            return f", forwarded page fault at {ev['addr']:#x}"
        if kind == abi.EVENT_KIND["EXCEPTION"]:
            return f", forwarded exception {ev['vector']}"
        return ""

    def _all(self) -> dict[int, GuestThread]:
        if self._threads_cache is None:
            threads = {t.tid: t for t in self.guest.threads()}
            threads.update(self._hrt_threads(threads))
            self._threads_cache = threads
        return self._threads_cache

    def invalidate(self) -> None:
        """The guest ran: thread list and register locations may have changed."""
        self._threads_cache = None

    def _thread(self, tid: int) -> GuestThread:
        t = self._all().get(tid)
        if t is None:
            raise TargetError(f"no thread {tid}", errno.ESRCH)
        return t

    def threads(self) -> list[int]:
        return list(self._all())

    def thread_alive(self, tid: int) -> bool:
        return tid in self._all()

    def thread_extra_info(self, tid: int) -> str:
        return self._thread(tid).description

    def stopped_thread(self) -> int:
        threads = self._all()
        if self.current in threads:
            return self.current
        return next(iter(threads), 1)

    def thread_on(self, vcpu: Vcpu) -> int | None:
        for cpu in self._hrt_cpus():
            if cpu.vcpu is vcpu:
                ak = self._aerokernel()
                cur = ak.current(cpu.index) if ak is not None else None
                return cur.id if self._is_hrt_thread(cur) else HRT_TID_BASE + cpu.index
        return self.guest.thread_on(vcpu)

    # -- registers -------------------------------------------------------------------------------
    def read_registers(self, tid: int) -> list:
        t = self._thread(tid)
        names = [_STATE_NAME.get(r.name, r.name) for r in regs.REGISTERS]
        values = t.registers.read([n for n in names if n not in ("orig_rax", "cpl")])
        values["orig_rax"] = 0xFFFF_FFFF_FFFF_FFFF                  # not in a system call (-1)
        values["cpl"] = values["cs"] & 3
        return [values[n] for n in names]

    def write_register(self, tid: int, number: int, value) -> None:
        r = regs.REGISTERS[number]
        if r.readonly or r.name == "orig_rax":
            return
        self._thread(tid).registers.write(_STATE_NAME.get(r.name, r.name), value)
        self.invalidate()

    # -- memory ----------------------------------------------------------------------------------
    def _translate(self, t: GuestThread, va: int, write: bool) -> int:
        mem = self.machine.memory
        try:
            return pagewalk.translate(mem, t.cr3, va, write)
        except pagewalk.PageFault:
            if t.pid and self.guest.page_in(t.partner or t.tid, va, write):
                return pagewalk.translate(mem, t.cr3, va, write)
            raise

    def read_memory(self, tid: int, addr: int, length: int) -> bytes:
        t = self._thread(tid)
        out = bytearray()
        while length > 0:
            chunk = min(length, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            try:
                pa = self._translate(t, addr, False)
            except pagewalk.PageFault:
                break
            out += self.machine.memory.read(pa, chunk)
            addr = (addr + chunk) & 0xFFFF_FFFF_FFFF_FFFF
            length -= chunk
        return bytes(out)

    def write_memory(self, tid: int, addr: int, data: bytes) -> None:
        t = self._thread(tid)
        pos = 0
        while pos < len(data):
            chunk = min(len(data) - pos, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            try:
                pa = self._translate(t, addr, True)
            except pagewalk.PageFault:
                raise TargetError(f"cannot write at {addr:#x}", errno.EFAULT)
            self.machine.memory.write(pa, data[pos:pos + chunk])
            addr += chunk
            pos += chunk
        for v in self.machine.vcpus:               # the bytes may be code that was translated
            v.flush_code()

    # -- breakpoints and watchpoints -------------------------------------------------------------
    def insert_breakpoint(self, tid: int, kind: int, addr: int, length: int) -> bool:
        if kind in (SW_BREAK, HW_BREAK):
            self.breakpoints.setdefault(addr, set()).add(kind)
            return True
        if kind in (WATCH_WRITE, WATCH_READ, WATCH_ACCESS):
            if length <= 0:
                raise TargetError("empty watch range", errno.EINVAL)
            t = self._thread(tid)
            # Page the range in now (writably for write watches, so a later copy-on-write does not
            # have to move it); ranges that cannot be are watched from when they appear.
            for page in range(addr & ~(PAGE_SIZE - 1), addr + length, PAGE_SIZE):
                try:
                    self._translate(t, max(page, addr), kind != WATCH_READ)
                except pagewalk.PageFault:
                    pass
            self.watches.append(Watch(kind, addr, length))
            return True
        return False

    def remove_breakpoint(self, tid: int, kind: int, addr: int, length: int) -> bool:
        if kind in (SW_BREAK, HW_BREAK):
            kinds = self.breakpoints.get(addr)
            if kinds is not None:
                kinds.discard(kind)
                if not kinds:
                    del self.breakpoints[addr]
            return True
        if kind in (WATCH_WRITE, WATCH_READ, WATCH_ACCESS):
            for w in self.watches:
                if (w.kind, w.addr, w.length) == (kind, addr, length):
                    self.watches.remove(w)
                    break
            return True
        return False

    def _watch_ranges(self, cr3: int) -> tuple:
        """The guest-physical pieces of every watch under `cr3` (pages not present are skipped)."""
        out = []
        mem = self.machine.memory
        for w in self.watches:
            va, end = w.addr, w.addr + w.length
            while va < end:
                piece = min(end, (va & ~(PAGE_SIZE - 1)) + PAGE_SIZE) - va
                try:
                    pa = pagewalk.translate(mem, cr3, va)
                    out.append((pa, pa + piece - 1, w.access))
                except pagewalk.PageFault:
                    pass
                va += piece
        return tuple(out)

    def arm(self, vcpu: Vcpu | None = None) -> None:
        """Put the current breakpoints, steps and watches on every vCPU (or one new vCPU)."""
        if self.detached:
            return
        bps = frozenset(self.breakpoints)
        step = bool(self.run.steps)
        for v in [vcpu] if vcpu is not None else list(self.machine.vcpus):
            watch = self._watch_ranges(v.reg("cr3")) if self.watches else ()
            v.set_guest_debug(self, bps, step, watch)

    def disarm(self) -> None:
        for v in self.machine.vcpus:
            v.set_guest_debug(None)

    # -- called from inside a vCPU's run (Vcpu.GuestDebug) ---------------------------------------
    def on_code(self, vcpu: Vcpu, addr: int) -> str | None:
        steps = self.run.steps
        if steps:
            tid = self.thread_on(vcpu)
            st = steps.get(tid)
            if st is not None and st.done(vcpu, addr):
                return "breakpoint" if addr in self.breakpoints else "step"
            if st is not None:
                return None
        return "breakpoint" if addr in self.breakpoints else None

    def on_watch(self, vcpu: Vcpu, pa: int, size: int, write: bool) -> bool:
        if self._after_watch is not None:
            return False                          # stepping past the access that hit
        cr3 = vcpu.reg("cr3")
        mem = self.machine.memory
        for w in self.watches:
            if (w.kind == WATCH_WRITE and not write) or (w.kind == WATCH_READ and write):
                continue
            va, end = w.addr, w.addr + w.length
            while va < end:
                piece = min(end, (va & ~(PAGE_SIZE - 1)) + PAGE_SIZE) - va
                try:
                    wpa = pagewalk.translate(mem, cr3, va)
                except pagewalk.PageFault:
                    wpa = None
                if wpa is not None and wpa < pa + size and pa < wpa + piece:
                    hit = va + max(0, pa - wpa)
                    self._watch_hit = (w, hit)
                    return True
                va += piece
        return False

    def on_mappings(self, vcpu: Vcpu) -> None:
        if self.watches and not self.detached:
            watch = self._watch_ranges(vcpu.reg("cr3"))
            vcpu.set_guest_debug(self, frozenset(self.breakpoints), bool(self.run.steps), watch)

    # -- stops -----------------------------------------------------------------------------------
    def debug_exit(self, vcpu: Vcpu, exit: Exit) -> StopEvent | None:
        """A DEBUG exit of `vcpu`: the stop to report, or None to run on (a step past a watched
        access is under way)."""
        self.invalidate()
        tid = self.thread_on(vcpu) or self.stopped_thread()
        detail = exit.detail
        if detail == "watch":
            w, hit = self._watch_hit
            event = StopEvent(tid, SIGTRAP, WATCH_REASON[w.kind], hit)
            # The vCPU is at the accessing instruction, not yet executed: gdb expects to see the
            # stop after it (x86 data breakpoints are traps). Step it, then report.
            self._after_watch = (tid, event)
            self.run.steps = {tid: Step("s", user_only=self._thread(tid).user_only)}
            self.arm()
            return None
        if detail == "watch-late":
            w, hit = self._watch_hit
            return self._stopped(StopEvent(tid, SIGTRAP, WATCH_REASON[w.kind], hit))
        if self._after_watch is not None and detail in ("step", "breakpoint"):
            event = self._after_watch[1]
            self._after_watch = None
            return self._stopped(StopEvent(event.thread, SIGTRAP, event.reason, event.address))
        if detail == "interrupt":
            return self._stopped(StopEvent(tid, SIGINT))
        if detail == "breakpoint":
            kinds = self.breakpoints.get(exit.rip, {SW_BREAK})
            return self._stopped(StopEvent(tid, SIGTRAP, "swbreak" if SW_BREAK in kinds else "hwbreak"))
        return self._stopped(StopEvent(tid, SIGTRAP))

    def fault_exit(self, vcpu: Vcpu, exit: Exit) -> StopEvent | None:
        """A guest fault about to become a signal (SIGSEGV, SIGILL, ...): stop first, as ptrace does."""
        if exit.kind in (ExitKind.SYSCALL, ExitKind.BUDGET, ExitKind.DEBUG):
            return None
        tid = self.guest.thread_on(vcpu)
        if tid is None:
            return None                       # not the guest OS's vCPU (an HRT vCPU: its own exits)
        fault = self.guest.signal_for_exit(vcpu, exit)
        if fault is None:
            return None
        self.invalidate()
        event = self._stopped(StopEvent(tid, fault[0]))
        self.siginfo[tid] = fault[1]
        return event

    def interrupt_stop(self) -> StopEvent:
        """gdb's Ctrl-C arrived while no vCPU was running (the guest was waiting)."""
        self.invalidate()
        tid = self.guest.thread_on(self.machine.vcpus[0]) if self.machine.vcpus else None
        return self._stopped(StopEvent(tid or self.stopped_thread(), SIGINT))

    def _stopped(self, event: StopEvent) -> StopEvent:
        self.current = event.thread
        self.run = _Pending()
        self.siginfo = {}
        return event

    def exit_event(self) -> StopEvent:
        code, sig = self.guest.exit_status()
        return StopEvent(exit_code=code) if sig is None else StopEvent(killed_by=sig)

    def signal_to_deliver(self, tid: int) -> int:
        return self.run.signals.get(tid, self.run.default_signal)

    # -- execution -------------------------------------------------------------------------------
    def resume(self, actions: list[ResumeAction]) -> None:
        pending = _Pending()
        named = set()
        for a in actions:
            targets = [a.thread] if a.thread is not None else [t for t in self._all() if t not in named]
            for tid in targets:
                if tid in named:
                    continue
                named.add(tid)
                if a.signal:
                    pending.signals[tid] = a.signal
                if a.kind in ("s", "r"):
                    user_only = self._all()[tid].user_only if tid in self._all() else True
                    pending.steps[tid] = Step(a.kind, a.start, a.end, user_only=user_only)
        self.run = pending
        self._after_watch = None
        self.invalidate()
        self.arm()

    def kill(self) -> None:
        self.disarm()
        self.guest.kill_all()

    def detach(self) -> None:
        self.watches.clear()
        self.breakpoints.clear()
        self.run = _Pending()
        self.disarm()
        self.detached = True

    # -- information -----------------------------------------------------------------------------
    def exec_file(self, pid: int | None) -> str:
        return self.guest.exe(pid)

    def signal_info(self, tid: int) -> bytes | None:
        return self.siginfo.get(tid)

    def auxv(self, tid: int) -> bytes | None:
        t = self._all().get(tid)
        return self.guest.auxv(t.partner or tid) if t is not None and t.pid else None

    def monitor(self, tid: int, command: str) -> str:
        from .monitor import run_monitor_command
        return run_monitor_command(self, tid, command)
