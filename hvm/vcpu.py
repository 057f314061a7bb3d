"""A vCPU: one Unicorn instance and its architectural state, driven through typed exits.

`Vcpu.run()` runs guest code until an exit that needs a context switch and returns it as an `Exit`.
Exits that the VMM can serve in place (a system call, a demand-paging fault, a hypercall) are
dispatched from inside the Unicorn hook straight to the `ExitHandler` (the machine's one dispatch),
because stopping and restarting Unicorn costs several microseconds; the handler answers whether
the vCPU keeps running. Everything Unicorn-specific lives here and in `unicorn_quirks`, so another
backend (KVM) can implement the same interface.

Hot paths (the syscall hook, the batch register read of syscall arguments) use raw ctypes calls
into libunicorn with preallocated buffers instead of the binding's per-call wrappers.
"""
from __future__ import annotations

import ctypes
import enum
import operator
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from greenlet import GreenletExit, getcurrent, greenlet
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_64, UC_PROT_ALL, Uc, UcError
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.arch.intel import UcRegMMR
from unicorn.unicorn_py3.unicorn import uclib

from . import unicorn_quirks
from .memory import GuestMemory, Partition

_END = 0xFFFF_FFFF_FFFF_FFFF      # an address emulation never reaches: run until an exit

_SYSCALL_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_OUT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_CODE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
_MEM_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_void_p)

# Register names used across mvemu, mapped to Unicorn ids.
REGS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "rflags", "cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base",
    "cr0", "cr2", "cr3", "cr4")}
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip", "rflags")
_SYSCALL_ARG_REGS = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9")
_GPR_INDEX = {name: i for i, name in enumerate(unicorn_quirks.GPR_ORDER)}
_GPR_INDEX["rip"] = 16
_REGFILE = struct.Struct("<17Q")
_U64 = struct.Struct("<Q")
_pick_syscall_args = operator.itemgetter(*(_GPR_INDEX[r] for r in _SYSCALL_ARG_REGS))
_TABLE_REGS = {"idtr": x86.UC_X86_REG_IDTR, "gdtr": x86.UC_X86_REG_GDTR, "ldtr": x86.UC_X86_REG_LDTR,
               "tr": x86.UC_X86_REG_TR}
_HYPERCALL_ARG_REGS = ("rax", "rdi", "rsi", "rcx", "r8")
_RDI, _RSI, _RCX, _R8 = (_GPR_INDEX[r] for r in _HYPERCALL_ARG_REGS[1:])
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF
MSR_EFER, MSR_LSTAR, MSR_FMASK = 0xC000_0080, 0xC000_0082, 0xC000_0084
_RFLAGS_ID = x86.UC_X86_REG_RFLAGS
# uc_reg_read / uc_reg_write without the binding's argument conversions (its argtypes): called with
# arguments that are already ctypes objects (the handle, a reused byref), about 200 instead of 450
# ns a call, which the hot paths (SYSCALL's RFLAGS, register reads outside the register file) feel.
_raw_lib = ctypes.CDLL(uclib._name)
_reg_read_raw, _reg_write_raw = _raw_lib.uc_reg_read, _raw_lib.uc_reg_write
_vmem_translate_raw = _raw_lib.uc_vmem_translate


# Registers a debugger reads: Unicorn ids by mvemu name. x87 registers (fp0-fp7) are 80-bit, the
# xmm ones 128-bit; fcs/fip/fds/fdp/fop are the x87 last instruction and operand pointers.
STATE_REGS = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in (
    *REGS, *(f"fp{i}" for i in range(8)), "fpcw", "fpsw", "fptag", "fcs", "fip", "fds", "fdp", "fop",
    *(f"xmm{i}" for i in range(16)), "mxcsr")}
_REG_BUF = ctypes.c_uint8 * 16


def _read_reg(read_fn, handle, name: str):
    buf = _REG_BUF()
    status = read_fn(handle, STATE_REGS[name], ctypes.byref(buf))
    if status != ucc.UC_ERR_OK:
        raise UcError(status)
    raw = bytes(buf)
    if name.startswith("fp") and name[2:].isdigit():
        return raw[:10]
    return int.from_bytes(raw if name.startswith("xmm") else raw[:8], "little")


def _write_reg(write_fn, handle, name: str, value) -> None:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value).ljust(16, b"\0")
    else:
        raw = (value & ((1 << 128) - 1)).to_bytes(16, "little")
    buf = _REG_BUF.from_buffer_copy(raw)
    status = write_fn(handle, STATE_REGS[name], ctypes.byref(buf))
    if status != ucc.UC_ERR_OK:
        raise UcError(status)


def context_state(ctx, names) -> dict:
    """Registers of a saved context (Vcpu.save_context) as Vcpu.state() reads them."""
    return {n: _read_reg(uclib.uc_context_reg_read, ctx.context, n) for n in names}


def set_context_state(ctx, name: str, value) -> None:
    if name == "cr3":
        raise ValueError("CR3 cannot be written into a saved context (docs/architecture.md)")
    _write_reg(uclib.uc_context_reg_write, ctx.context, name, value)


