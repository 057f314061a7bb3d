"""The ROS kernel: entry from vCPU exits (system calls, faults), processes, and user-mode entry.

This is the guest OS of the ROS partition, modelled in Python: the VMM (`hvm`) hands it the exits
of the ROS vCPU through the small `GuestOS` interface (`boot`, `on_syscall`, `on_exception`,
`on_exit`, `finished`, `exit_status`); the ROS never reaches into VMM internals.
"""
from __future__ import annotations

import errno
import os
import random
import signal as host_signal
import struct
import sys
from dataclasses import dataclass, field

from hvm.memory import PAGE_SIZE, GuestMemory, Partition
from hvm.vcpu import BP, DE, GP, PF, UD, Exit, ExitKind, Vcpu

from . import layout, loader
from .files import FdTable, OpenFile, stdio_table
from .mm import PF_I, PF_W, AddressSpace, TlbHooks
from .paging import PTE_NX, PTE_P, PTE_W, FrameAllocator, OutOfMemory
from .process import Process, Thread
from .syscalls import table
from .syscalls.table import NORETURN, TABLE

# Import the syscall families so that they register themselves in TABLE.
from .syscalls import fs, futex, mm as sys_mm, proc, time as sys_time  # noqa: F401,E402

SIGNAL_NAMES = {s.value: s.name for s in host_signal.Signals}
_EXCEPTION_SIGNALS = {DE: host_signal.SIGFPE, 1: host_signal.SIGTRAP, BP: host_signal.SIGTRAP,
                      UD: host_signal.SIGILL, GP: host_signal.SIGSEGV, PF: host_signal.SIGSEGV,
                      16: host_signal.SIGFPE, 17: host_signal.SIGBUS, 19: host_signal.SIGFPE}
FIRST_PID = 1000


