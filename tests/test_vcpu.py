"""Unit tests of hvm.vcpu on a tiny hand-built machine: real page tables in guest-physical memory, a
GDT with ring-0 and ring-3 segments, hand-assembled code. Checks the typed exits: syscall dispatch,
#PF with the right error code and CR2 (ring 0 and ring 3, CR0.WP), repeated faults (unicorn#1883),
hlt, ud2."""
from __future__ import annotations

import struct

import pytest
from unicorn import x86_const as x86

from hvm.memory import GuestMemory
from hvm.vcpu import PF, UD, Exit, ExitKind, Vcpu

MEM = 2 << 20
PML4, PDPT, PD, PT = 0x10000, 0x11000, 0x12000, 0x13000
GDT = 0x2000
KCODE = 0x1000            # ring-0 code
KDATA = 0x3000            # ring-0 scratch data (results)
KSTACK_TOP = 0x5000       # one page of ring-0 stack below
TRAMP = 0x6000            # ring-0: iretq into ring 3
UCODE = 0x20000           # ring-3 code
U_RO = 0x21000            # user, present, read-only, NX
U_NX = 0x22000            # user, present, writable, NX
NOT_PRESENT = 0x23000
SUPERVISOR = 0x24000      # present, writable, supervisor only
USTACK = 0x25000          # user stack page
K_RO = 0x26000            # supervisor, read-only
LAZY = 0x30000            # three pages, initially not present, mapped by the fault handler

P, W, U = 1, 2, 4
NX = 1 << 63
KCS, KDS, UDS, UCS = 0x08, 0x10, 0x1B, 0x23


# -- tiny assembler ---------------------------------------------------------------------------------
def mov_rax(imm):
    return b"\x48\xb8" + struct.pack("<Q", imm)


def mov_rbx(imm):
    return b"\x48\xbb" + struct.pack("<Q", imm)


def mov_eax(imm):
    return b"\xb8" + struct.pack("<I", imm)


def mov_edi(imm):
    return b"\xbf" + struct.pack("<I", imm)


STORE_RAX_AT_RAX = b"\x48\x89\x00"      # mov [rax], rax
LOAD_RBX_FROM_RAX = b"\x48\x8b\x18"     # mov rbx, [rax]
STORE_RAX_AT_RBX = b"\x48\x89\x03"      # mov [rbx], rax
JMP_RAX = b"\xff\xe0"
SYSCALL = b"\x0f\x05"
HLT = b"\xf4"
UD2 = b"\x0f\x0b"
IRETQ = b"\x48\xcf"
SPIN = b"\xeb\xfe"                       # jmp $


class Recorder:
    """The exit handler: records every exit; policy per test through the attributes."""

    def __init__(self):
        self.syscalls = []
        self.exceptions: list[Exit] = []
        self.keep_running_syscall = None     # None: stop; else the value to return in rax
        self.on_fault = None                 # callable(vcpu, exit) -> bool (resume?)

    def on_syscall(self, vcpu):
        self.syscalls.append(vcpu.syscall_args())
        if self.keep_running_syscall is None:
            return False
        vcpu.set_rax(self.keep_running_syscall)
        return True

    def on_exception(self, vcpu, exit):
        self.exceptions.append(exit)
        return bool(self.on_fault and self.on_fault(vcpu, exit))

    def on_hypercall(self, vcpu, port, value):
        return False