class ExitKind(enum.Enum):
    SYSCALL = "syscall"
    EXCEPTION = "exception"
    HYPERCALL = "hypercall"
    HALT = "halt"
    INVALID_OPCODE = "invalid-opcode"
    MEMORY_ERROR = "memory-error"     # guest-physical access outside mapped RAM
    BREAKPOINT = "breakpoint"
    BUDGET = "budget"
    DEBUG = "debug"                   # a debugger's stop: detail is breakpoint, step, watch or interrupt
    PARKED = "parked"                 # the guest OS parked the run in a blocking system call (Vcpu.park)


# Exception vectors
DE, DB, BP, UD, GP, PF = 0, 1, 3, 6, 13, 14


@dataclass(slots=True)
class Exit:
    kind: ExitKind
    rip: int = 0
    vector: int = 0
    error_code: int = 0
    cr2: int = 0
    port: int = 0
    value: int = 0
    detail: str = ""


PARKED = Exit(ExitKind.PARKED)                # what run() returns for every park (nothing to read in it)


class ExitHandler(Protocol):
    """The machine's dispatch. Each method returns True to keep the vCPU running, False to stop
    it (run() then returns the exit)."""

    def on_syscall(self, vcpu: "Vcpu") -> bool: ...
    def on_exception(self, vcpu: "Vcpu", exit: Exit) -> bool: ...
    def on_hypercall(self, vcpu: "Vcpu", port: int, value: int) -> bool:
        """`out` of `value` to `port`."""


class _SyscallInsn(ctypes.Structure):
    """struct syscall_insn of hvm/native/syscall_insn.c."""
    _fields_ = [("regfile", ctypes.c_void_p), ("lstar", ctypes.c_void_p), ("fmask", ctypes.c_void_p),
                ("reg_read", ctypes.c_void_p), ("reg_write", ctypes.c_void_p), ("emu_stop", ctypes.c_void_p),
                ("rflags_id", ctypes.c_int32), ("rcx", ctypes.c_int32), ("r11", ctypes.c_int32),
                ("rip", ctypes.c_int32), ("count", ctypes.c_uint64), ("no_lstar", ctypes.c_uint64),
                ("no_lstar_rip", ctypes.c_uint64)]


class _ExceptionDelivery(ctypes.Structure):
    """struct exception_delivery of hvm/native/exception.c."""
    _fields_ = [("regfile", ctypes.c_void_p), ("old_exception", ctypes.c_void_p), ("error_code", ctypes.c_void_p),
                ("reg_read", ctypes.c_void_p), ("reg_write", ctypes.c_void_p), ("translate", ctypes.c_void_p),
                ("mem_read", ctypes.c_void_p), ("mem_write", ctypes.c_void_p), ("fallback", ctypes.c_void_p),
                ("fallback_user", ctypes.c_void_p), ("idtr_id", ctypes.c_int32), ("tr_id", ctypes.c_int32),
                ("rflags_id", ctypes.c_int32), ("cs_id", ctypes.c_int32), ("ss_id", ctypes.c_int32),
                ("rsp", ctypes.c_int32), ("rip", ctypes.c_int32), ("python_only", ctypes.c_uint32),
                ("count", ctypes.c_uint64), ("fallbacks", ctypes.c_uint64)]


def _load_native() -> ctypes.CDLL | None:
    """hvm/native's library (`make -C hvm/native`, part of `make images`), or None: the work it
    does natively is then done in Python."""
    path = Path(__file__).resolve().parent / "native" / "build" / "libmvemu_native.so"
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


NATIVE = _load_native()


class GuestDebug(Protocol):
    """A debugger's view of one vCPU's execution (the shape of KVM_SET_GUEST_DEBUG): what it armed
    with `Vcpu.set_guest_debug` reports here, from inside the run, and the answer says whether the
    vCPU stops (run() then returns a DEBUG exit)."""

    def on_code(self, vcpu: "Vcpu", addr: int) -> str | None:
        """An armed instruction (a breakpoint address, or every instruction while stepping) is about
        to execute: the stop reason ("breakpoint", "step"), or None to go on."""

    def on_watch(self, vcpu: "Vcpu", pa: int, size: int, write: bool) -> bool:
        """An access to a watched guest-physical range is being made by the instruction at RIP."""

    def on_mappings(self, vcpu: "Vcpu") -> None:
        """The guest's page tables may have changed (a run starts, a fault was served, the TLB was
        flushed): watched virtual ranges may live in other frames now."""


