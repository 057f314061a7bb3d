"""The HRT side of the HVM: AeroKernel image install, the HRT's page tables, booting HRT vCPUs,
their hypercalls, exception delivery through the AeroKernel's IDT, and SYSCALL semantics.

Run `python -m hvm.hrt selftest AEROKERNEL.elf` to boot an image on its own and run its self-tests.
"""
from __future__ import annotations

import errno
import io
import struct
import sys
import time
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from unicorn import x86_const as x86

from . import abi, pagewalk
from .events import Channels
from .memory import PAGE_SIZE, GuestMemory, Partition
from .vcpu import DE, PF, Exit, ExitKind, Vcpu

MB2 = 2 << 20
MAX_LOCAL_WRITE = 1 << 20
PTE_P, PTE_W, PTE_PS, PTE_NX = 1, 2, 0x80, 1 << 63
_ERROR_CODE_VECTORS = {8, 10, 11, 12, 13, 14, 17, 21, 29, 30}
MSR_STAR, MSR_LSTAR, MSR_FMASK, MSR_EFER = 0xC000_0081, 0xC000_0082, 0xC000_0084, 0xC000_0080
_WORK_NAMES = {v: k for k, v in abi.WORK.items()}


class HrtError(Exception):
    """An image that cannot be installed, or an HRT that cannot boot; str() is one line."""


@dataclass
class Image:
    entry: int
    segments: list[tuple[int, int, bytes, int]]     # (vaddr, memsz, data, flags)
    symbols: dict[str, int]
    span: int                                       # bytes from KERNEL_VBASE to the end