class Machine:
    def __init__(self, wp=True):
        self.mem = GuestMemory(MEM)
        part = self.mem.add_partition("all", 0, MEM)
        self.handler = Recorder()
        self.vcpu = Vcpu(0, self.mem, [part], self.handler)
        m = self.mem
        m.write_u64(PML4, PDPT | P | W | U)
        m.write_u64(PDPT, PD | P | W | U)
        m.write_u64(PD, PT | P | W | U)
        for va in range(0, 0x20000, 0x1000):          # ring-0 low memory, identity mapped
            self.map(va, P | W)
        self.map(KCODE, P)
        self.map(TRAMP, P)
        self.map(K_RO, P | NX)
        self.map(UCODE, P | U)
        self.map(U_RO, P | U | NX)
        self.map(U_NX, P | W | U | NX)
        self.map(SUPERVISOR, P | W | NX)
        self.map(USTACK, P | W | U | NX)
        m.write_u64(PT + 8 * (NOT_PRESENT >> 12), 0)
        for i in range(3):
            m.write_u64(PT + 8 * ((LAZY >> 12) + i), 0)
        m.write(GDT, struct.pack("<5Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF,
                                 0x00CFF2000000FFFF, 0x00AFFA000000FFFF))
        m.write(TRAMP, IRETQ)
        v = self.vcpu
        v.set_gdtr(GDT, 5 * 8 - 1)
        v.set_reg("cr3", PML4)
        v.set_reg("cr4", 0x20 | 0x200 | 0x400)           # PAE | OSFXSR | OSXMMEXCPT
        v.set_msr(0xC000_0080, 0xD01)                     # EFER: SCE | LME | LMA | NXE
        v.set_reg("cr0", 0x8000_0033 | (0x10000 if wp else 0))   # PG | (WP) | NE | ET | MP | PE
        v.set_reg("cs", KCS)
        v.set_reg("ss", KDS)
        v.set_reg("rsp", KSTACK_TOP - 0x100)

    def map(self, va, flags):
        self.mem.write_u64(PT + 8 * (va >> 12), (va & ~0xFFF & ~NX) | flags)

    def ring0(self, code: bytes):
        self.mem.write(KCODE, code)
        self.vcpu.set_reg("rip", KCODE)

    def ring3(self, code: bytes):
        """Enter `code` at UCODE in ring 3 through the iretq trampoline."""
        self.mem.write(UCODE, code)
        frame = struct.pack("<5Q", UCODE, UCS, 0x202, USTACK + 0xF00, UDS)
        self.mem.write(KSTACK_TOP - len(frame), frame)
        self.vcpu.set_regs({"rsp": KSTACK_TOP - len(frame), "rip": TRAMP})

    def run(self) -> Exit:
        return self.vcpu.run()


@pytest.fixture
def m():
    return Machine()


# -- syscall ---------------------------------------------------------------------------------------
def test_syscall_exit_carries_arguments(m):
    m.ring3(mov_eax(60) + mov_edi(7) + b"\x48\xc7\xc6\x2a\x00\x00\x00"    # mov rsi, 42
            + b"\x49\xc7\xc2\x05\x00\x00\x00" + SYSCALL + SPIN)            # mov r10, 5
    exit = m.run()
    assert exit.kind == ExitKind.SYSCALL
    assert len(m.handler.syscalls) == 1
    nr, a0, a1, _a2, a3, *_ = m.handler.syscalls[0]
    assert (nr, a0, a1, a3) == (60, 7, 42, 5)
    assert m.vcpu.cpl() == 3


def test_syscall_handled_in_place_returns_rax(m):
    m.handler.keep_running_syscall = 0x1234
    m.ring0(mov_eax(39) + SYSCALL + mov_rbx(KDATA) + STORE_RAX_AT_RBX + HLT)
    exit = m.run()
    assert exit.kind == ExitKind.HALT
    assert [s[0] for s in m.handler.syscalls] == [39]
    assert m.mem.read_u64(KDATA) == 0x1234


def test_many_syscalls_in_a_loop(m):
    """A syscall loop served inside the hook: every call is seen, none is lost."""
    m.handler.keep_running_syscall = 0
    # mov ecx, 100; loop: mov eax, 39; push rcx; syscall; pop rcx; dec ecx; jnz loop; hlt
    body = mov_eax(39) + b"\x51" + SYSCALL + b"\x59" + b"\xff\xc9"
    code = b"\xb9" + struct.pack("<I", 100) + body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF]) + HLT
    m.ring0(code)
    assert m.run().kind == ExitKind.HALT
    assert len(m.handler.syscalls) == 100


# -- SYSCALL in ring 0 (HRT vCPUs): performed natively or in Python, the same -------------------------
LSTAR_ENTRY = 0x7000       # ring-0 "entry": store rcx, r11 and the flags it runs with, then hlt