@dataclass
class KernelOptions:
    trace: bool = False
    log: object = None                      # where trace lines and mvemu's own messages go
    seed: int = 0x6D76656D75                # AT_RANDOM and getrandom: deterministic by default
    uname_release: str = "6.1.0-mvemu"
    hostname: str = "mvemu"


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
        self.vcpus: list[Vcpu] = []
        self.tlb = TlbHooks(flush_tlb=self._flush_tlbs, flush_code=self._flush_code)
        self.processes: dict[int, Process] = {}
        self.current: Thread | None = None
        self.next_pid = FIRST_PID
        self.finished = False
        self.exit_status = 0
        self.reported_nosys: set[int] = set()
        self._kernel_pml4e = self._build_kernel_pages()

    # -- kernel half of every address space -------------------------------------------------------
    def _build_kernel_pages(self) -> int:
        """GDT, ring-3 entry trampoline and a kernel stack, mapped supervisor-only in PML4 slot 511."""
        from .paging import PageTable
        scratch = PageTable(self.mem, self.frames)
        gdt, tramp, kstack = (self.frames.alloc() for _ in range(3))
        descriptors = [0, 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF,   # null, -, kernel CS 0x10, DS 0x18
                       0x00CFFA000000FFFF, 0x00CFF2000000FFFF, 0x00AFFA000000FFFF]  # user32 CS, user DS, user CS
        self.mem.write(gdt, struct.pack(f"<{len(descriptors)}Q", *descriptors))
        self.gdt_limit = 8 * len(descriptors) - 1
        self.mem.write(tramp, b"\x48\xcf")                   # iretq
        self.kstack_pa = kstack
        scratch.set_pte(layout.KERNEL_GDT, gdt | PTE_P | PTE_W | PTE_NX)
        scratch.set_pte(layout.KERNEL_TRAMPOLINE, tramp | PTE_P)
        scratch.set_pte(layout.KERNEL_STACK_TOP - PAGE_SIZE, kstack | PTE_P | PTE_W | PTE_NX)
        return self.mem.read_u64(scratch.pml4 + 8 * 511)

    # -- vCPUs ------------------------------------------------------------------------------------
    def attach(self, vcpu: Vcpu) -> None:
        self.vcpus.append(vcpu)

    def _flush_tlbs(self) -> None:
        for v in self.vcpus:
            v.flush_tlb()

    def _flush_code(self) -> None:
        for v in self.vcpus:
            v.flush_code()

    # -- processes --------------------------------------------------------------------------------
    def new_address_space(self) -> AddressSpace:
        return AddressSpace(self.mem, self.frames, self._kernel_pml4e, self.tlb)

    def spawn(self, path: str, argv: list[bytes], envp: list[bytes]) -> Process:
        """Create the first process running `path` (raises loader.ExecError for unrunnable files)."""
        image = loader.read_elf(path)
        pid = self._alloc_pid()
        proc = Process(pid=pid, ppid=1, mm=self.new_address_space(), fds=stdio_table(),
                       cwd_fd=os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC),
                       pgid=pid, sid=pid)
        thread = Thread(tid=pid, proc=proc)
        proc.threads.append(thread)
        self.processes[pid] = proc
        self._exec_into(thread, image, argv, envp, path.encode())
        self.current = thread
        return proc

    def _alloc_pid(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        return pid

    def _exec_into(self, t: Thread, image: loader.ElfImage, argv, envp, execfn: bytes) -> None:
        proc = t.proc
        loaded = loader.load_image(proc.mm, image)
        ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
        sp = loader.build_stack(proc.mm, loaded, argv, envp, execfn, self.rng.randbytes(16), ids)
        proc.exe = os.path.abspath(image.path)
        proc.comm = os.path.basename(image.path)[:15]
        t.context = ("entry", loaded.entry, sp)

    # -- the GuestOS interface --------------------------------------------------------------------
    def boot(self, vcpu: Vcpu) -> None:
        """Put `vcpu` in the ROS kernel's CPU state and enter the current thread in ring 3."""
        self.attach(vcpu)
        vcpu.set_gdtr(layout.KERNEL_GDT, self.gdt_limit)
        vcpu.set_reg("cr3", self.current.proc.mm.cr3)
        vcpu.set_reg("cr4", 0x20 | 0x200 | 0x400)          # PAE | OSFXSR | OSXMMEXCPT
        vcpu.set_msr(0xC000_0080, 0xD01)                  # EFER: SCE | LME | LMA | NXE
        vcpu.set_reg("cr0", 0x8005_0033)                  # PG | AM | WP | NE | ET | MP | PE
        vcpu.set_reg("cs", layout.KERNEL_CS)
        vcpu.set_reg("ss", layout.KERNEL_DS)
        self._enter_user(vcpu, self.current)

    def _enter_user(self, vcpu: Vcpu, t: Thread) -> None:
        _, entry, sp = t.context
        t.context = None
        frame = struct.pack("<5Q", entry, layout.USER_CS, 0x202, sp, layout.USER_DS)
        self.mem.write(self.kstack_pa + PAGE_SIZE - len(frame), frame)
        vcpu.set_regs({"rsp": layout.KERNEL_STACK_TOP - len(frame), "rip": layout.KERNEL_TRAMPOLINE,
                       "rflags": 0x2, "fs_base": 0, "gs_base": 0})
        for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
                  "r13", "r14", "r15"):
            vcpu.set_reg(r, 0)

    def on_syscall(self, vcpu: Vcpu) -> bool:
        """The hot path: one register-file read, one table lookup, one register write."""
        nr, a0, a1, a2, a3, a4, a5 = vcpu.syscall_args()
        entry = TABLE.get(nr)
        t = self.current
        try:
            ret = entry.fn(self, t, a0, a1, a2, a3, a4, a5) if entry is not None else self._nosys(nr)
        except OutOfMemory:
            ret = -errno.ENOMEM
        if self.trace:
            self.log_line(f"[pid {t.tid}] " + table.format_call(self, t, entry, nr, (a0, a1, a2, a3, a4, a5), ret))
        if ret is NORETURN:
            return False
        vcpu.set_rax(ret)
        return True

    def _nosys(self, nr: int) -> int:
        """ENOSYS. For a number Linux has too, that is mvemu's gap: say so once; for a number Linux
        does not have, ENOSYS is exactly Linux's answer and there is nothing to report."""
        if nr in table.NAMES and nr not in self.reported_nosys:
            self.reported_nosys.add(nr)
            self.log_line(f"mvemu: unimplemented system call {table.name_of(nr)} ({nr}): returning -ENOSYS")
        return -errno.ENOSYS

    def on_exception(self, vcpu: Vcpu, exit: Exit) -> bool:
        if exit.vector == PF and vcpu.cpl() == 3:
            try:
                if self.current.proc.mm.fault(exit.cr2, exit.error_code):
                    return True
            except OutOfMemory:
                self.kill(self.current.proc, host_signal.SIGKILL, "out of guest memory (raise --mem)")
                return False
        return False        # anything else stops the vCPU and comes back through on_exit

    def on_exit(self, vcpu: Vcpu, exit: Exit) -> None:
        """An exit that stopped the vCPU."""
        if self.finished or (self.current and not self.current.alive):
            self.finished = True
            return
        kind = exit.kind
        if kind in (ExitKind.EXCEPTION, ExitKind.BREAKPOINT, ExitKind.INVALID_OPCODE, ExitKind.HALT,
                    ExitKind.HYPERCALL, ExitKind.MEMORY_ERROR):
            self._fatal_fault(vcpu, exit)
        if not self.current.alive:
            self.finished = True

    def _fatal_fault(self, vcpu: Vcpu, exit: Exit) -> None:
        if exit.kind == ExitKind.INVALID_OPCODE:
            sig, what = host_signal.SIGILL, f"illegal instruction at rip {exit.rip:#x}"
        elif exit.kind in (ExitKind.HALT, ExitKind.HYPERCALL):
            sig, what = host_signal.SIGSEGV, f"privileged instruction (general protection) at rip {exit.rip:#x}"
        elif exit.kind == ExitKind.MEMORY_ERROR:
            sig, what = host_signal.SIGBUS, f"machine error at rip {exit.rip:#x}: {exit.detail}"
        else:
            sig = _EXCEPTION_SIGNALS.get(exit.vector, host_signal.SIGSEGV)
            if exit.vector == PF:
                ec = exit.error_code
                access = "execute" if ec & PF_I else "write" if ec & PF_W else "read"
                vma = self.current.proc.mm.find(exit.cr2)
                why = f"not permitted by the mapping's protection {_prot_str(vma.prot)}" if vma else "unmapped address"
                what = f"invalid {access} at {exit.cr2:#x} ({why}), rip {exit.rip:#x}"
            elif exit.vector == BP:
                what = f"breakpoint trap (int3) at rip {exit.rip:#x}"
            elif exit.vector == DE:
                what = f"divide error at rip {exit.rip:#x}"
            else:
                what = f"exception {exit.vector} (error code {exit.error_code:#x}) at rip {exit.rip:#x}"
        self.kill(self.current.proc, sig, what)

    # -- process death ------------------------------------------------------------------------------
    def kill(self, proc: Process, sig: int, what: str = "") -> None:
        """Terminate `proc` by signal `sig` (default action), printing one line as mvemu."""
        name = SIGNAL_NAMES.get(sig, f"signal {sig}")
        if sig not in (host_signal.SIGPIPE, host_signal.SIGINT):    # shells are silent about these too
            self.log_line(f"mvemu: {proc.comm}: killed by {name}" + (f": {what}" if what else ""))
        self.exit_process(proc, 128 + sig, status_word=sig)

    def exit_process(self, proc: Process, code: int, status_word: int | None = None) -> None:
        proc.exit_status = status_word if status_word is not None else (code & 0xFF) << 8
        for th in proc.threads:
            th.alive = False
        proc.fds.close_all()
        proc.mm.destroy()
        try:
            os.close(proc.cwd_fd)
        except OSError:
            pass
        if proc.pid == FIRST_PID:
            self.exit_status = code & 0xFF if status_word is None else code
            self.finished = True

    def report_once(self, key, text: str) -> None:
        if key not in self.reported_nosys:
            self.reported_nosys.add(key)
            self.log_line(text)

    def sigpipe(self, t: Thread):
        """A write to a pipe with no reader: SIGPIPE, then EPIPE if the signal did not kill."""
        from .syscalls.proc import send_signal
        r = send_signal(self, t, t.proc, host_signal.SIGPIPE)
        return r if r is NORETURN else -errno.EPIPE

    def log_line(self, text: str) -> None:
        self.log.write(text + "\n")
        self.log.flush()