def parse_image(data: bytes) -> Image:
    """Validate an AeroKernel ELF (x86-64 ET_EXEC linked at KERNEL_VBASE) and extract it."""
    if data[:4] != b"\x7fELF":
        raise HrtError("the AeroKernel image is not an ELF file")
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_X86_64" or elf.elfclass != 64 or elf["e_type"] != "ET_EXEC":
            raise HrtError("the AeroKernel image must be a 64-bit x86-64 ET_EXEC")
        segs, end = [], 0
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                raise HrtError("the AeroKernel image must be freestanding (it has PT_INTERP)")
            if seg["p_type"] != "PT_LOAD" or not seg["p_memsz"]:
                continue
            va = seg["p_vaddr"]
            if va < abi.KERNEL_VBASE:
                raise HrtError(f"AeroKernel segment at {va:#x} is below KERNEL_VBASE {abi.KERNEL_VBASE:#x}")
            segs.append((va, seg["p_memsz"], seg.data(), seg["p_flags"]))
            end = max(end, va + seg["p_memsz"])
        if not segs:
            raise HrtError("the AeroKernel image has no loadable segments")
        symbols = {}
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            for sym in symtab.iter_symbols():
                if sym.name and sym["st_value"]:
                    symbols[sym.name] = sym["st_value"]
        return Image(elf["e_entry"], segs, symbols, (end - abi.KERNEL_VBASE + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    except ELFError as e:
        raise HrtError(f"malformed AeroKernel ELF ({e})")


@dataclass
class HrtCpu:
    index: int
    vcpu: Vcpu | None = None
    boot_info: int = 0                   # guest-physical
    mailbox: int = 0
    state: str = "off"                   # off, running, waiting (for work), halted, dead
    work: list = field(default_factory=list)
    flush: int = 0                       # a TLB (1) or TLB and code (2) flush is due before it runs
    halt_wait: int = 0                   # the channel it halts on after POST_WAIT (no WAKE needed)
    resume: bool = False                 # that event completed before the vCPU reached its hlt
    others_want: object = None           # () -> bool: should its time slice end (Hrt.wants_switch)
    preemptions: int = 0                 # time-slice interrupts delivered to its program threads


class Hrt:
    """The HRT partition and its vCPUs. `log(text)` receives console output and trace lines."""

    def __init__(self, memory: GuestMemory, hrt: Partition, all_parts: list[Partition], ncpus: int,
                 log, trace: bool = False, channels: Channels | None = None, wp: bool = True,
                 local: frozenset[str] = frozenset()):
        self.mem = memory
        # CR0.WP on HRT vCPUs: ring-0 writes to read-only (copy-on-write, zero) pages fault. Off
        # only for `--hrt-wp off`, the demonstration of what goes wrong without it.
        self.cr0 = abi.HRT_CR0 if wp else abi.HRT_CR0 & ~abi.CR0_WP
        # Subtractive porting: the system calls the AeroKernel serves itself (boot_info.local_syscalls);
        # with --trace or --stats it also reports each one (LOCAL_SYSCALL) to be shown and counted.
        self.local_mask = sum(1 << abi.LOCAL_SYSCALLS[name][0] for name in local)
        self.local_write = None     # pid, fd, bytes -> count, or None: not the console (the machine's)
        self.part = hrt
        self.all_parts = all_parts
        self.cpus = [HrtCpu(i) for i in range(ncpus)]
        for cpu in self.cpus:
            cpu.others_want = lambda cpu=cpu: self.wants_switch(cpu)
        self._rq_heads: list[int] | None = None   # guest-physical &runqueues[i].head, once known
        self.log = log
        self.trace = trace
        self.image: Image | None = None
        self.booted = False
        self.merged = False
        self.cr3 = 0
        self.merged_cr3 = 0                   # the ROS process whose lower half is merged
        self.channels = channels or Channels(memory, log, trace, False)
        self.threads: dict[int, dict] = {}    # top-level HRT threads: id -> cpu, channel, partner
        self._next_thread = 1
        self._next_cpu = 0
        self.on_call_done = None          # callback(cpu, result) for INVOKE completions
        self.selftests: dict[tuple[int, int], int] = {}   # (cpu, test id) -> 0 or failure code
        self.exceptions: list[tuple[int, int, int, int]] = []   # (cpu, vector, rip, error) reported
        self.console = bytearray()
        # The AeroKernel's console reaches stderr with --trace or --hrt-console; otherwise it is
        # kept (the last lines) and shown only if the HRT fails, so a hybridized program's stderr
        # stays what the original's is.
        self.show_console = trace
        self.console_tail: list[str] = []

    def console_line(self, line: str) -> None:
        if self.show_console:
            self.log(line)
            return
        self.console_tail = (self.console_tail + [line])[-40:]
        if ": fatal " in line or "panic" in line:
            self.flush_console()

    def console_write(self, vcpu: Vcpu, fd: int, va: int, length: int, pid: int) -> int:
        """LOCAL_WRITE: a program's write(1 or 2, ...) served without its partner, when the ROS says
        that fd is still mvemu's own stdout or stderr. -EAGAIN tells the AeroKernel to forward the
        call instead: another fd, a buffer not all mapped (the partner's write pages it in), a
        write too large to copy at once, or a console the ROS cannot write without it (EPIPE)."""
        if self.local_write is None or fd not in (1, 2) or length > MAX_LOCAL_WRITE:
            return -errno.EAGAIN
        try:
            data = pagewalk.read(self.mem, vcpu.reg("cr3"), va, length)
        except pagewalk.PageFault:
            return -errno.EAGAIN
        n = self.local_write(pid, fd, data)
        return -errno.EAGAIN if n is None else n

    def flush_console(self) -> None:
        """Show the kept console lines (the HRT failed: they say why)."""
        for line in self.console_tail:
            self.log(line)
        self.console_tail = []
        self.show_console = True

    # Set by the machine: run the ROS vCPUs once, from inside an HRT vCPU's POST_EVENT, so that the
    # partner can serve the event before that vCPU halts (None: it halts, the machine runs the ROS).
    serve_now = None
    retired = False           # reset: this HRT's vCPUs must not go on (see _post_event)

    def state_bits(self) -> int:
        """GET_STATE's answer: bit 0 image installed, bit 1 booted, bit 2 merged."""
        return (1 if self.image else 0) | (2 if self.booted else 0) | (4 if self.merged else 0)

    def _t(self, text: str) -> None:
        if self.trace:
            self.log(f"[hvm] {text}")

    # -- install -----------------------------------------------------------------------------------
    def install(self, data: bytes) -> None:
        image = parse_image(data)
        layout = self._layout(image)
        for va, memsz, seg, _flags in image.segments:
            pa = layout["image"] + (va - abi.KERNEL_VBASE)
            self.mem.zero(pa, memsz)
            self.mem.write(pa, seg)
        self.image = image
        self.layout = layout
        self._t(f"AeroKernel image installed: {len(image.segments)} segments, {image.span >> 10} KiB at "
                f"physical {layout['image']:#x}, entry {image.entry:#x}")
        self._build_page_tables()

    def _layout(self, image: Image) -> dict[str, int]:
        """Where everything goes in HRT memory (physical)."""
        base, end = self.part.base, self.part.end
        n = len(self.cpus)
        lay = {"gdt": base, "tables": base + PAGE_SIZE}
        nparts = (self.mem.size + (1 << 30) - 1) >> 30            # one PD per GiB of guest memory
        ntables = 2 + nparts + 3 + ((image.span + MB2 - 1) // MB2)  # pml4, pdpt, pds, kernel pdpt/pd/pts
        cur = lay["tables"] + ntables * PAGE_SIZE
        lay["info"] = cur                                         # boot info + mailbox: one page per cpu
        cur += n * PAGE_SIZE
        lay["stacks"] = cur
        cur += n * abi.BOOT_STACK_SIZE
        lay["image"] = (cur + MB2 - 1) & ~(MB2 - 1)
        lay["free"] = lay["image"] + image.span
        if lay["free"] + (1 << 20) > end:
            raise HrtError(f"HRT memory ({self.part.size >> 20} MiB) is too small for the AeroKernel image")
        return lay

    def _build_page_tables(self) -> None:
        mem, lay = self.mem, self.layout
        nxt = [lay["tables"]]

        def table() -> int:
            pa = nxt[0]
            nxt[0] += PAGE_SIZE
            mem.zero(pa, PAGE_SIZE)
            return pa

        pml4 = table()
        # Higher-half identity map of all guest-physical memory, 2 MiB pages, RW, NX.
        pdpt = table()
        mem.write_u64(pml4 + 8 * ((abi.HIGH_BASE >> 39) & 0x1FF), pdpt | PTE_P | PTE_W)
        for g in range((mem.size + (1 << 30) - 1) >> 30):
            pd = table()
            mem.write_u64(pdpt + 8 * g, pd | PTE_P | PTE_W)
            for i in range(512):
                pa = (g << 30) | (i << 21)
                if pa >= mem.size:
                    break
                mem.write_u64(pd + 8 * i, pa | PTE_P | PTE_W | PTE_PS | PTE_NX)
        # The kernel image at KERNEL_VBASE, 4 KiB pages with the segments' permissions.
        kv = abi.KERNEL_VBASE
        kpdpt = table()
        mem.write_u64(pml4 + 8 * ((kv >> 39) & 0x1FF), kpdpt | PTE_P | PTE_W)
        kpd = table()
        mem.write_u64(kpdpt + 8 * ((kv >> 30) & 0x1FF), kpd | PTE_P | PTE_W)
        pts: dict[int, int] = {}
        for va, memsz, _data, flags in self.image.segments:
            for page in range(va & ~(PAGE_SIZE - 1), va + memsz, PAGE_SIZE):
                i2 = (page >> 21) & 0x1FF
                if i2 not in pts:
                    pts[i2] = table()
                    mem.write_u64(kpd + 8 * i2, pts[i2] | PTE_P | PTE_W)
                pa = lay["image"] + (page - kv)
                pte = pa | PTE_P | (PTE_W if flags & 2 else 0) | (0 if flags & 1 else PTE_NX)
                mem.write_u64(pts[i2] + 8 * ((page >> 12) & 0x1FF), pte)
        self.cr3 = pml4
        self._t(f"HRT page tables built: PML4 at {pml4:#x}, {mem.size >> 20} MiB identity-mapped at "
                f"{abi.HIGH_BASE:#x}, kernel at {kv:#x}")

    # -- boot --------------------------------------------------------------------------------------
    def boot(self, make_vcpu) -> None:
        """Start every HRT vCPU at the image's entry (`make_vcpu(index, handler)` creates a vCPU)."""
        if self.image is None:
            raise HrtError("no AeroKernel image installed")
        lay, mem = self.layout, self.mem
        gdt = lay["gdt"]
        mem.write(gdt, struct.pack("<3Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF))
        n = len(self.cpus)
        for cpu in self.cpus:
            info = lay["info"] + cpu.index * PAGE_SIZE
            mailbox = info + PAGE_SIZE // 2
            stack_top = lay["stacks"] + (cpu.index + 1) * abi.BOOT_STACK_SIZE
            values = {"magic": abi.BOOT_INFO_MAGIC, "cpu_id": cpu.index, "num_cpus": n,
                      "hrt_base": self.part.base, "hrt_size": self.part.size,
                      "ros_base": 0, "ros_size": self.part.base, "high_base": abi.HIGH_BASE,
                      "kernel_vbase": abi.KERNEL_VBASE, "image_pbase": lay["image"],
                      "image_size": self.image.span, "free_pbase": lay["free"],
                      "free_size": self.part.end - lay["free"],
                      "boot_stack_top": abi.HIGH_BASE + stack_top, "mailbox_pbase": mailbox,
                      "local_syscalls": self.local_mask | (abi.LOCAL_ACCOUNT if self.local_mask and
                                                           self.channels.keep_books else 0)}
            mem.zero(info, PAGE_SIZE)
            mem.write(info, struct.pack(f"<{len(abi.BOOT_INFO_FIELDS)}Q",
                                        *(values[f] for f in abi.BOOT_INFO_FIELDS)))
            cpu.boot_info, cpu.mailbox = info, mailbox
            v = cpu.vcpu = make_vcpu(cpu.index, HrtDispatch(self, cpu))
            # Its program threads' SYSCALL stays in ring 0: performed natively when hvm/native is
            # built, with no Python call (else by HrtDispatch.on_syscall).
            native = v.use_native_syscall()
            # So are its exceptions, delivered to the AeroKernel's IDT (in Python while tracing, which
            # shows each one).
            if not self.trace:
                v.use_native_exceptions()
            v.set_gdtr(abi.HIGH_BASE + gdt, 23)
            v.set_reg("cr3", self.cr3)
            v.set_reg("cr4", abi.HRT_CR4)
            v.set_msr(MSR_EFER, abi.HRT_EFER)
            v.set_reg("cr0", self.cr0)
            v.set_reg("cs", abi.HRT_KERNEL_CS)
            v.set_reg("ss", abi.HRT_KERNEL_DS)
            v.set_reg("ds", abi.HRT_KERNEL_DS)
            v.set_reg("es", abi.HRT_KERNEL_DS)
            v.set_regs({"rsp": abi.HIGH_BASE + stack_top, "rip": self.image.entry, "rdi": info,
                        "rflags": 0x2})
            # x87 and SSE as Linux starts a process (FNINIT control word, default MXCSR): HRT
            # threads run program code, which must compute exactly as in the ROS.
            v.uc.reg_write_batch([(x86.UC_X86_REG_FPCW, 0x37F), (x86.UC_X86_REG_FPSW, 0),
                                  (x86.UC_X86_REG_FPTAG, 0xFFFF), (x86.UC_X86_REG_MXCSR, 0x1F80)])
            cpu.state = "running"
            self._t(f"HRT vCPU {cpu.index} started at {self.image.entry:#x} (rsp {abi.HIGH_BASE + stack_top:#x}, "
                    f"boot info {info:#x}, CR0 {self.cr0:#x} "
                    f"{'with WP' if self.cr0 & abi.CR0_WP else 'WITHOUT WP: ring-0 writes ignore read-only pages'}; "
                    f"SYSCALL performed {'natively' if native else 'in Python (hvm/native not built)'})")
        self.booted = True

    # -- merged address spaces -------------------------------------------------------------------
    def merge(self, cr3: int, again: bool = False) -> None:
        """Copy the lower-half PML4 entries (0..255) of the ROS page tables at `cr3` into the HRT's
        PML4 and flush every HRT vCPU's TLB (DESIGN.md section 8)."""
        entries = self.mem.read((cr3 & pagewalk.ADDR), 256 * 8)
        self.mem.write(self.cr3, entries)
        self.merged_cr3 = cr3 & pagewalk.ADDR
        self.merged = True
        self.flush_tlbs()
        used = sum(1 for i in range(256) if entries[8 * i] & 1)
        if again:
            self.channels.stats.remerges += 1
        else:
            self.channels.stats.merges += 1
        self._t(f"{'re-merged' if again else 'merged'} the ROS address space (CR3 {cr3:#x}): {used} of 256 "
                f"lower-half PML4 entries copied into the HRT PML4 at {self.cr3:#x}, HRT TLBs flushed")

    def unmerge(self) -> None:
        if self.cr3:
            self.mem.zero(self.cr3, 256 * 8)
        self.merged, self.merged_cr3 = False, 0
        self.flush_tlbs()
        self._t("unmerged: the HRT's lower half is empty again")

    def flush_tlbs(self, code: bool = False) -> None:
        """The emulated TLB shootdown: every HRT vCPU drops what it cached of the lower half
        before it runs again (so the many shootdowns of one ROS operation, e.g. a fork, cost one
        flush per vCPU)."""
        for cpu in self.cpus:
            cpu.flush = max(cpu.flush, 2 if code else 1)

    def run_vcpu(self, cpu: HrtCpu) -> Exit:
        if cpu.flush:
            cpu.vcpu.flush_tlb()
            if cpu.flush > 1:
                cpu.vcpu.flush_code()
            cpu.flush = 0
        return cpu.vcpu.run()

    def create_thread(self, func: int, args: tuple[int, int, int], stack: int, fs_base: int,
                      channel: int, cpu: int = -1, partner: int = 0, pid: int = 0) -> int:
        """Queue a top-level thread on an HRT vCPU (round robin when `cpu` is -1); its id. `partner`
        and `pid`: the partner's thread and process ids (what getpid/gettid served locally return)."""
        if cpu < 0 or cpu >= len(self.cpus):
            cpu = self._next_cpu
            self._next_cpu = (self._next_cpu + 1) % len(self.cpus)
        tid = self._next_thread
        self._next_thread += 1
        self.threads[tid] = {"cpu": cpu, "channel": channel, "partner": partner, "entry": func}
        self.channels.stats.threads_created += 1
        self.post_work(cpu, abi.WORK["THREAD"], func, args[0], args[1], args[2], stack, fs_base, channel, tid,
                       pid, partner)
        self._t(f"HRT thread {tid} created on HRT vCPU {cpu}: {func:#x}({args[0]:#x}, {args[1]:#x}, "
                f"{args[2]:#x}) on stack {stack:#x}, FS base {fs_base:#x} (superposed from partner "
                f"{partner}), channel {channel:#x}")
        return tid

    # -- time slices among the threads of one vCPU -----------------------------------------------------
    def has_queued(self, cpu: HrtCpu) -> bool:
        """Does the AeroKernel have a thread queued on this vCPU's run queue (hvm_debug_info tells
        where), or work the VMM queued for it?"""
        if cpu.work:
            return True
        if self._rq_heads is None:
            self._rq_heads = self._find_run_queues()
        if not self._rq_heads or cpu.index >= len(self._rq_heads):
            return False
        return self.mem.read_u64(self._rq_heads[cpu.index]) != 0

    def _find_run_queues(self) -> list[int]:
        addr = self.image.symbols.get(abi.DEBUG_INFO_SYMBOL) if self.image is not None else None
        if addr is None or not self.cr3:
            return []
        n = len(abi.DEBUG_INFO_FIELDS)
        try:
            info = dict(zip(abi.DEBUG_INFO_FIELDS, struct.unpack(f"<{n}Q", pagewalk.read(self.mem, self.cr3, addr, 8 * n))))
            if info["magic"] != abi.DEBUG_INFO_MAGIC:
                return []
            return [pagewalk.translate(self.mem, self.cr3, info["runqueues"] + i * info["runqueue_size"] + info["off_rq_head"])
                    for i in range(min(len(self.cpus), info["max_cpus"]))]
        except (pagewalk.PageFault, KeyError, struct.error):
            return []

    def wants_switch(self, cpu: HrtCpu) -> bool:
        """For the watchdog that time-slices this vCPU: another HRT vCPU has work, or this one has
        another thread to run (then the slice's end preempts the running one)."""
        return sum(1 for c in self.cpus if c.state == "running") > 1 or self.has_queued(cpu)

    def preempt(self, cpu: HrtCpu) -> None:
        """Its time slice ended (a BUDGET exit). If it runs program code with IF set and has
        another thread queued, deliver the time-slice interrupt: the AeroKernel's handler lets
        the other threads run (cooperative kernel code is never interrupted)."""
        v = cpu.vcpu
        rip = v.reg("rip")
        if rip >= abi.LOWER_HALF_END or not v.reg("rflags") & 0x200 or not self.has_queued(cpu):
            return
        if deliver_exception(self, cpu.index, v, Exit(ExitKind.EXCEPTION, rip=rip, vector=abi.PREEMPT_VECTOR)):
            cpu.preemptions += 1
            self.channels.stats.preemptions += 1

    def nested_thread(self, tid: int, creator: int, cpu: int, channel: int) -> None:
        """The AeroKernel created a nested thread from HRT code (paper III-D): it belongs to its
        creator's execution group, whose partner serves its events."""
        group = self.threads.get(creator, {})
        partner = group.get("partner", 0)
        self.threads[tid] = {"cpu": cpu, "channel": channel, "partner": partner, "entry": 0, "creator": creator}
        self.channels.stats.threads_created += 1
        self.channels.stats.nested_threads += 1
        self._t(f"HRT thread {tid} created on HRT vCPU {cpu} by HRT thread {creator}: nested, in its execution "
                f"group (partner {partner}, channel {channel:#x}, one event at a time)")

    # -- work --------------------------------------------------------------------------------------
    def post_work(self, cpu_index: int, kind: int, func: int = 0, arg: int = 0, *more: int) -> None:
        """Queue work for an HRT vCPU; a waiting one resumes and takes it with WAIT_EVENT.
        `more`: the mailbox fields after `result` (arg1, arg2, stack, fs_base, channel, thread)."""
        cpu = self.cpus[cpu_index]
        m = 0xFFFF_FFFF_FFFF_FFFF
        cpu.work.append((kind, func & m, arg & m, *(x & m for x in more)))
        if cpu.state == "waiting":
            cpu.state = "running"

    def _take_work(self, cpu: HrtCpu, kinds: int = 0) -> int:
        """The first queued work whose kind is in the bit mask `kinds` (0: any), into the mailbox."""
        for i, item in enumerate(cpu.work):
            kind = item[0]
            if not kinds or kinds & (1 << kind):
                break
        else:
            return 0
        del cpu.work[i]
        kind, func, arg, *more = item
        n = len(abi.MAILBOX_FIELDS) - 4
        fields = [kind, func, arg, 0] + (list(more) + [0] * n)[:n]
        self.mem.write(cpu.mailbox, struct.pack(f"<{len(abi.MAILBOX_FIELDS)}Q", *fields))
        if kind != abi.WORK["WAKE"]:
            self._t(f"HRT vCPU {cpu.index}: work {_WORK_NAMES.get(kind, kind)} func {func:#x} arg {arg:#x}")
        return kind

    def event_completed(self, cpu_index: int, channel: int) -> None:
        """The partner completed the event that a thread of this vCPU waits for. A vCPU halted on
        it right after POST_WAIT just resumes (its thread finds the event completed); otherwise the
        thread blocked in the AeroKernel's scheduler and a WAKE makes it runnable."""
        cpu = self.cpus[cpu_index]
        if cpu.halt_wait != channel:
            self.kick(cpu_index)
            return
        cpu.halt_wait = 0
        if cpu.state == "waiting":
            cpu.state = "running"
        elif cpu.state == "running":
            cpu.resume = True                 # stopped before its hlt: that hlt must not park it

    def kick(self, cpu_index: int) -> None:
        """Make an HRT vCPU look at its run queue / event again (one WAKE queued at most)."""
        cpu = self.cpus[cpu_index]
        if not any(w[0] == abi.WORK["WAKE"] for w in cpu.work):
            self.post_work(cpu_index, abi.WORK["WAKE"])

    @property
    def runnable(self) -> list[HrtCpu]:
        return [c for c in self.cpus if c.state == "running"]

    def any_runnable(self) -> bool:
        for c in self.cpus:
            if c.state == "running":
                return True
        return False

    def on_exit(self, cpu: HrtCpu, exit: Exit) -> None:
        """An HRT vCPU stopped: waiting for work (WAIT_EVENT), halted, or dead on an exception."""
        if self.retired:                          # reset while it ran (a nested ROS run): gone
            cpu.state = "dead"
            return
        if exit.kind is ExitKind.BUDGET:
            self.preempt(cpu)
            return
        if exit.kind is ExitKind.INVALID_OPCODE and cpu.vcpu is not None:
            # Unicorn ends the run on an invalid opcode instead of raising #UD: deliver it.
            if deliver_exception(self, cpu.index, cpu.vcpu, exit):
                return
        if exit.kind is ExitKind.HALT:
            # hlt with interrupts enabled: the idle wait after WAIT_EVENT found no work; the vCPU
            # runs again (after the hlt) once work is queued. With IF clear (HVM_WORK_HALT, or the
            # end of a fatal exception) it is halted until the HRT is reset.
            if cpu.vcpu.reg("rflags") & 0x200:
                if cpu.resume:
                    cpu.resume = False
                elif not cpu.work:
                    cpu.state = "waiting"
                return
            cpu.state = "halted"
            self._t(f"HRT vCPU {cpu.index} halted at {exit.rip:#x}")
            return
        cpu.state = "dead"
        self.flush_console()
        self.log(f"mvemu: HRT vCPU {cpu.index} stopped: {exit.kind.value}"
                 + (f" vector {exit.vector}" if exit.kind in (ExitKind.EXCEPTION, ExitKind.BREAKPOINT) else "")
                 + f" at rip {exit.rip:#x} (error code {exit.error_code:#x}, cr2 {exit.cr2:#x})"
                 + (f": {exit.detail}" if exit.detail else ""))


class HrtDispatch:
    """The exit handlers of one HRT vCPU (what its hooks call)."""

    def __init__(self, hrt: Hrt, cpu: HrtCpu):
        self.hrt = hrt
        self.cpu = cpu

    # SYSCALL in ring 0: Unicorn performs none of the instruction's semantics; do them here.
    def on_syscall(self, vcpu: Vcpu) -> bool:
        if vcpu.perform_syscall():
            return True
        self.hrt.log(f"mvemu: HRT vCPU {self.cpu.index}: syscall at {vcpu.reg('rip'):#x} with no LSTAR set")
        self.cpu.state = "dead"
        return False

    def on_exception(self, vcpu: Vcpu, exit: Exit) -> bool:
        """Deliver through the AeroKernel's IDT as the CPU would, or stop if it has none."""
        return deliver_exception(self.hrt, self.cpu.index, vcpu, exit)

    def on_hypercall(self, vcpu: Vcpu, port: int, _value: int) -> bool:
        if port != _HVM_PORT or vcpu.cpl() != 0:
            return False
        nr, a0, a1, a2, a3 = vcpu.hypercall_args()
        handler = _HRT_HYPERCALLS.get(nr)
        if handler is None:
            if nr in _NAMES:                      # a ROS-side hypercall
                self.hrt._t(f"HRT vCPU {self.cpu.index}: hypercall {_NAMES[nr]} refused: ROS-only (-EPERM)")
                vcpu.set_rax(-errno.EPERM)
            else:
                vcpu.set_rax(-errno.ENOSYS)
            return True
        result = handler(self, vcpu, a0, a1, a2, a3)
        if result is not None:                    # None: the handler set RAX and traced itself
            if self.hrt.trace and nr not in _QUIET:
                self.hrt._t(f"HRT vCPU {self.cpu.index}: hypercall {_NAMES[nr]}({a0:#x}, {a1:#x}) = {result}")
            vcpu.set_rax(result)
        return True

    # One method per hypercall the HRT side may issue (_HRT_HYPERCALLS): the result for RAX, or None
    # when the method set RAX itself.
    def _post_event(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int | None:
        hrt, cpu = self.hrt, self.cpu                     # once per forwarded event: first
        hrt.channels.posted(cpu.index, a0, hrt.cr3)
        result = 0
        if a2 & _POST_WAIT:
            # The poster waits at once: as WAIT_EVENT; with no work it halts until the completion.
            result = hrt._take_work(cpu, a3) if cpu.work else 0
            cpu.halt_wait = 0 if result else a0
            if not result and hrt.serve_now is not None:
                # The partner serves the event right here, its ROS vCPU run inside this hypercall
                # (the machine's serve_now): if it completes the event, the vCPU goes on without
                # halting (a WAKE finds the event completed); else it halts as above.
                hrt.serve_now(cpu)
                if hrt.retired:                   # the process ended or exec'd meanwhile
                    cpu.state = "dead"
                    vcpu.stop(Exit(ExitKind.HALT, rip=vcpu.reg("rip"), detail="HRT reset"))
                    return None
                if cpu.flush == 1:
                    # The ROS changed mappings meanwhile (a TLB shootdown): drop what this vCPU's
                    # TLB holds before it goes on, here, as a CPU's invlpg does in the middle of a
                    # block (the block's later accesses walk the new page tables).
                    vcpu.flush_tlb()
                    cpu.flush = 0
                if cpu.flush:
                    # Translated code may be stale too: this block must not go on. The vCPU halts
                    # (event_completed marked it to resume if the event is done) and run_vcpu
                    # flushes before it runs again.
                    pass
                elif cpu.halt_wait == 0:
                    cpu.resume = False
                    hrt.channels.stats.served_at_once += 1
                    result = _WAKE
                elif cpu.work:
                    result = hrt._take_work(cpu, a3)
                    cpu.halt_wait = 0 if result else a0
        vcpu.set_rax(result)
        return None

    def _get_state(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        return self.hrt.state_bits()

    def _wait_event(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> None:
        # The next work, or 0: the guest then halts (sti; hlt) and on_exit parks the vCPU.
        cpu = self.cpu
        cpu.halt_wait = 0                     # any thread waiting for an event now needs a WAKE
        vcpu.set_rax(self.hrt._take_work(cpu, a1) if cpu.work else 0)
        return None

    def _console_write(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        hrt = self.hrt
        try:
            data = pagewalk.read(hrt.mem, vcpu.reg("cr3"), a0, min(a1, 1 << 16))
        except pagewalk.PageFault:
            return -errno.EFAULT
        hrt.console += data
        while b"\n" in hrt.console:
            line, _, rest = bytes(hrt.console).partition(b"\n")
            hrt.console = bytearray(rest)
            hrt.console_line(line.decode(errors="replace"))
        return len(data)

    def _hrt_ready(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt._t(f"HRT vCPU {self.cpu.index}: AeroKernel ready")
        return 0

    def _hrt_exception(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt.exceptions.append((self.cpu.index, a0, a1, a2))
        self.hrt._t(f"HRT vCPU {self.cpu.index}: exception {a0} at rip {a1:#x}, error code {a2:#x}, cr2 {a3:#x}")
        return 0

    def _selftest(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt.selftests[(self.cpu.index, a0)] = a1
        self.hrt._t(f"HRT vCPU {self.cpu.index}: selftest {a0} {'passed' if a1 == 0 else f'FAILED ({a1:#x})'}")
        return 0

    def _call_done(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        hrt = self.hrt
        hrt._t(f"HRT vCPU {self.cpu.index}: call done, result {a0:#x}")
        if hrt.on_call_done is not None:
            hrt.on_call_done(self.cpu, a0)
        return 0

    def _remerge(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        hrt = self.hrt
        if not hrt.merged:
            return -errno.ENOENT
        hrt.merge(hrt.merged_cr3, again=True)
        return 0

    def _kick(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        if a0 >= len(self.hrt.cpus):
            return -errno.EINVAL
        self.hrt.kick(a0)
        return 0

    def _local_clock(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        return time.clock_gettime_ns(a0) if a0 in abi.LOCAL_CLOCKS else -errno.EINVAL

    def _local_write(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        return self.hrt.console_write(vcpu, a0, a1, a2, a3)

    def _local_syscall(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt.channels.local(self.cpu.index, a0, a1, a2, a3)
        return 0

    def _nested_thread(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt.nested_thread(a0, a1, a2, a3)
        return 0

    def _merge_done(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        self.hrt._t(f"HRT vCPU {self.cpu.index}: merge acknowledged")
        return 0

    def _unsupported(self, vcpu: Vcpu, a0: int, a1: int, a2: int, a3: int) -> int:
        return -errno.ENOSYS


_NAMES = {number: name for name, number in abi.HC.items()}
_HVM_PORT, _POST_WAIT, _WAKE = abi.HVM_PORT, abi.POST_WAIT, abi.WORK["WAKE"]
_QUIET = {"CONSOLE_WRITE", "KICK", "REMERGE", "LOCAL_CLOCK", "LOCAL_WRITE", "LOCAL_SYSCALL", "NESTED_THREAD"}
_HRT_HYPERCALLS = {abi.HC[name]: method for name, method in {
    "POST_EVENT": HrtDispatch._post_event, "GET_STATE": HrtDispatch._get_state,
    "WAIT_EVENT": HrtDispatch._wait_event, "CONSOLE_WRITE": HrtDispatch._console_write,
    "HRT_READY": HrtDispatch._hrt_ready, "HRT_EXCEPTION": HrtDispatch._hrt_exception,
    "SELFTEST": HrtDispatch._selftest, "CALL_DONE": HrtDispatch._call_done,
    "REMERGE": HrtDispatch._remerge, "KICK": HrtDispatch._kick, "LOCAL_CLOCK": HrtDispatch._local_clock,
    "LOCAL_WRITE": HrtDispatch._local_write, "LOCAL_SYSCALL": HrtDispatch._local_syscall,
    "NESTED_THREAD": HrtDispatch._nested_thread, "MERGE_DONE": HrtDispatch._merge_done,
}.items()}
# HRT-side (or either-side) hypercalls mvemu does not implement answer -ENOSYS.
_HRT_HYPERCALLS.update({number: HrtDispatch._unsupported for name, (number, side, _doc) in abi.HYPERCALLS.items()
                        if side != "ros" and number not in _HRT_HYPERCALLS})


def _mmu(vcpu: Vcpu):
    """The vCPU's own MMU (Vcpu.translate) as pagewalk.read_via/write_via want it."""
    def translate(va: int, write: bool) -> int:
        pa = vcpu.translate(va, write)
        if pa is None:
            raise pagewalk.PageFault(va)
        return pa
    return translate


_GATE, _U64 = struct.Struct("<QQ"), struct.Struct("<Q")
_FRAMES = {n: struct.Struct(f"<{n}Q") for n in (5, 6)}


def deliver_exception(hrt: Hrt, index: int, vcpu: Vcpu, exit: Exit) -> bool:
    """Emulated x86-64 exception delivery in ring 0: IDT gate, IST stack from the TSS, frame,
    error code, CR2. False (stop the vCPU) if there is no usable gate. Memory is reached through
    the vCPU's own MMU (Vcpu.translate), as the CPU's delivery does."""
    vec = exit.vector
    idt_base, idt_limit = vcpu.table_register("idtr")
    if idt_limit < 16 * vec + 15:
        return False
    mem, mmu = hrt.mem, _mmu(vcpu)
    try:
        lo, hi = _GATE.unpack(pagewalk.read_via(mem, mmu, idt_base + 16 * vec, 16))
        attrs = (lo >> 40) & 0xFF
        if not attrs & 0x80:
            return False
        handler = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | ((hi & 0xFFFF_FFFF) << 32)
        selector = (lo >> 16) & 0xFFFF
        ist = (lo >> 32) & 7
        rsp = vcpu.reg("rsp")
        if ist:
            tss, _tlim = vcpu.table_register("tr")
            new_rsp = _U64.unpack(pagewalk.read_via(mem, mmu, tss + 0x24 + 8 * (ist - 1), 8))[0]
        else:
            new_rsp = rsp
        new_rsp &= ~0xF
        rflags = vcpu.reg("rflags")
        cs = vcpu.reg("cs")
        if vec in _ERROR_CODE_VECTORS:
            frame = _FRAMES[6].pack(exit.error_code, exit.rip, cs, rflags, rsp, vcpu.reg("ss"))
        else:
            frame = _FRAMES[5].pack(exit.rip, cs, rflags, rsp, vcpu.reg("ss"))
        new_rsp -= len(frame)
        pagewalk.write_via(mem, mmu, new_rsp, frame)
    except pagewalk.PageFault as e:
        hrt.log(f"mvemu: HRT vCPU {index}: cannot deliver exception {vec}: {e} (triple fault)")
        return False
    if vec == PF:
        vcpu.set_reg("cr2", exit.cr2)
    new_flags = rflags & ~(0x100 | 0x4000 | 0x10000)          # TF, NT, RF
    if attrs & 0xF == 0xE:                                      # interrupt gate: IF off
        new_flags &= ~0x200
    vcpu.set_reg("rsp", new_rsp)
    vcpu.set_reg("rip", handler)
    vcpu.set_reg("rflags", new_flags)
    if selector != cs:                                          # (a segment load: only if it changes)
        vcpu.set_reg("cs", selector)
    if hrt.trace:
        hrt._t(f"HRT vCPU {index}: exception {vec} at {exit.rip:#x} (error {exit.error_code:#x}"
               f"{f', cr2 {exit.cr2:#x}' if vec == PF else ''}) delivered to {handler:#x} on IST{ist}")
    return True


# -- standalone: boot an image and run its self-tests -------------------------------------------------
def selftest_main(path: str, mem_mb: int = 64, hrt_mb: int = 64, ncpus: int = 1, trace: bool = True) -> int:
    from .memory import GuestMemory
    mem = GuestMemory((mem_mb + hrt_mb) << 20)
    ros = mem.add_partition("ros", 0, mem_mb << 20)
    hpart = mem.add_partition("hrt", mem_mb << 20, hrt_mb << 20)
    lines = []

    def log(text):
        lines.append(text)
        print(text, file=sys.stderr, flush=True)

    hrt = Hrt(mem, hpart, [ros, hpart], ncpus, log, trace)
    with open(path, "rb") as f:
        hrt.install(f.read())
    done = []
    hrt.on_call_done = lambda cpu, result: done.append(result)
    hrt.boot(lambda i, handler: Vcpu(100 + i, mem, [ros, hpart], handler))
    for cpu in hrt.cpus:
        hrt.post_work(cpu.index, abi.WORK["SELFTEST"])
    for _ in range(100000):
        runnable = hrt.runnable
        if not runnable or len(done) == ncpus:
            break
        for cpu in runnable:
            hrt.on_exit(cpu, hrt.run_vcpu(cpu))
    failed = [k for k, v in hrt.selftests.items() if v]
    print(f"selftests: {len(hrt.selftests)} reported, {len(failed)} failed; calls done {done}", file=sys.stderr)
    return 0 if hrt.selftests and not failed and len(done) == ncpus and all(r == 0 for r in done) else 1


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(prog="python -m hvm.hrt")
    p.add_argument("command", choices=["selftest"])
    p.add_argument("image")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    o = p.parse_args()
    sys.exit(selftest_main(o.image, ncpus=o.cpus, trace=not o.quiet))