def _ring0_syscall(native: bool, lstar: int = LSTAR_ENTRY):
    """A ring-0 SYSCALL with LSTAR set and FMASK clearing DF and IF: what RCX, R11, RFLAGS and RIP
    become, done natively (hvm/native) or by Vcpu.perform_syscall from the Python hook."""
    m = Machine()
    m.map(LSTAR_ENTRY, P)
    v = m.vcpu
    if native:
        assert v.use_native_syscall(), "hvm/native is not built (make -C hvm/native): SYSCALL would be slow"
    else:
        m.handler.on_syscall = lambda vcpu: vcpu.perform_syscall()
    v.set_msr(0xC000_0082, lstar)
    v.set_msr(0xC000_0084, 0x400 | 0x200)              # FMASK: DF | IF
    # entry: mov [KDATA], rcx; mov [KDATA+8], r11; pushfq; pop rax; mov [KDATA+16], rax; hlt
    entry = (b"\x48\x89\x0c\x25" + struct.pack("<I", KDATA) + b"\x4c\x89\x1c\x25" + struct.pack("<I", KDATA + 8)
             + b"\x9c\x58" + b"\x48\x89\x04\x25" + struct.pack("<I", KDATA + 16) + HLT)
    m.mem.write(LSTAR_ENTRY, entry)
    # std; sti; cmp eax, eax (ZF set); syscall
    m.ring0(b"\xfd\xfb\x39\xc0" + SYSCALL + SPIN)
    exit = m.run()
    return exit, struct.unpack("<3Q", m.mem.read(KDATA, 24)), v


@pytest.mark.parametrize("native", [True, False])
def test_ring0_syscall_semantics(native):
    exit, (rcx, r11, flags), v = _ring0_syscall(native)
    assert exit.kind == ExitKind.HALT, exit
    assert rcx == KCODE + 6, f"RCX {rcx:#x}: the instruction after the syscall"
    assert r11 & 0x400 and r11 & 0x200 and r11 & 0x40, f"R11 {r11:#x}: RFLAGS at the syscall (DF, IF, ZF)"
    assert not flags & 0x600 and flags & 0x40, f"RFLAGS {flags:#x} in the entry: DF and IF masked, ZF kept"
    assert v.native_syscalls == (1 if native else 0)


def test_ring0_syscall_without_lstar_stops_natively():
    exit, _, _ = _ring0_syscall(True, lstar=0)
    assert exit.kind == ExitKind.SYSCALL and exit.rip == KCODE + 4 and "LSTAR" in exit.detail


# -- exception delivery in ring 0 (HRT vCPUs): natively or by hrt.deliver_exception, the same ------
IDT = 0x8000               # 256 gates
TSS = 0x9000               # IST1 at 0x24
IST_TOP = 0xB000           # the IST1 stack: the page below
PF_RECORD = 0xC000         # handler: record the frame, CR2 and its flags, hlt
PF_RESOLVE = 0xC800        # handler: map the page at CR2, count, iretq
COUNTER = KDATA + 0x100


def _gate(handler: int, ist: int = 0, kind: int = 0xE) -> bytes:
    lo = ((handler & 0xFFFF) | (KCS << 16) | (ist << 32) | ((0x80 | kind) << 40)
          | (((handler >> 16) & 0xFFFF) << 48))
    return struct.pack("<QQ", lo, handler >> 32)


def _store_rax(addr: int) -> bytes:
    return b"\x48\x89\x04\x25" + struct.pack("<I", addr)      # mov [addr], rax


def _exception_machine(native: bool, pf_handler: int, ist: int = 1):
    """A ring-0 machine with an IDT whose #PF gate goes to `pf_handler` (on IST1 or the current
    stack); the exception delivered natively (hvm/native) or by hvm.hrt.deliver_exception from the
    Python hook."""
    from types import SimpleNamespace
    from hvm.hrt import deliver_exception
    m = Machine()
    m.map(PF_RECORD, P)
    mem, v = m.mem, m.vcpu
    mem.write(IDT + 16 * PF, _gate(pf_handler, ist))
    mem.write_u64(TSS + 0x24, IST_TOP)
    # record: the frame's six words, CR2, RSP and RFLAGS in the handler, then hlt
    rec = b"".join(b"\x48\x8b\x44\x24" + bytes([8 * i]) + _store_rax(KDATA + 8 * i) for i in range(6))
    rec += b"\x0f\x20\xd0" + _store_rax(KDATA + 48) + b"\x48\x89\x24\x25" + struct.pack("<I", KDATA + 56)
    rec += b"\x9c\x58" + _store_rax(KDATA + 64) + HLT
    mem.write(PF_RECORD, rec)
    # resolve: push rax, rbx; map the page at CR2 (P|W) in PT; count; pop; drop the error code; iretq
    res = (b"\x50\x53\x0f\x20\xd0\x48\x89\xc3\x48\xc1\xe8\x0c\x48\xc1\xe0\x03\x48\x05" + struct.pack("<I", PT)
           + b"\x48\x81\xe3\x00\xf0\xff\xff\x48\x83\xcb\x03\x48\x89\x18"
           + b"\x48\xff\x04\x25" + struct.pack("<I", COUNTER) + b"\x5b\x58\x48\x83\xc4\x08" + IRETQ)
    mem.write(PF_RESOLVE, res)
    v.uc.reg_write(x86.UC_X86_REG_IDTR, (0, IDT, 256 * 16 - 1, 0))
    v.uc.reg_write(x86.UC_X86_REG_TR, (0x18, TSS, 0x67, 0x8B))
    if native:
        assert v.use_native_exceptions(), "hvm/native is not built (make -C hvm/native): faults would be slow"
    hrt = SimpleNamespace(mem=mem, trace=False, log=print)
    m.handler.on_fault = lambda vcpu, exit: deliver_exception(hrt, 0, vcpu, exit)
    return m


