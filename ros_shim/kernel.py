"""The ROS kernel: entry from vCPU exits (system calls, faults), processes, threads, scheduling.

This is the guest OS of the ROS partition, modelled in Python: the VMM (`hvm`) hands it the exits
of the ROS vCPU through the small `GuestOS` interface (`boot`, `on_syscall`, `on_exception`,
`on_exit`, `finished`, `exit_status`); the ROS never reaches into VMM internals.

The hot path is `on_syscall`, called from inside the vCPU's hook: it serves the call and lets the
vCPU run on. Anything that changes which thread runs or rewrites a thread's registers wholesale
(blocking, exit, signal delivery, exec, sigreturn, a time slice ending) sets `need_resched` and
stops the vCPU; `on_exit` then does that work with the vCPU at rest, in `reschedule`.
"""
from __future__ import annotations

import errno
import os
import random
import signal as host_signal
import struct
import sys
from dataclasses import dataclass

from hvm.abi import HC
from hvm.memory import PAGE_SIZE, GuestMemory, Partition
from hvm.vcpu import BP, DE, GP, PF, UD, Exit, ExitKind, Vcpu

from . import layout, loader, signals
from .files import stdio_table
from .mm import PF_I, PF_W, AddressSpace, TlbHooks
from .paging import PTE_NX, PTE_P, PTE_W, FrameAllocator, OutOfMemory, PageTable
from .process import BLOCKED, DEAD, RUNNABLE, STOPPED, Process, Thread, Wait
from .sched import RosCpu, Scheduler, Watchdog, now_ns
from .signals import SigInfo
from .syscalls import hvmdev, table
from .syscalls.table import BLOCK, NORETURN, TABLE

# Import the syscall families so that they register themselves in TABLE.
from .syscalls import fs, futex, mm as sys_mm, proc, signal as sys_signal, task, time as sys_time  # noqa: F401,E402

FIRST_PID = 1000
_EXCEPTION_SIGNALS = {DE: (signals.SIGFPE, 1), 1: (signals.SIGTRAP, 1), BP: (signals.SIGTRAP, signals.SI_KERNEL),
                      UD: (signals.SIGILL, 2), GP: (signals.SIGSEGV, signals.SI_KERNEL),
                      16: (signals.SIGFPE, 0), 17: (signals.SIGBUS, 1), 19: (signals.SIGFPE, 0)}
_FORWARDED_HOST_SIGNALS = (host_signal.SIGINT, host_signal.SIGTERM, host_signal.SIGHUP, host_signal.SIGQUIT)


@dataclass
class KernelOptions:
    trace: bool = False
    log: object = None                      # where trace lines and mvemu's own messages go
    seed: int = 0x6D76656D75                # AT_RANDOM and getrandom: deterministic by default
    uname_release: str = "6.1.0-mvemu"
    hostname: str = "mvemu"
    cpus: int = 1                           # ROS vCPUs (--ros-cpus)


def _prot_str(prot: int) -> str:
    return "".join(c if prot & bit else "-" for c, bit in (("r", 1), ("w", 2), ("x", 4)))