class Vcpu:
    """One x86-64 vCPU on Unicorn. `partitions` are the guest-physical ranges it can reach."""

    def __init__(self, index: int, memory: GuestMemory, partitions: list[Partition], handler: ExitHandler):
        self.index = index
        self.memory = memory
        self.handler = handler
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self._h = self.uc._uch
        for part in partitions:
            self.uc.mem_map_ptr(part.base, part.size, UC_PROT_ALL, memory.host_address + part.base)
        self._old_exception_off, self._error_code_off = unicorn_quirks.offsets()
        # Stops take effect at translation-block boundaries only (see unicorn_quirks): an
        # asynchronous stop must never replay a read-modify-write.
        self.block_exits = unicorn_quirks.exits_at_block_boundaries(self.uc)
        # A RIP written inside a run must not make a later stop leave a stale RIP (unicorn_quirks);
        # clearing the flag is only right when exits happen at block starts.
        self._pc_sync = unicorn_quirks.pc_sync_flag(self.uc) if self.block_exits else None
        # No `until` address: without this, every emu_start ends by translating the address passed
        # as `until` through the guest's page tables, and when it is unmapped that walk is a #PF
        # that sets CR2 (and the pending-exception state) behind the guest's back (unicorn_quirks).
        unicorn_quirks.no_until_address(self.uc)
        self._scratch_ctx = self.uc.context_save()
        self._pending: Exit | None = None
        self._hook_error: BaseException | None = None
        self.preempt_requested = False
        self._in_run = False                     # inside emu_start (set_reg: RIP through the API)
        # Parking (park/unpark): a run that the guest OS suspends inside a blocking system call's
        # hook instead of stopping Unicorn. The run then lives on a greenlet of its own, the
        # vCPU's kernel stack, as it were: the next run() resumes it where it stopped.
        self.parkable = False                    # the machine allows it (a ROS vCPU, no debugger)
        self.parked = False
        self._engine: greenlet | None = None     # the greenlet whose emu_start a parked run is in
        self._resumer: greenlet | None = None    # who resumed it: where it switches back to
        self._killed = False
        self._stop_lock = threading.Lock()
        # The live register file in Unicorn's CPU state, when it can be located and proven
        # (unicorn_quirks.register_file_address); otherwise the (slower) API paths below.
        addr = unicorn_quirks.register_file_address(self.uc)
        self._regfile = (ctypes.c_uint64 * 17).from_address(addr) if addr else None
        if self._regfile is not None:
            self.syscall_args = self._syscall_args_direct
            self.set_rax = self._set_rax_direct
            self.reg = self._reg_direct
        # Other live CPU fields, in place (unicorn_quirks.context_data_offset): the exception state
        # the unicorn#1883 work-around clears, and SYSCALL's target and flag mask.
        self._live_old_exception = self._live_error_code = self._live_lstar = self._live_fmask = None
        data_off = unicorn_quirks.context_data_offset(self.uc, addr) if addr else None
        if data_off is not None:
            self._live_old_exception = ctypes.c_int32.from_address(addr + self._old_exception_off - data_off)
            self._live_error_code = ctypes.c_int32.from_address(addr + self._error_code_off - data_off)
            msrs = unicorn_quirks.syscall_msr_addresses(self.uc, addr, self._scratch_ctx.size - data_off)
            if msrs is not None:
                self._live_lstar = ctypes.c_uint64.from_address(msrs[0])
                self._live_fmask = ctypes.c_uint64.from_address(msrs[1])
        # The CS selector in place too (unicorn_quirks.cs_selector_offset), proven here with a
        # write through the API (the engine is fresh: no segment is loaded yet).
        cs_off = unicorn_quirks.cs_selector_offset() if addr else None
        if cs_off is not None:
            live_cs = ctypes.c_uint32.from_address(addr + cs_off)
            self.uc.reg_write(x86.UC_X86_REG_CS, 0x1233)
            if live_cs.value == 0x1233:
                self._live_cs = live_cs
                self.cpl = self._cpl_direct
            self.uc.reg_write(x86.UC_X86_REG_CS, 0)
        # Preallocated buffers for the raw batch register read of syscall arguments.
        n = len(_SYSCALL_ARG_REGS)
        self._sc_ids = (ctypes.c_int * n)(*(REGS[r] for r in _SYSCALL_ARG_REGS))
        self._sc_vals = (ctypes.c_uint64 * n)()
        self._sc_ptrs = (ctypes.c_void_p * n)(*(ctypes.addressof(self._sc_vals) + 8 * i for i in range(n)))
        self._one = ctypes.c_uint64()
        self._one_ref = ctypes.byref(self._one)
        self._va, self._pa = ctypes.c_uint64(), ctypes.c_uint64()
        self._pa_ref = ctypes.byref(self._pa)
        self._mmr = UcRegMMR()                   # the binding's uc_x86_mmr record, reused
        self._mmr_ref = ctypes.byref(self._mmr)
        self._rax_id = REGS["rax"]
        self._callbacks = [_SYSCALL_CB(self._on_syscall), _OUT_CB(self._on_out), _INTR_CB(self._on_intr)]
        self._syscall_hook = self._hook(UC_HOOK_INSN, self._callbacks[0], x86.UC_X86_INS_SYSCALL)
        self._native_syscall: _SyscallInsn | None = None     # (use_native_syscall)
        self._hook(UC_HOOK_INSN, self._callbacks[1], x86.UC_X86_INS_OUT)
        self._intr_hook = self._hook(UC_HOOK_INTR, self._callbacks[2])
        self._native_exceptions: _ExceptionDelivery | None = None  # (use_native_exceptions)
        # Guest debugging (set_guest_debug): nothing is hooked until a debugger arms something.
        self._debug: GuestDebug | None = None
        self._debug_armed = (frozenset(), False, ())
        self._debug_hooks: tuple[list, list] = ([], [])       # (code hooks, memory hooks)
        self._debug_callbacks = [_CODE_CB(self._on_code), _MEM_CB(self._on_mem)]
        self._undo: list[tuple[int, bytes]] = []
        self.debug_stop_requested = False
        self._hook_exceptions = 0                # exceptions seen by the Python hook (see `exceptions`)
        self.runs = 0                            # run() calls
        self.starts = 0                          # of those, emu_starts (the others resumed a parked run)
        self.hook_calls = 0                      # system call, port and exception hooks run

    def _hook(self, htype: int, cb, insn: int | None = None, begin: int = 1, end: int = 0,
              user=None) -> ctypes.c_size_t:
        handle = ctypes.c_size_t()
        args = [self._h, ctypes.byref(handle), htype, cb, user, ctypes.c_uint64(begin), ctypes.c_uint64(end)]
        if insn is not None:
            args.append(ctypes.c_int(insn))
        status = uclib.uc_hook_add(*args)
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        return handle

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> Exit:
        """Run from the current RIP until an exit the handler did not absorb (a parked run goes
        on where it was parked, from the registers as they are now)."""
        self._pending = None
        self.runs += 1
        if self.preempt_requested or self.debug_stop_requested:
            with self._stop_lock:                 # (taken under the lock: see request_preempt)
                requested = self._requested_exit()
            if requested is not None:
                return requested
        if not self.parkable:
            return self._run_engine()
        self._resumer = getcurrent()
        if self.parked:
            return self._engine.switch(True)     # park() returns True: the hook goes on
        if self._engine is None or self._engine.dead:
            self._engine = greenlet(self._engine_loop)
        return self._engine.switch()

    def _engine_loop(self) -> None:
        """A parkable vCPU's greenlet: each run's emu_start, its exit handed to whoever ran it."""
        while not self._killed:
            try:
                exit = self._run_engine()
            except BaseException as e:           # (a hook's error, raised where run() was called)
                self._resumer.throw(e)
                continue
            if self._killed:
                return
            self._resumer.switch(exit)

    def park(self) -> bool | None:
        """From inside the system call hook (the guest OS's handler, which has put the calling
        thread to sleep and found nothing else to run; can_park() said yes): suspend the run right
        here instead of stopping Unicorn, and let run()'s caller go on as if the vCPU had stopped
        after the `syscall` with the registers as they are now (RIP at the `syscall`, as a blocked
        call re-runs). Returns when the vCPU runs again: True, the hook returns and execution goes
        on from RIP as the guest OS left it (a result in RAX, a signal frame, the call to re-run),
        without an `emu_start`; False (unpark), the hook must stop the run there. None, at once and
        with nothing changed: a stop was requested after all (the hook must stop the run).

        No lock: `parked` is set before the stop requests are looked at, and a request sets its
        flag before it looks at `parked` (request_preempt, request_debug_stop; the GIL orders the
        two threads' steps). So either the request finds the vCPU parked and leaves only its flag
        (run() takes it before resuming anything), or this sees the flag and does not park. On the
        way out the same holds in reverse: a request that found the vCPU still parked has set its
        flag by then, and the stop it left undone is made here."""
        self.parked = True
        if self.preempt_requested or self.debug_stop_requested:
            self.parked = False
            return None
        self._in_run = False                     # (RIP is written in place while parked)
        try:
            go_on = self._resumer.switch(PARKED)
        except GreenletExit:                     # the vCPU was dropped while parked
            self._killed, go_on = True, False
        finally:
            self.parked = False
            self._in_run = True
        if self.preempt_requested or self.debug_stop_requested:
            self.uc.emu_stop()
        # The hook's caller adds the `syscall`'s length: whatever RIP the guest OS set is where the
        # run goes on (or, stopping, where the next run starts).
        self._regfile[16] = (self._regfile[16] - 2) & _MASK64
        return go_on

    def can_park(self) -> bool:
        """Inside a run of a parkable vCPU (which always runs on its engine greenlet), with no
        stop on its way: a time slice's end or a debugger's interrupt requested during the run has
        already called emu_stop, and a run parked with that stop pending would end right after
        it resumes, with the request long consumed (an exit that looks like `hlt`). A request can
        still come before park(), which looks again (and then refuses)."""
        return (self.parkable and self._in_run and not self.parked and self._regfile is not None
                and not self.preempt_requested and not self.debug_stop_requested)

    def unpark(self) -> None:
        """End a parked run for good: Unicorn stops right there, so that what needs a stopped vCPU
        (a context switch, a debugger) can be done; the next run() starts afresh from RIP."""
        if not self.parked:
            return
        self._resumer = getcurrent()
        self._engine.switch(False)               # (returns the run's stop: nothing to handle)

    def _run_engine(self) -> Exit:
        self._pending = None
        self.starts += 1
        if self._debug is not None and self._debug_armed[2]:
            self._debug.on_mappings(self)
        rip = self.reg("rip")
        # An exception can also be raised where no hook sees it (e.g. while a stopping vCPU
        # translates the next block); leave none in flight from one run to the next.
        self._clear_exception_state()
        self._in_run = True
        try:
            self.uc.emu_start(rip, _END)
        except UcError as e:
            self._in_run = False
            if self._hook_error is not None:
                err, self._hook_error = self._hook_error, None
                raise err
            rip = self.reg("rip")
            if e.errno == ucc.UC_ERR_INSN_INVALID:
                return Exit(ExitKind.INVALID_OPCODE, rip=rip, vector=UD)
            return Exit(ExitKind.MEMORY_ERROR, rip=rip, detail=str(e))
        self._in_run = False
        if self._hook_error is not None:
            err, self._hook_error = self._hook_error, None
            raise err
        if self._undo:
            self._undo_watched_store()
        if self._pending is not None:
            return self._pending
        native = self._native_syscall
        if native is not None and native.no_lstar:
            native.no_lstar = 0
            return Exit(ExitKind.SYSCALL, rip=native.no_lstar_rip, detail="SYSCALL with no LSTAR set")
        with self._stop_lock:
            requested = self._requested_exit()
        return requested or Exit(ExitKind.HALT, rip=self.reg("rip"))

    def _requested_exit(self) -> Exit | None:
        """The exit asked for from outside the run (a time slice's end, a debugger's interrupt)."""
        if self.preempt_requested:
            self.preempt_requested = False
            return Exit(ExitKind.BUDGET, rip=self.reg("rip"))
        if self.debug_stop_requested:
            self.debug_stop_requested = False
            return Exit(ExitKind.DEBUG, rip=self.reg("rip"), detail="interrupt")
        return None

    def request_preempt(self) -> None:
        """From any host thread: end the current run() with a BUDGET exit (time-slice end).

        The flag and the stop are one step under `_stop_lock`, and run() consumes the flag under
        it too: otherwise run() could take the flag (a BUDGET exit at its start) between the two, and
        the late emu_stop would then end the *next* run with neither an exit nor the flag, which
        looked like a `hlt` (a ROS thread was killed for a "privileged instruction" right after a
        system call, about once in a few hundred threaded runs under load)."""
        with self._stop_lock:
            self.preempt_requested = True         # (first the flag, then `parked`: see park())
            if not self.parked:                   # (a parked run is not going on: run() sees the flag)
                self.uc.emu_stop()

    def request_debug_stop(self) -> None:
        """From any host thread: end the current (or next) run() with a DEBUG exit, detail
        "interrupt" (gdb's Ctrl-C)."""
        self.debug_stop_requested = True
        if not self.parked:                       # (as request_preempt)
            self.uc.emu_stop()

    def stop(self, exit: Exit) -> None:
        """Called from inside a hook: end run() with `exit`."""
        self._pending = exit
        self.uc.emu_stop()

    def _fail(self, e: BaseException) -> None:
        self._hook_error = e
        self.uc.emu_stop()

    # The three exit hooks count themselves in `hook_calls` (the watchdog's sign of progress). A time
    # slice's stop may land while one runs: the run then ends after it, with the hook's own exit if
    # it stopped the run (the request's flag stays for the next run()), else with BUDGET. Only
    # parking must not race a stop (park()).
    def _on_syscall(self, _uc, _user) -> None:
        self.hook_calls += 1
        try:
            if not self.handler.on_syscall(self):
                self.stop(Exit(ExitKind.SYSCALL, rip=self.reg("rip")))
        except BaseException as e:
            self._fail(e)

    def _on_out(self, _uc, port, size, value, _user) -> None:
        self.hook_calls += 1
        try:
            if not self.handler.on_hypercall(self, port, value):
                self.stop(Exit(ExitKind.HYPERCALL, rip=self.reg("rip"), port=port, value=value))
        except BaseException as e:
            self._fail(e)

    def _clear_exception_state(self) -> int:
        """The unicorn#1883 work-around, the one place it lives: Unicorn never clears the CPU's
        `old_exception`, so the next exception would be promoted to #DF and the one after would
        silently end emu_start. Clear it (through a context round trip) and return the pending
        exception's error code, which Unicorn does not pass to the hook."""
        live = self._live_old_exception
        if live is not None:                      # in place (unicorn_quirks.context_data_offset)
            error_code = self._live_error_code.value & 0xFFFF_FFFF
            live.value = -1
            return error_code
        ctx = self._scratch_ctx
        uclib.uc_context_save(self._h, ctx.context)
        base = ctx.context.value
        error_code = ctypes.c_int32.from_address(base + self._error_code_off).value & 0xFFFF_FFFF
        ctypes.c_int32.from_address(base + self._old_exception_off).value = -1
        uclib.uc_context_restore(self._h, ctx.context)
        return error_code

    def _on_intr(self, _uc, intno, _user) -> None:
        self.hook_calls += 1
        try:
            error_code = self._clear_exception_state()
            self._hook_exceptions += 1
            exit = Exit(ExitKind.BREAKPOINT if intno == BP else ExitKind.EXCEPTION,
                        rip=self.reg("rip"), vector=intno, error_code=error_code,
                        cr2=self.reg("cr2") if intno == PF else 0)
            if not self.handler.on_exception(self, exit):
                self.stop(exit)
            elif self._debug is not None and self._debug_armed[2]:
                self._debug.on_mappings(self)
        except BaseException as e:
            self._fail(e)

    def perform_syscall(self) -> bool:
        """What the CPU does for SYSCALL in 64-bit mode and Unicorn does not (call it from the
        syscall hook): RCX = the next instruction, R11 = RFLAGS, RFLAGS &= ~FMASK, RIP = LSTAR.
        False, with nothing changed, if LSTAR is 0."""
        if self._live_lstar is not None:
            lstar, fmask = self._live_lstar.value, self._live_fmask.value
        else:
            lstar, fmask = self.msr(MSR_LSTAR), self.msr(MSR_FMASK)
        if not lstar:
            return False
        _reg_read_raw(self._h, _RFLAGS_ID, self._one_ref)
        rflags = self._one.value
        rf = self._regfile
        if rf is not None:
            # In place, RIP included: the hook's caller adds the instruction's length afterwards,
            # and no API write of RIP means no forced exit from the translation loop.
            rf[1] = rf[16] + 2                                       # rcx
            rf[11] = rflags                                          # r11
            rf[16] = lstar - 2
        else:
            self.set_reg("rcx", self.reg("rip") + 2)
            self.set_reg("r11", rflags)
            self.set_reg("rip", lstar - 2)
        self._one.value = (rflags & ~fmask) | 2
        _reg_write_raw(self._h, _RFLAGS_ID, self._one_ref)
        return True

    def use_native_syscall(self) -> bool:
        """Perform SYSCALL natively (hvm/native/syscall_insn.c) instead of in the Python hook,
        for a vCPU whose SYSCALL stays in ring 0 (an HRT vCPU: no exit to the VMM on hardware
        either). Needs the native library and the live register file and MSRs; False (nothing
        changed) without them."""
        if NATIVE is None or self._regfile is None or self._live_lstar is None:
            return False
        s = _SyscallInsn(regfile=ctypes.addressof(self._regfile), lstar=ctypes.addressof(self._live_lstar),
                         fmask=ctypes.addressof(self._live_fmask),
                         reg_read=ctypes.cast(_reg_read_raw, ctypes.c_void_p).value,
                         reg_write=ctypes.cast(_reg_write_raw, ctypes.c_void_p).value,
                         emu_stop=ctypes.cast(_raw_lib.uc_emu_stop, ctypes.c_void_p).value,
                         rflags_id=_RFLAGS_ID, rcx=_GPR_INDEX["rcx"], r11=_GPR_INDEX["r11"], rip=16)
        uclib.uc_hook_del(self._h, self._syscall_hook)
        self._syscall_hook = self._hook(UC_HOOK_INSN, ctypes.cast(NATIVE.mvemu_syscall_insn, ctypes.c_void_p),
                                        x86.UC_X86_INS_SYSCALL, user=ctypes.byref(s))
        self._native_syscall = s
        return True

    @property
    def native_syscalls(self) -> int:
        """SYSCALLs performed natively so far (use_native_syscall)."""
        return self._native_syscall.count if self._native_syscall is not None else 0

    def use_native_exceptions(self) -> bool:
        """Deliver exceptions through the guest's IDT natively (hvm/native/exception.c), for a vCPU
        whose handler's on_exception is exactly hvm/hrt.py's deliver_exception (an HRT vCPU: on
        hardware its exceptions go to the AeroKernel with no exit to the VMM). What the native code
        cannot do simply (no gate, an unreachable stack: the triple fault) still reaches on_exception
        through the Python hook, as does every exception while a debugger watches memory. Needs the native library and the live register file and
        exception state; False (nothing changed) without them."""
        if (NATIVE is None or self._regfile is None or self._live_old_exception is None
                or self._native_exceptions is not None):
            return False
        s = _ExceptionDelivery(
            regfile=ctypes.addressof(self._regfile), old_exception=ctypes.addressof(self._live_old_exception),
            error_code=ctypes.addressof(self._live_error_code),
            reg_read=ctypes.cast(_reg_read_raw, ctypes.c_void_p).value,
            reg_write=ctypes.cast(_reg_write_raw, ctypes.c_void_p).value,
            translate=ctypes.cast(_vmem_translate_raw, ctypes.c_void_p).value,
            mem_read=ctypes.cast(_raw_lib.uc_mem_read, ctypes.c_void_p).value,
            mem_write=ctypes.cast(_raw_lib.uc_mem_write, ctypes.c_void_p).value,
            fallback=ctypes.cast(self._callbacks[2], ctypes.c_void_p).value, fallback_user=None,
            idtr_id=x86.UC_X86_REG_IDTR, tr_id=x86.UC_X86_REG_TR, rflags_id=_RFLAGS_ID,
            cs_id=x86.UC_X86_REG_CS, ss_id=x86.UC_X86_REG_SS, rsp=_GPR_INDEX["rsp"], rip=16,
            python_only=1 if self._debug_armed[2] else 0)
        uclib.uc_hook_del(self._h, self._intr_hook)
        self._intr_hook = self._hook(UC_HOOK_INTR, ctypes.cast(NATIVE.mvemu_exception, ctypes.c_void_p),
                                     user=ctypes.byref(s))
        self._native_exceptions = s
        return True

    @property
    def native_exceptions(self) -> int:
        """Exceptions delivered natively so far (use_native_exceptions)."""
        return self._native_exceptions.count if self._native_exceptions is not None else 0

    @property
    def exceptions(self) -> int:
        """Exceptions raised in runs so far, whether the Python hook or the native one took them
        (a debugger's test that a step re-executed nothing)."""
        native = self._native_exceptions
        return self._hook_exceptions + (native.count if native is not None else 0)

    # -- guest debugging --------------------------------------------------------------------------
    def set_guest_debug(self, debug: GuestDebug | None, breakpoints=frozenset(), step: bool = False,
                        watch: tuple = ()) -> None:
        """Arm (or with nothing, disarm) guest debugging: stop before executing any virtual address
        in `breakpoints`, consult `debug.on_code` before every instruction while `step`, and
        `debug.on_watch` on accesses that may overlap the guest-physical ranges in `watch`, a tuple of
        (first, last, "r"|"w"|"rw"). Nothing costs anything while disarmed.

        Unicorn puts hook calls into code when it translates it, so a change of breakpoints or
        stepping drops the translated code (DESIGN.md section 9), and any memory hook sends every
        load and store of code translated meanwhile through a slow path, so the first watchpoint
        and the removal of the last one drop it too. Watched ranges may move without that."""
        breakpoints, step, watch = frozenset(breakpoints), bool(step), tuple(watch)
        if debug is self._debug and (breakpoints, step, watch) == self._debug_armed:
            return
        self.unpark()
        old_bps, old_step, old_watch = self._debug_armed
        code_cb, mem_cb = self._debug_callbacks
        code_hooks, mem_hooks = self._debug_hooks
        if (breakpoints, step) != (old_bps, old_step):
            for handle in code_hooks:
                uclib.uc_hook_del(self._h, handle)
            code_hooks.clear()
            if step:
                code_hooks.append(self._hook(ucc.UC_HOOK_CODE, code_cb))
            else:
                for addr in sorted(breakpoints):
                    code_hooks.append(self._hook(ucc.UC_HOOK_CODE, code_cb, begin=addr, end=addr))
        if watch != old_watch:
            for handle in mem_hooks:
                uclib.uc_hook_del(self._h, handle)
            mem_hooks.clear()
            for first, last, access in watch:
                # Unicorn matches an access by its first byte only: start early enough to see any
                # access that overlaps the range (at most 16 bytes long); on_watch checks the overlap.
                first = max(0, first - 15)
                if "w" in access:
                    mem_hooks.append(self._hook(ucc.UC_HOOK_MEM_WRITE, mem_cb, begin=first, end=last))
                if "r" in access:
                    mem_hooks.append(self._hook(ucc.UC_HOOK_MEM_READ, mem_cb, begin=first, end=last))
        armed = breakpoints or step or watch
        self._debug = debug if armed else None
        self._debug_armed = (breakpoints, step, watch)
        if self._native_exceptions is not None:   # (watchpoints follow the mappings after each fault)
            self._native_exceptions.python_only = 1 if watch else 0
        if (old_bps, old_step, bool(old_watch)) != (breakpoints, step, bool(watch)):
            # Debug stops must be exact (right at the hooked instruction or access): while armed,
            # translated code checks for a stop after every memory access again.
            if self.block_exits:
                unicorn_quirks.exits_at_block_boundaries(self.uc, not armed)
            self.flush_code()

    def _on_code(self, _uc, addr, _size, _user) -> None:
        try:
            reason = self._debug.on_code(self, addr) if self._debug is not None else None
            if reason is not None:
                # emu_stop in a code hook stops before the instruction executes (Unicorn checks for
                # a stop request right after code hooks), with RIP at it.
                self.stop(Exit(ExitKind.DEBUG, rip=addr, detail=reason))
        except BaseException as e:
            self._fail(e)

    def _on_mem(self, _uc, access, pa, size, _value, _user) -> None:
        """A watched access, called before it is made with RIP at the accessing instruction.
        Stopping here ends emulation right after this access (Unicorn checks for a stop request
        after every load and store) with RIP restored to the instruction: a store is then done
        but the instruction is not (its register updates are not). run() puts the old bytes back
        (`_undo_watched_store`), so the vCPU is exactly at the instruction, not yet executed."""
        try:
            write = access == ucc.UC_MEM_WRITE
            old = self.memory.read(pa, size) if write else b""
            if self._debug is not None and self._debug.on_watch(self, pa, size, write):
                if write:
                    self._undo.append((pa, old))
                if self._pending is None or self._pending.detail != "watch":
                    self.stop(Exit(ExitKind.DEBUG, rip=self.reg("rip"), detail="watch",
                                   value=pa, port=1 if write else 0))
        except BaseException as e:
            self._fail(e)

    def _undo_watched_store(self) -> None:
        exit, undo = self._pending, self._undo
        self._undo = []
        if exit is None or exit.detail != "watch":
            return
        if exit.rip == self.reg("rip"):
            for pa, old in reversed(undo):
                self.memory.write(pa, old)
        else:
            # The access was made by a helper that does not check for a stop request (x87/SSE
            # state saves, for example): the vCPU ran on to the end of its block. The store
            # stays; the stop is reported where the vCPU is.
            exit.detail = "watch-late"
            exit.rip = self.reg("rip")

    # -- registers --------------------------------------------------------------------------------
    def reg(self, name: str) -> int:
        _reg_read_raw(self._h, REGS[name], self._one_ref)
        return self._one.value

    def _reg_direct(self, name: str) -> int:
        i = _GPR_INDEX.get(name)
        if i is None:
            _reg_read_raw(self._h, REGS[name], self._one_ref)
            return self._one.value
        return self._regfile[i]

    def set_reg(self, name: str, value: int) -> None:
        rf = self._regfile
        if rf is not None:
            i = _GPR_INDEX.get(name)
            # GPRs in place always; RIP only while stopped: inside a run only the API write makes
            # Unicorn leave the translation block it is in (outside, emu_start begins at RIP).
            if i is not None and (i < 16 or not self._in_run):
                rf[i] = value & _MASK64
                return
        if self.parked and name != "rflags":
            self.unpark()                         # (segments, control registers: a stopped vCPU)
        self._one.value = value & 0xFFFF_FFFF_FFFF_FFFF
        _reg_write_raw(self._h, REGS[name], self._one_ref)
        if name == "rip" and self._in_run and self._pc_sync is not None:
            self._pc_sync.value = False

    def regs(self, names=GPRS) -> dict[str, int]:
        return dict(zip(names, self.uc.reg_read_batch([REGS[n] for n in names])))

    def set_regs(self, values: dict[str, int]) -> None:
        for name, value in values.items():
            self.set_reg(name, value)

    def syscall_args(self) -> tuple[int, ...]:
        """(nr, a0..a5) of the syscall being executed: one raw batch read."""
        uclib.uc_reg_read_batch(self._h, self._sc_ids, self._sc_ptrs, len(self._sc_ids))
        return tuple(self._sc_vals)

    def hypercall_args(self) -> tuple[int, ...]:
        """(number, a0..a3) of a hypercall (`out` on the HVM port): EAX, RDI, RSI, RCX, R8."""
        rf = self._regfile
        if rf is not None:
            nr, a0, a1, a2, a3 = rf[0], rf[_RDI], rf[_RSI], rf[_RCX], rf[_R8]
        else:
            nr, a0, a1, a2, a3 = (self.reg(r) for r in _HYPERCALL_ARG_REGS)
        return nr & 0xFFFF_FFFF, a0, a1, a2, a3

    def _syscall_args_direct(self) -> tuple[int, ...]:
        return _pick_syscall_args(_REGFILE.unpack_from(self._regfile))

    def _set_rax_direct(self, value: int) -> None:
        self._regfile[0] = value & _MASK64

    def complete_syscall(self, result: int) -> None:
        """A stopped (or parked) vCPU whose RIP is at a `syscall` that blocked: return `result`
        from it instead of re-running it (RIP past the instruction, RAX = result)."""
        rf = self._regfile
        if rf is not None and not self._in_run:
            rf[16] = (rf[16] + 2) & _MASK64
            rf[0] = result & _MASK64
            return
        self.set_reg("rip", self.reg("rip") + 2)
        self.set_rax(result)

    def set_rax(self, value: int) -> None:
        self._one.value = value & 0xFFFF_FFFF_FFFF_FFFF
        _reg_write_raw(self._h, self._rax_id, self._one_ref)

    def msr(self, index: int) -> int:
        return self.uc.msr_read(index)

    def set_msr(self, index: int, value: int) -> None:
        self.uc.msr_write(index, value)

    def set_gdtr(self, base: int, limit: int) -> None:
        self.uc.reg_write(x86.UC_X86_REG_GDTR, (0, base, limit, 0))

    def cpl(self) -> int:
        return self.reg("cs") & 3

    def translate(self, va: int, write: bool = False) -> int | None:
        """Guest-physical address of `va` for a data access at this vCPU's current privilege, as
        its MMU does it (uc_vmem_translate: the TLB, else a walk that does not raise #PF and sets
        accessed and dirty bits as the access would); None if the access would fault. A failed
        walk leaves CR2 and the pending exception set, as the fault would: for a vCPU that is
        about to stop anyway (an exception it cannot deliver)."""
        self._va.value = va
        if _vmem_translate_raw(self._h, self._va, 2 if write else 1, self._pa_ref):
            return None
        return self._pa.value

    def table_register(self, which: str) -> tuple[int, int]:
        """(base, limit) of "idtr", "gdtr", "ldtr" or "tr": one raw read into a preallocated record
        (the binding's reg_read builds one per call, several times slower)."""
        _reg_read_raw(self._h, _TABLE_REGS[which], self._mmr_ref)
        return self._mmr.base, self._mmr.limit

    def _cpl_direct(self) -> int:
        return self._live_cs.value & 3

    # -- the whole register state, for debuggers --------------------------------------------------
    def state(self, names) -> dict:
        """Any registers of STATE_REGS (x87 ones as 10 raw bytes, the rest as integers)."""
        return {n: _read_reg(uclib.uc_reg_read, self._h, n) for n in names}

    def set_state(self, name: str, value) -> None:
        _write_reg(uclib.uc_reg_write, self._h, name, value)

    # -- whole-state save/restore (thread switches) ------------------------------------------------
    def save_context(self, into=None):
        """The whole CPU state; `into` reuses a context from an earlier save."""
        self.unpark()
        if into is None:
            return self.uc.context_save()
        self.uc.context_update(into)
        return into

    def restore_context(self, ctx) -> None:
        self.unpark()
        self.uc.context_restore(ctx)

    # -- caches -----------------------------------------------------------------------------------
    def flush_tlb(self) -> None:
        """Drop every cached virtual-to-physical translation (what a CR3 write does on hardware)."""
        uclib.uc_ctl(self._h, (1 << 30) | ucc.UC_CTL_TLB_FLUSH)
        if self._debug is not None and self._debug_armed[2]:
            self._debug.on_mappings(self)

    def flush_code(self) -> None:
        """Drop all translated code (after the frames that held code may have been reused)."""
        self.uc.ctl_flush_tb()