@pytest.mark.parametrize("ist", [1, 0])
@pytest.mark.parametrize("native", [True, False])
def test_ring0_page_fault_delivery(native, ist):
    """A ring-0 write to a page that is not present: the CPU's frame (error code, RIP, CS, RFLAGS,
    RSP, SS) on the IST1 stack (or the interrupted one), CR2, and IF cleared by the interrupt gate."""
    m = _exception_machine(native, PF_RECORD, ist)
    # sti; mov rax, NOT_PRESENT; mov [rax], rax
    m.ring0(b"\xfb" + mov_rax(NOT_PRESENT) + STORE_RAX_AT_RAX + SPIN)
    exit = m.run()
    assert exit.kind == ExitKind.HALT, exit
    err, rip, cs, flags, rsp, ss, cr2, handler_rsp, handler_flags = struct.unpack("<9Q", m.mem.read(KDATA, 72))
    fault_rip = KCODE + 1 + 10
    assert (err, rip, cs, ss, cr2) == (0x2, fault_rip, KCS, KDS, NOT_PRESENT)
    assert rsp == KSTACK_TOP - 0x100 and flags & 0x200, "the interrupted RSP and RFLAGS (IF on)"
    top = IST_TOP if ist else KSTACK_TOP - 0x100
    assert handler_rsp == top - 48 and not handler_flags & 0x200
    assert len(m.handler.exceptions) == (0 if native else 1)
    assert m.vcpu.native_exceptions == (1 if native else 0) and m.vcpu.exceptions == 1


@pytest.mark.parametrize("native", [True, False])
def test_ring0_page_faults_in_a_row_resume(native):
    """Three faults, each resolved by the handler and the access retried: none is taken for a
    double fault (Unicorn's pending-exception state is cleared after each, unicorn#1883)."""
    m = _exception_machine(native, PF_RESOLVE)
    code = b"".join(mov_rax(LAZY + 0x1000 * i) + STORE_RAX_AT_RAX for i in range(3)) + HLT
    m.ring0(code)
    exit = m.run()
    assert exit.kind == ExitKind.HALT, exit
    assert [m.mem.read_u64(LAZY + 0x1000 * i) for i in range(3)] == [LAZY + 0x1000 * i for i in range(3)]
    assert m.mem.read_u64(COUNTER) == 3
    assert m.vcpu.native_exceptions == (3 if native else 0) and m.vcpu.exceptions == 3


def test_native_delivery_hands_what_it_cannot_do_to_the_python_hook():
    """No present gate (#DE here): the native path leaves the exception untouched for the Python
    hook, whose handler sees it exactly as raised."""
    m = _exception_machine(True, PF_RECORD)
    m.handler.on_fault = None                        # the handler stops the vCPU
    m.ring0(b"\x31\xc9\xf7\xf1")                    # xor ecx, ecx; div ecx
    exit = m.run()
    assert exit.kind == ExitKind.EXCEPTION and exit.vector == 0 and exit.rip == KCODE + 2
    assert [e.vector for e in m.handler.exceptions] == [0]
    assert m.vcpu.native_exceptions == 0 and m.vcpu._native_exceptions.fallbacks == 1


# -- parked runs (Vcpu.park / unpark) ----------------------------------------------------------------
class Parker(Recorder):
    """Parks the run at every system call, as the ROS kernel does for a thread that blocks."""

    def __init__(self):
        super().__init__()
        self.resumed = []

    def on_syscall(self, vcpu):
        self.syscalls.append(vcpu.syscall_args())
        assert vcpu.can_park()
        go_on = vcpu.park()
        self.resumed.append(go_on)
        return go_on