class RosKernel:
    def __init__(self, memory: GuestMemory, partition: Partition, options: KernelOptions | None = None):
        self.mem = memory
        self.part = partition
        self.opt = options or KernelOptions()
        self.log = self.opt.log or sys.stderr
        self.trace = self.opt.trace
        self.rng = random.Random(self.opt.seed)
        self.frames = FrameAllocator(memory, partition.base, partition.end)
        self.vcpus: list[Vcpu] = []             # the ROS vCPUs, booted
        self.tlb = TlbHooks(flush_tlb=self._flush_tlbs, flush_code=self._flush_code, released=self._released)
        self.hvm_mm: AddressSpace | None = None     # the address space merged into the HRT
        self.hvm_waiters: dict[int, Thread] = {}    # event channel -> the partner waiting on it
        self.itimers: set[Process] = set()          # processes with an armed ITIMER_REAL (set_itimer)
        self._lend_wants: dict = {}                  # lend_cpu's others_want -> the watchdog's test
        self._cpu_of: dict[Vcpu, RosCpu] = {}
        self.processes: dict[int, Process] = {}
        self.sched = Scheduler()
        from .files import PIPE_EVENTS
        PIPE_EVENTS.notify = self.sched.wake_fd
        self.cpus: list[RosCpu] = []            # one per ROS vCPU (made with the kernel pages)
        self.hvm_busy = lambda: False           # set by the machine: do other vCPUs have work?
        self.hypercall = None                   # set by the machine: the VMM's ROS hypercall entry
        self.next_pid = FIRST_PID
        self.init: Process | None = None        # the first process: its status is mvemu's
        self.finished = False
        self.exit_status = 0
        self.reported: set = set()
        self.uid = os.getuid()
        self.host_signals: list[int] = []
        self.watchdog: Watchdog | None = None
        self.kicked = False                     # kick(): leave a wait in reschedule
        self.waiting = False                    # reschedule is (about to be) waiting for events
        self._kernel_pml4e = self._build_kernel_pages(self.opt.cpus)
        self.cpu = self.cpus[0]                 # the vCPU whose thread runs (or is being handled) now
        self.zero_page = self.frames.alloc()        # the shared zero page (never freed)

    # Where the thread that made a system call, or that the kernel handles now, lives: on `self.cpu`.
    @property
    def current(self) -> Thread | None:
        return self.cpu.current

    @current.setter
    def current(self, t: Thread | None) -> None:
        self.cpu.current = t

    @property
    def need_resched(self) -> bool:
        return self.cpu.need_resched

    @need_resched.setter
    def need_resched(self, value: bool) -> None:
        self.cpu.need_resched = value

    @property
    def idle(self) -> bool:
        """No ROS vCPU has a thread to run: the machine runs HRT vCPUs or waits (reschedule)."""
        return all(c.idle for c in self.cpus)

    # -- kernel half of every address space -------------------------------------------------------
    def _build_kernel_pages(self, ncpus: int) -> int:
        """GDT, ring-3 entry trampoline and a kernel stack per vCPU, mapped supervisor-only in PML4
        slot 511; makes `self.cpus`."""
        scratch = PageTable(self.mem, self.frames)
        gdt, tramp = (self.frames.alloc() for _ in range(2))
        descriptors = [0, 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF,   # null, -, kernel CS 0x10, DS 0x18
                       0x00CFFA000000FFFF, 0x00CFF2000000FFFF, 0x00AFFA000000FFFF]  # user32 CS, user DS, user CS
        self.mem.write(gdt, struct.pack(f"<{len(descriptors)}Q", *descriptors))
        self.gdt_limit = 8 * len(descriptors) - 1
        self.mem.write(tramp, b"\x48\xcf")                   # iretq
        scratch.set_pte(layout.KERNEL_GDT, gdt | PTE_P | PTE_W | PTE_NX)
        scratch.set_pte(layout.KERNEL_TRAMPOLINE, tramp | PTE_P)
        for i in range(ncpus):
            kstack, top = self.frames.alloc(), layout.kernel_stack_top(i)
            scratch.set_pte(top - PAGE_SIZE, kstack | PTE_P | PTE_W | PTE_NX)
            self.cpus.append(RosCpu(i, kstack, top))
        return self.mem.read_u64(scratch.pml4 + 8 * 511)

    # -- vCPUs ------------------------------------------------------------------------------------
    def _flush_tlbs(self, mm: AddressSpace | None = None) -> None:
        for v in self.vcpus:
            v.flush_tlb()
        if mm is not None and mm is self.hvm_mm:
            self.hypercall(HC["TLB_SHOOTDOWN"], 0)          # the HRT may cache it too

    def _flush_code(self, mm: AddressSpace | None = None) -> None:
        for v in self.vcpus:
            v.flush_code()
        if mm is not None and mm is self.hvm_mm:
            self.hypercall(HC["TLB_SHOOTDOWN"], 1)

    def _released(self, mm: AddressSpace) -> None:
        """An address space is gone (its last process exited or exec'd): if the HRT runs in it,
        shut the HRT down (the runtime's exit hook, done here so that no exit path misses it)."""
        if mm is self.hvm_mm:
            self.hvm_mm = None
            self.hypercall(HC["RESET_HRT"], 1)

    # -- the HVM's side of the ROS: events for partners ---------------------------------------------
    def hvm_event(self, channel: int) -> None:
        """The HRT posted an event on `channel`: wake the partner waiting there."""
        t = self.hvm_waiters.pop(channel, None)
        if t is None or t.state != BLOCKED:
            return
        w = t.wait
        if w is not None and w.kind == "hvmchan":
            # Take the event for it: its ioctl then returns the kind without being re-run.
            w.result = hvmdev.take_posted(t.proc.mm, channel)
            cpu = t.on_cpu
            if (w.result is not None and cpu is not None and cpu.idle and cpu.current is t
                    and t.allowed_on(cpu.index) and not self.deliverable(t)):
                # The partner's idle vCPU still holds its registers, and nothing else is due to
                # it: it goes on there at once (what reschedule would do, without the search).
                self.sched.run_in_place(t)
                self._complete_blocked_call(cpu.vcpu, t)
                cpu.idle = False
                cpu.vcpu.preempt_requested = False      # a new slice starts now
                return
        self.sched.wake(t, woken=True)

    def console_write(self, pid: int, fd: int, data: bytes) -> int | None:
        """`--hrt-local write`: the AeroKernel writes fd 1 or 2 of the merged process `pid` itself
        when that fd is still one of mvemu's own standard streams, a blocking write as this kernel's
        write(2) would do. None: forward it instead (another file, a mode this does not do, or a
        broken pipe, whose SIGPIPE the ROS must raise)."""
        proc = self.processes.get(pid)
        f = None if proc is None or proc.mm is not self.hvm_mm else proc.fds.get(fd)
        if f is None or f.path not in ("<std1>", "<std2>") or f.flags & (os.O_NONBLOCK | os.O_APPEND):
            return None
        try:
            return os.write(f.host_fd, data)
        except (BrokenPipeError, BlockingIOError):
            return None
        except OSError as e:
            return -e.errno

    def kick(self) -> None:
        """From any host thread: if the ROS is waiting for events with nothing to run, stop waiting
        and return to the machine's run loop (which calls reschedule again afterwards)."""
        self.kicked = True
        if self.waiting and self.watchdog is not None:     # (set before kicked is checked there)
            try:
                os.write(self.watchdog.wakeup_w, b"k")
            except BlockingIOError:
                pass

    def find_thread(self, tgid: int, tid: int) -> Thread | None:
        """The live thread `tid` (of process `tgid`, if tgid > 0)."""
        for p in self.processes.values():
            if p.zombie or (tgid > 0 and p.pid != tgid):
                continue
            for th in p.threads:
                if th.tid == tid and th.alive:
                    return th
        return None

    def cpu_of(self, vcpu: Vcpu) -> RosCpu | None:
        """The ROS vCPU `vcpu` is (None for a vCPU that is not the ROS's, an HRT vCPU)."""
        return self._cpu_of.get(vcpu)

    def wants_cpu(self) -> bool:
        """For the watchdog: should the running thread give up the CPU at the end of its slice?"""
        return self.hvm_busy() or self._has_work() or self._others_busy()

    def _others_busy(self) -> bool:
        """Another ROS vCPU has a thread to run (it needs the host thread too)."""
        cur = self.cpu
        return any(not c.idle for c in self.cpus if c is not cur)

    def _has_work(self) -> bool:
        """A thread waits to run, a host signal to be forwarded, or a timer is due."""
        if self.sched.runq or self.host_signals:
            return True
        deadline = self.sched.next_deadline(self._next_itimer())
        return deadline is not None and now_ns() >= deadline

    def lend_cpu(self, vcpu: Vcpu | None, others_want=None) -> None:
        """The machine runs a vCPU of its own (an HRT vCPU) on the host thread: slice it like a
        ROS thread. Its slice ends when this kernel has a thread to run, a timer is due or a host
        signal arrived, or when `others_want()` (other vCPUs have work). None: the run is over."""
        if self.watchdog is None:
            return
        if vcpu is None:
            self.watchdog.lend(None, None)
            return
        wants = self._lend_wants.get(others_want)
        if wants is None:
            wants = self._lend_wants[others_want] = lambda: others_want() or not self.idle or self._has_work()
        self.watchdog.lend(vcpu, wants)

    # -- processes --------------------------------------------------------------------------------
    def new_address_space(self) -> AddressSpace:
        return AddressSpace(self.mem, self.frames, self._kernel_pml4e, self.tlb, self.zero_page)

    def spawn(self, path: str, argv: list[bytes], envp: list[bytes]) -> Process:
        """Create the first process running `path` (raises loader.ExecError for unrunnable files)."""
        image = loader.read_elf(path)
        pid = self.alloc_pid()
        proc = Process(pid=pid, ppid=1, mm=self.new_address_space(), fds=stdio_table(),
                       cwd_fd=os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC),
                       pgid=pid, sid=pid, umask=_host_umask())
        thread = Thread(tid=pid, proc=proc)
        proc.threads.append(thread)
        self.processes[pid] = proc
        self.init = proc
        self.fg_pgrp = proc.pgid            # the terminal's foreground process group
        self.exec_image(thread, image, argv, envp, path.encode())
        self.cpu = self.cpus[0]
        self.current, thread.on_cpu = thread, self.cpu
        return proc

    def alloc_pid(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def exec_image(self, t: Thread, image: loader.ElfImage, argv, envp, execfn: bytes) -> None:
        proc = t.proc
        loaded = loader.load_image(proc.mm, image)
        ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
        sp = loader.build_stack(proc.mm, loaded, argv, envp, execfn, self.rng.randbytes(16), ids)
        auxv_at = sp + 8 * (len(argv) + len(envp) + 3)         # after argc, argv[], NULL, envp[], NULL
        proc.auxv = proc.mm.read(auxv_at, 16 * loader.AUXV_ENTRIES) or b""
        proc.exe = os.path.abspath(image.path)
        proc.comm = os.path.basename(image.path)[:15]
        t.entry = (loaded.entry, sp)

    # -- the GuestOS interface --------------------------------------------------------------------
    def boot(self, vcpus: list[Vcpu]) -> None:
        """Put each ROS vCPU in the ROS kernel's CPU state (ring 0), then enter the first thread in
        ring 3 on the first one; the others are idle until a thread is runnable for them."""
        if len(vcpus) != len(self.cpus):
            raise ValueError(f"the ROS kernel was built for {len(self.cpus)} vCPUs, not {len(vcpus)}")
        for vcpu, cpu in zip(vcpus, self.cpus):
            self.vcpus.append(vcpu)
            cpu.vcpu = vcpu
            self._cpu_of[vcpu] = cpu
            vcpu.set_gdtr(layout.KERNEL_GDT, self.gdt_limit)
            vcpu.set_reg("cr3", self.init.mm.cr3)
            vcpu.set_reg("cr4", 0x20 | 0x200 | 0x400)          # PAE | OSFXSR | OSXMMEXCPT
            vcpu.set_msr(0xC000_0080, 0xD01)                  # EFER: SCE | LME | LMA | NXE
            vcpu.set_reg("cr0", 0x8005_0033)                  # PG | AM | WP | NE | ET | MP | PE
            vcpu.set_reg("cs", layout.KERNEL_CS)
            vcpu.set_reg("ss", layout.KERNEL_DS)
        self.kernel_ctx = vcpus[0].save_context()         # ring 0: where every fresh entry starts
        self.watchdog = Watchdog(self)
        self._install_host_signal_handlers()
        self.cpu = self.cpus[0]
        self._resume(self.cpu, self.current)

    def _enter_user(self, cpu: RosCpu, t: Thread) -> None:
        """Start `t` at its ELF entry in ring 3: through the `iretq` trampoline, as a kernel would."""
        vcpu = cpu.vcpu
        entry, sp = t.entry
        t.entry = None
        vcpu.restore_context(self.kernel_ctx)
        vcpu.set_reg("cr3", t.proc.mm.cr3)
        vcpu.flush_tlb()
        frame = struct.pack("<5Q", entry, layout.USER_CS, 0x202, sp, layout.USER_DS)
        self.mem.write(cpu.kstack_pa + PAGE_SIZE - len(frame), frame)
        vcpu.set_regs({"rsp": cpu.kstack_top - len(frame), "rip": layout.KERNEL_TRAMPOLINE,
                       "rflags": 0x2, "fs_base": 0, "gs_base": 0})
        for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
                  "r13", "r14", "r15"):
            vcpu.set_reg(r, 0)
        signals.restore_fpstate(vcpu.uc, signals.INITIAL_FPSTATE)

    def on_syscall(self, vcpu: Vcpu) -> bool:
        """The hot path: one register-file read, one table lookup, one register write."""
        nr, a0, a1, a2, a3, a4, a5 = vcpu.syscall_args()
        entry = TABLE.get(nr)
        cpu = self.cpu
        t = cpu.current
        try:
            ret = entry.fn(self, t, a0, a1, a2, a3, a4, a5) if entry is not None else self._nosys(nr)
        except OutOfMemory:
            ret = -errno.ENOMEM
        if self.trace:
            self._trace(t, entry, nr, (a0, a1, a2, a3, a4, a5), ret)
        if ret is BLOCK:
            t.wait.nr = nr
            if self.trace:
                t.wait.args = (a0, a1, a2, a3, a4, a5)
            if vcpu.parkable:
                parked = self._park(vcpu, cpu, t)
                if parked is not None:
                    return parked
            cpu.need_resched = True
            return False
        if ret is NORETURN:
            cpu.need_resched = True
            return False
        vcpu.set_rax(ret)
        if cpu.need_resched or (isinstance(ret, int) and -520 < ret < -500):
            t.restart_nr = nr
            cpu.need_resched = True
            return False
        return True

    def _park(self, vcpu: Vcpu, cpu: RosCpu, t: Thread) -> bool | None:
        """`t` blocked in a system call. When reschedule would find nothing else to run on this
        vCPU (no queued thread, no host signal, no signal for t) while the HRT has work (so the
        machine goes on with it rather than wait for events), park the run inside the call instead
        of stopping Unicorn (Vcpu.park): the vCPU is idle and holds t, exactly as after on_exit and
        reschedule, and when t is woken the next run goes on from inside this hook, without an
        emu_start (a partner waiting for its next event: docs/split.md). None: not parked (stop as
        usual); True: t was resumed (its registers are set); False: the run must stop now (a context
        switch or the end), its bookkeeping already done."""
        if self.sched.runq or self.host_signals or not vcpu.can_park() or self.deliverable(t) \
                or not self.hvm_busy():
            return None
        vcpu.set_rax(t.wait.nr)               # as on_exit leaves a blocked call: RIP at the syscall
        cpu.need_resched = False
        cpu.idle = True
        running, self.watchdog.running = self.watchdog.running, None
        parked = vcpu.park()
        if parked is None:                    # a time slice's end came first: stop after all
            cpu.idle = False
            self.watchdog.running = running
        return parked

    def _trace(self, t, entry, nr, args, ret) -> None:
        if ret is BLOCK:
            return                      # the call is shown when it completes (after its restart)
        self.log_line(f"[pid {t.tid}] " + table.format_call(self, t, entry, nr, args, ret))

    def _nosys(self, nr: int) -> int:
        """ENOSYS. For a number Linux has too, that is mvemu's gap: say so once; for a number Linux
        does not have, ENOSYS is exactly Linux's answer and there is nothing to report."""
        if nr in table.NAMES:
            self.report_once(("nosys", nr), f"mvemu: unimplemented system call {table.name_of(nr)} "
                                            f"({nr}): returning -ENOSYS")
        return -errno.ENOSYS

    def on_exception(self, vcpu: Vcpu, exit: Exit) -> bool:
        if exit.vector == PF and vcpu.cpl() == 3:
            t = self.current
            try:
                if t.proc.mm.fault(exit.cr2, exit.error_code):
                    return True
            except OutOfMemory:
                # Linux's OOM killer: SIGKILL, and mvemu says what ran out.
                t.oom = True
        return False        # anything else stops the vCPU and comes back through on_exit

    def on_exit(self, vcpu: Vcpu, exit: Exit) -> None:
        """An exit that stopped the vCPU: turn faults into signals, then decide who runs next."""
        kind = exit.kind
        if kind is ExitKind.PARKED:
            return                            # (Kernel._park did what this and reschedule would)
        cpu = self.cpu = self._cpu_of[vcpu]
        t = cpu.current
        if kind is ExitKind.SYSCALL:
            if t is not None and t.state == BLOCKED:
                # Re-execute the syscall when the thread wakes: back up over `syscall` (rax = nr).
                vcpu.set_reg("rip", vcpu.reg("rip") - 2)
                vcpu.set_rax(t.wait.nr)
            elif t is not None and t.deferred == "sigreturn":
                t.deferred = None
                if not self.sigreturn(vcpu, t):
                    t.fault_text = "bad signal frame in rt_sigreturn"
                    self.force_signal(t, SigInfo(signals.SIGSEGV, signals.SI_KERNEL))
        elif kind is ExitKind.BUDGET:
            if vcpu.cpl() == 0:
                # Stopped on the way into ring 3 (the iretq trampoline, whose frame sits on the
                # vCPU's kernel stack): entering user mode is not preemptible.
                return
            cpu.slice_over = True
        else:
            self._fault_signal(vcpu, t, exit)
        cpu.need_resched = False
        self.reschedule(vcpu)

    def _fault_signal(self, vcpu: Vcpu, t: Thread, exit: Exit) -> None:
        """A CPU exception the ROS did not resolve becomes a signal to the thread, as on Linux."""
        if getattr(t, "oom", False):
            t.oom = False
            self.kill_process(t.proc, signals.SIGKILL, f"out of guest memory at {exit.cr2:#x} "
                                                        f"(raise --mem, now {self.part.size >> 20} MiB)")
            return
        sig, code, addr, what = self.fault_signal_of(t, exit)
        t.fault_text = what
        if self.trace:
            self.log_line(f"[pid {t.tid}] --- {signals.name(sig)} {{si_code={code}, si_addr={addr:#x}}} --- {what}")
        self.force_signal(t, SigInfo(sig, code, addr=addr))

    def fault_signal_of(self, t: Thread, exit: Exit) -> tuple[int, int, int, str]:
        """(signal, si_code, si_addr, description) that the exit of a faulting thread raises."""
        if exit.kind is ExitKind.INVALID_OPCODE:
            sig, code, addr, what = signals.SIGILL, 2, exit.rip, f"illegal instruction at rip {exit.rip:#x}"
        elif exit.kind in (ExitKind.HALT, ExitKind.HYPERCALL):
            sig, code, addr, what = signals.SIGSEGV, signals.SI_KERNEL, 0, \
                f"privileged instruction (general protection) at rip {exit.rip:#x}"
        elif exit.kind is ExitKind.MEMORY_ERROR:
            sig, code, addr, what = signals.SIGBUS, 2, 0, f"machine error at rip {exit.rip:#x}: {exit.detail}"
        elif exit.vector == PF:
            ec = exit.error_code
            access = "execute" if ec & PF_I else "write" if ec & PF_W else "read"
            vma = t.proc.mm.find(exit.cr2)
            sig, addr = signals.SIGSEGV, exit.cr2
            code = 2 if vma else 1                          # SEGV_ACCERR / SEGV_MAPERR
            why = f"not permitted by the mapping's protection {_prot_str(vma.prot)}" if vma else "unmapped address"
            what = f"invalid {access} at {exit.cr2:#x} ({why}), rip {exit.rip:#x}"
        else:
            sig, code = _EXCEPTION_SIGNALS.get(exit.vector, (signals.SIGSEGV, signals.SI_KERNEL))
            addr = exit.rip
            if exit.vector == BP:
                what = f"breakpoint trap (int3) at rip {exit.rip:#x}"     # rip is after the int3, as on Linux
            elif exit.vector == DE:
                what = f"divide error at rip {exit.rip:#x}"
            else:
                what = f"exception {exit.vector} (error code {exit.error_code:#x}) at rip {exit.rip:#x}"
        return sig, code, addr, what

    # -- scheduling -------------------------------------------------------------------------------
    def ready(self, vcpu: Vcpu) -> bool:
        """Before the machine runs a ROS vCPU: settle what it must do first (a switch, a signal to
        deliver, a thread to take from the run queue). False: it has nothing to run."""
        cpu = self._cpu_of[vcpu]
        self.cpu = cpu
        t = cpu.current
        if cpu.idle and not (self.sched.runq and self.sched.runnable_on(cpu.index)):
            return False
        if not cpu.idle and t is not None and t.state == RUNNABLE and (
                not cpu.need_resched or t.entry is None and vcpu.cpl() == 0):
            # Its thread goes on (one stopped on its way into ring 3 first finishes the iretq).
            vcpu.preempt_requested = False
            self.watchdog.lend(vcpu, None)
            return True
        cpu.need_resched = False
        self.reschedule(vcpu)
        return not cpu.idle

    def reschedule(self, vcpu: Vcpu) -> None:
        """Pick the thread to run next on `vcpu` and make it hold that thread's state; when no vCPU
        has anything to run, wait for events here (or finish the machine)."""
        cpu = self._cpu_of[vcpu]
        self.cpu = cpu
        while not self.finished:
            if self.host_signals:
                self._forward_host_signals()
            self._check_timers()
            if self.sched.external_waits:
                self.sched.poll_events(0, -1)
            t = cpu.current
            if t is not None and t.state == RUNNABLE and not t.allowed_on(cpu.index):
                # sched_setaffinity took this vCPU from it: it waits in the run queue for one it
                # may use (which takes its registers from here), and this vCPU runs another or idles.
                nxt = self.sched.pick(cpu.index)
                if nxt is not None:
                    self._switch(cpu, nxt)
                    continue
                if t not in self.sched.runq:
                    self.sched.runq.append(t)
                t = None
            if t is not None and t.state == RUNNABLE:
                if cpu.slice_over and self.sched.runq and not self._idle_elsewhere(cpu):
                    cpu.slice_over = False
                    nxt = self.sched.pick(cpu.index)
                    if nxt is not None:
                        self._switch(cpu, nxt)
                        continue
                self.sched.remove(t)            # (queued when woken while the vCPU still held it)
                if t.wait is not None and t.wait.result is not None:
                    self._complete_blocked_call(vcpu, t)
                if self._deliver_signals(cpu, t) and t.state == RUNNABLE:
                    self._resume(cpu, t)
                    return
                continue
            nxt = self.sched.pick(cpu.index)
            if nxt is not None:
                self._switch(cpu, nxt)
                continue
            if not self.sched.blocked and not any(th.state in (RUNNABLE, BLOCKED, STOPPED)
                                                  for p in self.processes.values() for th in p.threads):
                self.finished = True
                return
            cpu.idle = True
            if self._others_busy():
                return                            # other ROS vCPUs run; this one has nothing
            if self._idle_elsewhere(cpu):
                return                            # a queued thread waits for another (idle) vCPU
            if self.hvm_busy():
                # Nothing to run here, but HRT vCPUs have work: let the machine run them.
                self.watchdog.running = None
                if self.sched.fd_waiters:         # (deadlines were just checked)
                    self.sched.poll_events(0, -1)
                return
            self.waiting = True
            if self.kicked:
                # The VMM wants its run loop back (a debugger's stop): come back here afterwards.
                self.kicked = self.waiting = False
                self.watchdog.running = None
                return
            deadline = self.sched.next_deadline(self._next_itimer())
            timeout = None if deadline is None else max(0, deadline - now_ns())
            self.watchdog.running = None
            self.sched.poll_events(timeout, self.watchdog.wakeup_r)
            self.waiting = False

    def _idle_elsewhere(self, cpu: RosCpu) -> bool:
        """Another ROS vCPU has nothing to run and may run a queued thread (its affinity): it takes
        that thread without a switch here."""
        return bool(self.sched.runq) and any(c.idle and self.sched.runnable_on(c.index)
                                             for c in self.cpus if c is not cpu)

    def _complete_blocked_call(self, vcpu: Vcpu, t: Thread) -> None:
        """`t` (its registers on the vCPU) was woken with its blocked call's result: return it,
        instead of re-running the call (on_exit had backed RIP up over the `syscall`)."""
        w, t.wait = t.wait, None
        vcpu.complete_syscall(w.result)
        if self.trace:
            self.log_line(f"[pid {t.tid}] " + table.format_call(self, t, TABLE.get(w.nr), w.nr, w.args, w.result))

    def _switch(self, cpu: RosCpu, nxt: Thread) -> None:
        """Make `cpu` hold `nxt`: save the thread it held (queued again if it can run), and take
        `nxt`'s registers from its saved context, or from the idle vCPU that still holds them."""
        vcpu = cpu.vcpu
        old = cpu.current
        if old is nxt:
            return
        if old is not None:
            if old.state != DEAD and old.entry is None:
                old.ctx = vcpu.save_context(old.ctx)
            if old.state == RUNNABLE:
                self.sched.runq.append(old)
            old.on_cpu = None
        other = nxt.on_cpu
        if other is not None:                   # it migrates: its registers leave that vCPU
            if nxt.entry is None:
                nxt.ctx = other.vcpu.save_context(nxt.ctx)
            other.current = None
        if nxt.entry is None:
            vcpu.restore_context(nxt.ctx)
            # A saved context cannot carry a CR3 change (writing CR3 into a context blob would run
            # the TLB flush on no CPU), so the address space is always loaded here.
            vcpu.set_reg("cr3", nxt.proc.mm.cr3)
        cpu.current, nxt.on_cpu = nxt, cpu

    def _resume(self, cpu: RosCpu, t: Thread) -> None:
        cpu.idle = False
        vcpu = cpu.vcpu
        vcpu.preempt_requested = False            # a new slice starts now
        if t.entry is not None:
            self._enter_user(cpu, t)
        self.watchdog.lend(vcpu, None)

    # -- blocking ---------------------------------------------------------------------------------
    def block(self, t: Thread, wait: Wait):
        """Block `t` (the syscall re-runs when it wakes); a handler returns what this returns."""
        self.sched.block(t, wait)
        return BLOCK

    @staticmethod
    def resume_wait(t: Thread, kind: str) -> Wait | None:
        """In a re-run syscall: the wait it blocked on (woken / timed out / interrupted), once."""
        w, t.wait = t.wait, None
        return w if w is not None and w.kind == kind else None

    # -- signals ----------------------------------------------------------------------------------
    def post_signal(self, proc: Process, info: SigInfo, thread: Thread | None = None) -> None:
        """Queue a signal for a process (or one of its threads) and wake whoever can take it."""
        sig = info.signo
        if proc.zombie or not proc.live_threads:
            return
        handler = proc.sig.get(sig)[0]
        if sig == signals.SIGCONT:
            self._continue(proc)
        if handler == signals.SIG_IGN and sig != signals.SIGKILL or \
                (handler == signals.SIG_DFL and signals.default_action(sig) == "ignore"):
            return
        if sig in (signals.SIGSTOP, signals.SIGTSTP, signals.SIGTTIN, signals.SIGTTOU):
            proc.pending &= ~signals.bit(signals.SIGCONT)
        if thread is not None:
            thread.pending |= signals.bit(sig)
            thread.siginfo.setdefault(sig, info)
            targets = [thread]
        else:
            proc.pending |= signals.bit(sig)
            proc.siginfo.setdefault(sig, info)
            targets = proc.live_threads
        for t in targets:
            if sig == signals.SIGKILL or not t.sigmask & signals.bit(sig):
                if t.state == BLOCKED:
                    self.sched.wake(t, interrupted=True)
                if t.on_cpu is not None:
                    # Signals are posted on the main host thread, from a hook or with the vCPUs
                    # stopped: leaving the fast path at the end of this exit, or rescheduling
                    # before that vCPU runs again, is enough.
                    t.on_cpu.need_resched = True
                break

    def force_signal(self, t: Thread, info: SigInfo) -> None:
        """A synchronous fault signal: if blocked or ignored, the default action (death) applies."""
        sig = info.signo
        handler = t.proc.sig.get(sig)[0]
        if t.sigmask & signals.bit(sig) or handler == signals.SIG_IGN:
            t.proc.sig.table.pop(sig, None)
            t.sigmask &= ~signals.bit(sig)
        t.pending |= signals.bit(sig)
        t.siginfo[sig] = info

    @staticmethod
    def deliverable(t: Thread) -> int:
        """The pending signals (thread's and process's) that t's mask lets through, as a bitmask."""
        return (t.pending | t.proc.pending) & ~(t.sigmask & ~signals.UNBLOCKABLE)

    def _deliver_signals(self, cpu: RosCpu, t: Thread) -> bool:
        """Run the actions of t's deliverable pending signals (t is on `cpu`). False if t stopped
        running."""
        vcpu = cpu.vcpu
        proc = t.proc
        if t.wait is not None:
            # t woke from a blocked syscall that has not re-run yet: it must first return its
            # (interrupted) result, and delivery happens on that syscall's way out, as on Linux;
            # with a signal to deliver, that call must leave the fast path.
            if self.deliverable(t):
                cpu.need_resched = True
            return True
        rax = vcpu.reg("rax") if getattr(t, "restart_nr", None) is not None else 0
        restart_code = rax - (1 << 64) if rax >> 63 else rax
        delivered_handler = False
        while True:
            ready = self.deliverable(t)
            if not ready:
                break
            sig = (ready & -ready).bit_length()
            if t.pending & signals.bit(sig):
                t.pending &= ~signals.bit(sig)
                info = t.siginfo.pop(sig, SigInfo(sig))
            else:
                proc.pending &= ~signals.bit(sig)
                info = proc.siginfo.pop(sig, SigInfo(sig))
            handler, flags, restorer, mask = proc.sig.get(sig)
            if sig == signals.SIGKILL or handler == signals.SIG_DFL:
                action = "term" if sig == signals.SIGKILL else signals.default_action(sig)
                if action == "ignore":
                    continue
                if action == "stop":
                    self._stop(proc, sig)
                    return False
                self.kill_process(proc, sig, getattr(t, "fault_text", ""), core=action == "core")
                return False
            if handler == signals.SIG_IGN:
                continue
            if not delivered_handler and restart_code in signals.RESTART_CODES:
                if restart_code == -signals.ERESTARTNOINTR or \
                        (restart_code == -signals.ERESTARTSYS and flags & signals.SA_RESTART):
                    vcpu.set_reg("rip", vcpu.reg("rip") - 2)
                    vcpu.set_rax(t.restart_nr)
                else:
                    vcpu.set_rax(-errno.EINTR)
                    t.restart_deadline = None
            if not self._setup_frame(vcpu, t, sig, info, handler, flags, restorer, mask):
                return False
            delivered_handler = True
            if flags & signals.SA_RESETHAND:
                proc.sig.table.pop(sig, None)
        if not delivered_handler and restart_code in signals.RESTART_CODES:
            vcpu.set_reg("rip", vcpu.reg("rip") - 2)         # nothing ran: restart transparently
            vcpu.set_rax(t.restart_nr)
        t.restart_nr = None
        if not delivered_handler and t.saved_sigmask is not None:
            t.sigmask, t.saved_sigmask = t.saved_sigmask, None
        return True

    def _setup_frame(self, vcpu, t, sig, info, handler, flags, restorer, mask) -> bool:
        regs = vcpu.regs()
        regs["cr2"] = info.addr if sig == signals.SIGSEGV else 0
        sp = regs["rsp"]
        ss_sp, ss_flags, ss_size = t.altstack
        on_alt = ss_size and ss_sp <= sp < ss_sp + ss_size
        if flags & signals.SA_ONSTACK and not ss_flags & signals.SS_DISABLE and not on_alt:
            sp = ss_sp + ss_size
        else:
            sp -= 128                                          # skip the red zone
        old_mask = t.saved_sigmask if t.saved_sigmask is not None else t.sigmask
        t.saved_sigmask = None
        altstack = (ss_sp, ss_flags | (signals.SS_ONSTACK if on_alt else 0), ss_size)
        frame, blob, _ = signals.build_frame(regs, signals.save_fpstate(vcpu.uc), info, old_mask,
                                             altstack, restorer, sp)
        if not t.proc.mm.write(frame, blob):
            t.fault_text = f"cannot write a signal frame for {signals.name(sig)} at {frame:#x}"
            self.kill_process(t.proc, signals.SIGSEGV, t.fault_text, core=True)
            return False
        vcpu.set_regs({"rsp": frame, "rip": handler, "rdi": sig, "rsi": frame + 8 + signals.UCONTEXT_SIZE,
                       "rdx": frame + 8, "rax": 0, "rflags": regs["rflags"] & ~0x50500})
        t.sigmask |= mask | (0 if flags & signals.SA_NODEFER else signals.bit(sig))
        t.sigmask &= ~signals.UNBLOCKABLE
        return True

    def sigreturn(self, vcpu: Vcpu, t: Thread) -> bool:
        """rt_sigreturn: restore the context saved in the frame at rsp - 8 (the restorer popped it)."""
        uc_addr = vcpu.reg("rsp")
        raw = t.proc.mm.read(uc_addr, signals.UCONTEXT_SIZE)
        if raw is None:
            return False
        regs, mask, fp_addr = signals.parse_ucontext(raw)
        fp = t.proc.mm.read(fp_addr, signals.FPSTATE_SIZE) if fp_addr else None
        cur = vcpu.reg("rflags")
        regs["rflags"] = (cur & ~signals.FIX_EFLAGS) | (regs["rflags"] & signals.FIX_EFLAGS)
        vcpu.set_regs(regs)
        if fp is not None:
            signals.restore_fpstate(vcpu.uc, fp)
        t.sigmask = mask & ~signals.UNBLOCKABLE
        return True

    def _stop(self, proc: Process, sig: int) -> None:
        proc.stopped = True
        proc.reported_stop = False
        for th in proc.live_threads:
            if th.state == RUNNABLE:
                th.state = STOPPED
                self.sched.remove(th)
        self._notify_parent(proc, signals.CLD_STOPPED, sig)

    def _continue(self, proc: Process) -> None:
        if not proc.stopped:
            return
        proc.stopped = False
        proc.continued = True
        for th in proc.threads:
            if th.state == STOPPED:
                self.sched.make_runnable(th)
        self._notify_parent(proc, signals.CLD_CONTINUED, signals.SIGCONT)

    # -- timers -----------------------------------------------------------------------------------
    def set_itimer(self, proc: Process, value: tuple[int, int] | None) -> None:
        """Arm (expiry ns, interval ns) or disarm (None) `proc`'s ITIMER_REAL."""
        proc.itimer = value
        if value is None:
            self.itimers.discard(proc)
        else:
            self.itimers.add(proc)

    def _next_itimer(self) -> int | None:
        due = [p.itimer[0] for p in self.itimers if not p.zombie]
        return min(due) if due else None

    def _check_timers(self) -> None:
        """Fire due interval timers (SIGALRM) and end the waits whose deadline passed: at every
        reschedule, so nothing but a set test while none is armed."""
        if self.itimers:
            now = now_ns()
            for p in [p for p in self.itimers if p.zombie or now >= p.itimer[0]]:
                if p.zombie:
                    self.itimers.discard(p)
                    continue
                expiry, interval = p.itimer
                self.set_itimer(p, (expiry + interval * max(1, (now - expiry) // interval + 1), interval)
                                if interval else None)
                self.post_signal(p, SigInfo(signals.SIGALRM, signals.SI_KERNEL))
        self.sched.wake_timed_out()

    # -- host signals (Ctrl-C) --------------------------------------------------------------------
    def _install_host_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self.host_signals.append(signum)
            self.need_resched = True
        try:
            for s in _FORWARDED_HOST_SIGNALS:
                host_signal.signal(s, handler)
            host_signal.set_wakeup_fd(self.watchdog.wakeup_w, warn_on_full_buffer=False)
        except ValueError:                    # not the main thread (embedded use): no forwarding
            pass

    def _forward_host_signals(self) -> None:
        """A signal mvemu received (Ctrl-C in the terminal) goes to the guest's foreground group."""
        sigs, self.host_signals = self.host_signals, []
        try:
            while os.read(self.watchdog.wakeup_r, 4096):
                pass
        except BlockingIOError:
            pass
        for s in sigs:
            for p in list(self.processes.values()):
                if p.pgid == self.fg_pgrp and not p.zombie:
                    self.post_signal(p, SigInfo(s, signals.SI_KERNEL))

    # -- process death ----------------------------------------------------------------------------
    def kill_process(self, proc: Process, sig: int, what: str = "", core: bool = False) -> None:
        """Terminate `proc` by signal `sig` (default action)."""
        if self.trace:
            self.log_line(f"[pid {proc.pid}] +++ killed by {signals.name(sig)}{' (core dumped)' if core else ''} +++")
        if proc is self.init:
            self.log_line(f"mvemu: {proc.comm}: killed by {signals.name(sig)}" + (f": {what}" if what else ""))
        # The "core dumped" bit is set only when a core would really be written (RLIMIT_CORE > 0).
        dumped = core and _core_limit(proc) > 0
        self.exit_process(proc, 128 + sig, status_word=sig | (0x80 if dumped else 0))

    def exit_thread(self, t: Thread, code: int) -> None:
        """exit(2): one thread ends; the last one ends the process."""
        proc = t.proc
        if len(proc.live_threads) <= 1:
            self.exit_process(proc, code)
            return
        self._thread_gone(t)

    def _thread_gone(self, t: Thread) -> None:
        t.state = DEAD
        self.sched.remove(t)
        if t.clear_child_tid:
            if t.proc.mm.write(t.clear_child_tid, b"\0\0\0\0"):
                futex.wake(self, t.proc.mm, t.clear_child_tid, 1)
        if t.ctx is not None:
            t.ctx = None

    def exit_process(self, proc: Process, code: int, status_word: int | None = None) -> None:
        if proc.zombie:
            return
        if self.trace and status_word is None:
            self.log_line(f"[pid {proc.pid}] +++ exited with {code & 0xFF} +++")
        for th in proc.threads:
            if th.state != DEAD:
                self._thread_gone(th)
        proc.exit_status = status_word if status_word is not None else (code & 0xFF) << 8
        proc.fds.close_all()
        proc.mm.destroy()
        try:
            os.close(proc.cwd_fd)
        except OSError:
            pass
        if proc.vfork_parent is not None:
            self.sched.wake(proc.vfork_parent, woken=True)
            proc.vfork_parent = None
        for child in proc.children:                  # orphans go to init (reaped automatically)
            child.parent = None
            child.ppid = 1
            if child.zombie:
                self.processes.pop(child.pid, None)
        proc.children = []
        if proc is self.init:
            self.exit_status = code & 0xFF if status_word is None else code
            self.finished = True
            return
        self._notify_parent(proc, signals.CLD_KILLED if status_word is not None else signals.CLD_EXITED,
                            (status_word & 0x7F) if status_word is not None else code & 0xFF)

    def _notify_parent(self, proc: Process, why: int, status: int) -> None:
        parent = proc.parent
        if parent is None or parent.zombie:
            if proc.zombie:
                self.processes.pop(proc.pid, None)
            return
        handler, flags, _, _ = parent.sig.get(signals.SIGCHLD)
        if proc.zombie and (handler == signals.SIG_IGN or flags & signals.SA_NOCLDWAIT):
            parent.children.remove(proc)             # auto-reap
            self.processes.pop(proc.pid, None)
        elif why != signals.CLD_STOPPED or not flags & signals.SA_NOCLDSTOP:
            if proc.exit_signal:
                self.post_signal(parent, SigInfo(proc.exit_signal, why, pid=proc.pid, uid=os.getuid(),
                                                 status=status))
        for t in parent.threads:                     # wake wait4/waitid
            if t.state == BLOCKED and t.wait and t.wait.kind == "child":
                self.sched.wake(t, woken=True)

    # -- messages ---------------------------------------------------------------------------------
    def report_once(self, key, text: str) -> None:
        if key not in self.reported:
            self.reported.add(key)
            self.log_line(text)

    def sigpipe(self, t: Thread):
        """A write to a pipe with no reader: SIGPIPE to the thread, and EPIPE."""
        self.post_signal(t.proc, SigInfo(signals.SIGPIPE, signals.SI_USER, pid=t.proc.pid), thread=t)
        return -errno.EPIPE

    def log_line(self, text: str) -> None:
        self.log.write(text + "\n")
        self.log.flush()

    def shutdown(self) -> None:
        if self.watchdog:
            self.watchdog.close()


def _core_limit(proc: Process) -> int:
    import resource
    if 4 in proc.rlimits:                       # RLIMIT_CORE set by the guest
        return proc.rlimits[4][0]
    return resource.getrlimit(resource.RLIMIT_CORE)[0]


def _host_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