def _parking_machine():
    m = Machine()
    m.handler = m.vcpu.handler = Parker()
    m.vcpu.parkable = True
    # mov eax, 39; syscall; mov [KDATA], rax; hlt
    m.ring0(mov_eax(39) + SYSCALL + b"\x48\x89\x04\x25" + struct.pack("<I", KDATA) + HLT)
    return m


def test_a_parked_run_goes_on_from_inside_its_hook():
    """run() returns PARKED while the syscall hook is suspended; the next run() resumes it with
    the registers as they were set meanwhile (a result in RAX), without another emu_start."""
    m = _parking_machine()
    v = m.vcpu
    exit = v.run()
    assert exit.kind == ExitKind.PARKED and v.parked
    assert v.reg("rip") == KCODE + 5, "parked at the syscall, as a stopped blocked call is"
    v.set_rax(0x77)                                   # the woken call's result
    v.set_reg("rip", v.reg("rip") + 2)                # (what the ROS does when it completes a call)
    exit = v.run()
    assert exit.kind == ExitKind.HALT and not v.parked
    assert m.mem.read_u64(KDATA) == 0x77
    assert (v.starts, m.handler.resumed) == (1, [True])


def test_unparking_stops_the_run_where_the_registers_say():
    """Anything that needs a stopped vCPU (here a context save) unparks it first: the run ends,
    and the next run() starts afresh from RIP, here the syscall again (a blocked call re-runs)."""
    m = _parking_machine()
    v = m.vcpu
    assert v.run().kind == ExitKind.PARKED
    v.save_context()
    assert not v.parked and m.handler.resumed == [False]
    assert v.run().kind == ExitKind.PARKED            # the syscall ran again: parked again
    assert v.starts == 2 and len(m.handler.syscalls) == 2
    v.unpark()
    assert v.reg("rip") == KCODE + 5


def test_a_run_with_a_stop_on_its_way_does_not_park():
    """A time slice's end requested while the run went on (flag and emu_stop, from the watchdog
    thread just before the hook took the lock) must end that run: parked, the stop would fire
    right after the next resume, when the request is long consumed, as an exit that looks like a
    `hlt` (a ROS thread was killed for a "privileged instruction" after an ioctl)."""
    m = _parking_machine()
    v = m.vcpu
    seen = []

    def on_syscall(vcpu):
        vcpu.preempt_requested = True               # what request_preempt does, lock aside
        vcpu.uc.emu_stop()
        seen.append(vcpu.can_park())
        return True                                 # the call completed: the run goes on ...
    m.handler.on_syscall = on_syscall
    exit = v.run()
    assert seen == [False]
    assert exit.kind == ExitKind.BUDGET, exit       # ... and ends at the requested stop


def test_a_stop_requested_after_can_park_makes_park_refuse():
    """The watchdog's request can come between the hook's can_park() and park(): park() looks at
    the flags after it marked the vCPU parked (a request looks at `parked` after setting its flag),
    refuses, and the run ends at the requested stop; nothing is left parked."""
    m = _parking_machine()
    v = m.vcpu
    seen = []

    def on_syscall(vcpu):
        assert vcpu.can_park()
        vcpu.request_preempt()                      # not parked yet: flag and emu_stop
        seen.append(vcpu.park())
        return False                                # refused: the hook stops the run
    m.handler.on_syscall = on_syscall
    exit = v.run()
    assert seen == [None] and not v.parked
    assert exit.kind == ExitKind.SYSCALL, exit
    assert v.run().kind == ExitKind.BUDGET          # the request's flag: the next run ends at once


def test_a_stop_requested_while_parked_is_made_when_the_run_resumes():
    """A request that found the vCPU parked leaves only its flag; if it comes after run() looked at
    the flags and resumed the parked run, park() makes the stop itself on the way out."""
    m = _parking_machine()
    v = m.vcpu
    assert v.run().kind == ExitKind.PARKED
    v.set_rax(0x55)
    v.set_reg("rip", v.reg("rip") + 2)
    resumed = []

    def on_resume_switch(orig=v._engine.switch):
        def switch(*a):
            v._engine.switch = orig
            v.request_preempt()                     # between run()'s look and the resume
            resumed.append(v.parked)
            return orig(*a)
        return switch
    v._engine.switch = on_resume_switch()
    exit = v.run()
    assert resumed == [True]
    assert exit.kind == ExitKind.BUDGET, exit       # the stop was made: the run ended right after
    assert v.reg("rip") == KCODE + 7 and m.mem.read_u64(KDATA) == 0   # the syscall (a block's end)
    assert v.run().kind == ExitKind.HALT and m.mem.read_u64(KDATA) == 0x55


# -- page faults -----------------------------------------------------------------------------------
def _pf(m, exit, cr2, error_code):
    assert exit.kind == ExitKind.EXCEPTION, exit
    assert exit.vector == PF, exit
    assert exit.cr2 == cr2, f"CR2 {exit.cr2:#x}, expected {cr2:#x}"
    assert exit.error_code == error_code, f"error code {exit.error_code:#x}, expected {error_code:#x}"


def test_pf_ring0_write_not_present(m):
    m.ring0(mov_rax(NOT_PRESENT + 8) + STORE_RAX_AT_RAX + HLT)
    exit = m.run()
    _pf(m, exit, NOT_PRESENT + 8, 0x2)
    assert exit.rip == KCODE + 10, "RIP points at the faulting instruction (restartable)"


def test_pf_ring0_write_read_only_with_wp(m):
    """CR0.WP=1: a ring-0 write to a read-only page faults (protection, write: 0x3)."""
    m.ring0(mov_rax(K_RO) + STORE_RAX_AT_RAX + HLT)
    _pf(m, m.run(), K_RO, 0x3)


def test_ring0_write_read_only_without_wp_succeeds():
    m = Machine(wp=False)
    m.ring0(mov_rax(K_RO) + STORE_RAX_AT_RAX + HLT)
    assert m.run().kind == ExitKind.HALT
    assert m.mem.read_u64(K_RO) == K_RO


def test_pf_ring0_fetch_nx(m):
    m.ring0(mov_rax(K_RO) + JMP_RAX)
    _pf(m, m.run(), K_RO, 0x11)


def test_pf_ring3_read_not_present(m):
    m.ring3(mov_rax(NOT_PRESENT) + LOAD_RBX_FROM_RAX + SPIN)
    _pf(m, m.run(), NOT_PRESENT, 0x4)


def test_pf_ring3_write_not_present(m):
    m.ring3(mov_rax(NOT_PRESENT + 0xFF8) + STORE_RAX_AT_RAX + SPIN)
    _pf(m, m.run(), NOT_PRESENT + 0xFF8, 0x6)


def test_pf_ring3_write_read_only(m):
    m.ring3(mov_rax(U_RO + 0x10) + STORE_RAX_AT_RAX + SPIN)
    _pf(m, m.run(), U_RO + 0x10, 0x7)


def test_pf_ring3_read_supervisor_page(m):
    m.ring3(mov_rax(SUPERVISOR) + LOAD_RBX_FROM_RAX + SPIN)
    _pf(m, m.run(), SUPERVISOR, 0x5)


def test_pf_ring3_fetch_nx(m):
    m.ring3(mov_rax(U_NX) + JMP_RAX)
    exit = m.run()
    _pf(m, exit, U_NX, 0x15)
    assert exit.rip == U_NX


def test_pf_ring3_read_of_read_only_page_is_fine(m):
    m.mem.write_u64(U_RO, 0xFEED)
    # read it, hand the value to a syscall (mov rdi, rbx), spin
    m.ring3(mov_rax(U_RO) + LOAD_RBX_FROM_RAX + b"\x48\x89\xdf" + mov_eax(1) + SYSCALL + SPIN)
    assert m.run().kind == ExitKind.SYSCALL
    assert m.handler.syscalls[0][:2] == (1, 0xFEED)


def test_repeated_faults_resolved_in_place_stay_pf(m):
    """unicorn#1883: after a hook-handled exception the next one must still be #PF, not #DF, and the
    one after must not silently end emulation. The handler maps each page and resumes."""
    def resolve(vcpu, exit):
        if exit.vector == PF and LAZY <= exit.cr2 < LAZY + 0x3000:
            m.map(exit.cr2 & ~0xFFF, P | W | U | NX)
            vcpu.flush_tlb()
            return True
        return False
    m.handler.on_fault = resolve
    code = b""
    for i in range(3):
        code += mov_rax(LAZY + i * 0x1000 + 8) + STORE_RAX_AT_RAX
    m.ring3(code + mov_eax(60) + SYSCALL + SPIN)
    exit = m.run()
    assert exit.kind == ExitKind.SYSCALL, exit
    assert [(e.vector, e.cr2, e.error_code) for e in m.handler.exceptions] == \
        [(PF, LAZY + i * 0x1000 + 8, 0x6) for i in range(3)]
    for i in range(3):
        assert m.mem.read_u64(LAZY + i * 0x1000 + 8) == LAZY + i * 0x1000 + 8


def test_repeated_faults_across_runs_stay_pf(m):
    """The same, when each fault stops the vCPU and the VMM resumes it with run()."""
    code = b""
    for i in range(3):
        code += mov_rax(LAZY + i * 0x1000) + STORE_RAX_AT_RAX
    m.ring3(code + mov_eax(60) + SYSCALL + SPIN)
    for i in range(3):
        exit = m.run()
        _pf(m, exit, LAZY + i * 0x1000, 0x6)
        m.map(LAZY + i * 0x1000, P | W | U | NX)
        m.vcpu.flush_tlb()
    assert m.run().kind == ExitKind.SYSCALL


def test_many_faults_never_become_double_faults(m):
    """Twenty faults in a row on the same unresolvable page, each a separate run()."""
    m.ring3(mov_rax(NOT_PRESENT) + LOAD_RBX_FROM_RAX + SPIN)
    for _ in range(20):
        exit = m.run()
        _pf(m, exit, NOT_PRESENT, 0x4)


# -- hlt and invalid opcodes -----------------------------------------------------------------------
def test_hlt_exit(m):
    m.ring0(b"\x90\x90" + HLT + SPIN)
    exit = m.run()
    assert exit.kind == ExitKind.HALT
    assert exit.rip == KCODE + 3, "RIP is past the hlt"


def test_ud2_is_invalid_opcode(m):
    m.ring0(b"\x90" + UD2 + HLT)
    exit = m.run()
    assert exit.kind == ExitKind.INVALID_OPCODE
    assert exit.vector == UD
    assert exit.rip == KCODE + 1


def test_ud2_in_ring3(m):
    m.ring3(UD2)
    exit = m.run()
    assert exit.kind == ExitKind.INVALID_OPCODE and exit.rip == UCODE


def test_fault_then_invalid_opcode_then_syscall(m):
    """Exits of different kinds in sequence on one vCPU keep their identity."""
    m.ring3(mov_rax(NOT_PRESENT) + LOAD_RBX_FROM_RAX + UD2 + mov_eax(60) + SYSCALL + SPIN)
    _pf(m, m.run(), NOT_PRESENT, 0x4)
    m.vcpu.set_reg("rip", UCODE + 13)          # skip the load
    assert m.run().kind == ExitKind.INVALID_OPCODE
    m.vcpu.set_reg("rip", UCODE + 15)          # skip ud2
    assert m.run().kind == ExitKind.SYSCALL
    assert m.handler.syscalls[-1][0] == 60


# -- registers ---------------------------------------------------------------------------------------
def test_register_round_trip(m):
    values = {"rax": 1, "rbx": 2, "rcx": 3, "rdx": 4, "rsi": 5, "rdi": 6, "rbp": 7, "r8": 8, "r9": 9,
              "r10": 10, "r11": 11, "r12": 12, "r13": 13, "r14": 14, "r15": 2 ** 64 - 1}
    m.vcpu.set_regs(values)
    got = m.vcpu.regs(tuple(values))
    assert got == values
    m.vcpu.set_rax(-5)
    assert m.vcpu.reg("rax") == 2 ** 64 - 5


def test_every_vcpu_finds_its_live_cpu_state():
    """The hot paths read and write the CPU state in place (unicorn_quirks); a vCPU that could not
    locate it falls back to the API, correct but several times slower per exit. The search must
    not be fooled by stale copies of its pattern (earlier engines, its own buffers): it once was,
    for about one vCPU in three."""
    vcpus = [Machine().vcpu for _ in range(30)]
    assert all(v._regfile is not None for v in vcpus)
    assert all(v._live_lstar is not None and v._live_old_exception is not None for v in vcpus)
    assert all(v.cpl == v._cpl_direct for v in vcpus)
    assert all(v.block_exits and v._pc_sync is not None for v in vcpus)   # exits at block starts only


def test_cpl_in_place_follows_ring_changes(m):
    """The in-place CPL (the live CS selector) agrees with the API in ring 0 and in ring 3."""
    seen = []
    m.handler.on_syscall = lambda vcpu: (seen.append((vcpu.cpl(), vcpu.uc.reg_read(x86.UC_X86_REG_CS) & 3)),
                                         False)[1]
    m.ring0(b"\x0f\x05")                                # syscall: the hook sees ring 0
    m.run()
    m.vcpu.set_reg("cs", KCS)
    m.ring3(b"\x0f\x05")                                # through iretq: ring 3
    m.run()
    assert seen == [(0, 0), (3, 3)]


def test_cr2_survives_the_end_of_a_run():
    """Unicorn ends every emu_start by translating its `until` address through the guest's page
    tables; when that is unmapped the walk sets CR2 behind the guest's back. On a plain engine CR2
    is clobbered (the fact), and with `no_until_address`, as every Vcpu runs, it is not."""
    from unicorn.x86_const import UC_X86_REG_CR2
    from hvm.unicorn_quirks import _CODE, _probe_machine, no_until_address
    seen = {}
    for fixed in (False, True):
        uc = _probe_machine(b"\x90\x90\xf4")                  # nop; nop; hlt, paged, until unmapped
        if fixed:
            no_until_address(uc)
        uc.reg_write(UC_X86_REG_CR2, 0x1234)
        uc.emu_start(_CODE, 0xFFFF_FFFF_FFFF_FFFF)
        seen[fixed] = uc.reg_read(UC_X86_REG_CR2)
    assert seen == {False: 0xFFFF_FFFF_FFFF_FFFE, True: 0x1234}


# Two chained blocks forever: LOOP_A: inc rax; jmp LOOP_B    LOOP_B: inc rbx; jmp LOOP_A
LOOP_A, LOOP_B = KCODE + 0x100, KCODE + 0x110
TWO_BLOCKS = {LOOP_A: b"\x48\xff\xc0\xeb\x0b", LOOP_B: b"\x48\xff\xc3\xeb\xeb"}


def _where_it_should_be(rax, rbx):
    return LOOP_B if rax == rbx + 1 else LOOP_A


def test_rip_written_by_an_exception_hook_survives_a_later_stop_unicorn_fact():
    """The fact (unicorn_quirks.skip_sync_pc_offset): on a plain engine, a RIP written from an
    exception hook leaves Unicorn's skip_sync_pc_on_exit set for the rest of the run, and a later
    stop from another thread then leaves a stale RIP (the last value stored to env->eip)."""
    import threading
    from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_64, Uc
    from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RIP
    stale = 0
    for _ in range(20):
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0, 0x4000)
        uc.mem_write(KCODE, b"\xcc")
        for addr, code in TWO_BLOCKS.items():
            uc.mem_write(addr, code)
        uc.hook_add(UC_HOOK_INTR, lambda uc, _n, _u: uc.reg_write(UC_X86_REG_RIP, LOOP_A))
        threading.Timer(0.01, uc.emu_stop).start()
        uc.emu_start(KCODE, 0xFFFF_FFFF)
        rip, rax, rbx = (uc.reg_read(r) for r in (UC_X86_REG_RIP, UC_X86_REG_RAX, UC_X86_REG_RBX))
        stale += rip != _where_it_should_be(rax, rbx)
    assert stale > 0, "Unicorn no longer leaves a stale RIP: unicorn_quirks.pc_sync_flag may go"


def test_rip_written_by_an_exception_hook_survives_a_later_preempt():
    """A Vcpu clears that flag after every RIP write inside a run: the exception hook sends int3 to
    the loop, a time slice's end stops it, and RIP is where the loop really is."""
    import threading
    for _ in range(20):
        m = Machine()
        m.ring0(b"\xcc")
        for addr, code in TWO_BLOCKS.items():
            m.mem.write(addr, code)
        m.handler.on_fault = lambda vcpu, exit: (vcpu.set_reg("rip", LOOP_A), True)[1]
        threading.Timer(0.01, m.vcpu.request_preempt).start()
        exit = m.run()
        assert exit.kind is ExitKind.BUDGET
        rax, rbx, rip = m.vcpu.reg("rax"), m.vcpu.reg("rbx"), m.vcpu.reg("rip")
        assert rip == _where_it_should_be(rax, rbx), (hex(rip), rax, rbx)
