"""Signals: dispositions, pending sets, default actions, and the x86-64 signal frame.

The frame is laid out exactly as Linux's `struct rt_sigframe` (arch/x86/include/asm/sigframe.h):
the restorer address, a `struct ucontext` (flags, link, altstack, `struct sigcontext`, mask), a
`siginfo_t`, and the FP state in FXSAVE format, so that glibc's and musl's `__restore_rt`
(`mov $15, %eax; syscall`) and handlers that inspect `ucontext_t` work unchanged.
"""
from __future__ import annotations

import signal as host_signal
import struct

from unicorn import x86_const as x86

NSIG = 64
SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO, SA_RESTORER = 1, 2, 4, 0x0400_0000
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x0800_0000, 0x1000_0000, 0x4000_0000, 0x8000_0000
SS_ONSTACK, SS_DISABLE = 1, 2
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL = 1, 2, 3, 4, 5, 6, 7, 8, 9
SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD, SIGCONT, SIGSTOP = 10, 11, 12, 13, 14, 15, 17, 18, 19
SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH = 20, 21, 22, 23, 28
SI_USER, SI_KERNEL, SI_QUEUE, SI_TKILL = 0, 0x80, -1, -6
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 5, 6

# Linux restart codes a syscall handler may return when a signal interrupts it.
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTART_CODES = (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK)

_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, 24, 25, 31}   # + SIGXCPU, SIGXFSZ, SIGSYS
_IGNORE = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT}
_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
SIGNAL_NAMES = {s.value: s.name for s in host_signal.Signals}


def bit(sig: int) -> int:
    return 1 << (sig - 1)


def default_action(sig: int) -> str:
    """'term', 'core', 'ignore' or 'stop' (signal(7))."""
    if sig in _CORE:
        return "core"
    if sig in _IGNORE:
        return "ignore"
    if sig in _STOP:
        return "stop"
    return "term"


def name(sig: int) -> str:
    return SIGNAL_NAMES.get(sig, f"SIGRT{sig - 34}" if sig >= 34 else f"signal {sig}")


class SigInfo:
    """What we know about one pending signal instance, packed as siginfo_t (128 bytes)."""
    __slots__ = ("signo", "code", "pid", "uid", "addr", "status", "errno")

    def __init__(self, signo: int, code: int = SI_USER, pid: int = 0, uid: int = 0, addr: int = 0,
                 status: int = 0):
        self.signo, self.code, self.pid, self.uid, self.addr, self.status = signo, code, pid, uid, addr, status
        self.errno = 0

    def pack(self) -> bytes:
        head = struct.pack("<iii4x", self.signo, self.errno, self.code)
        if self.signo in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) and self.code > 0 and self.code != SI_KERNEL:
            body = struct.pack("<Q", self.addr)
        elif self.signo == SIGCHLD:
            body = struct.pack("<iIi4xqq", self.pid, self.uid, self.status, 0, 0)
        else:
            body = struct.pack("<iI", self.pid, self.uid)
        return (head + body).ljust(128, b"\0")


# -- the frame ------------------------------------------------------------------------------------
FRAME_SIZE = 8 + 304 + 128          # pretcode + ucontext + siginfo
FPSTATE_SIZE = 512                  # FXSAVE area
UC_FLAGS = 0x6                      # UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
_SIGCONTEXT_GPRS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
                    "rbx", "rdx", "rax", "rcx", "rsp", "rip", "rflags")
_XMM = [getattr(x86, f"UC_X86_REG_XMM{i}") for i in range(16)]
_ST = [getattr(x86, f"UC_X86_REG_FP{i}") for i in range(8)]
_FX_CTRL = [x86.UC_X86_REG_FPCW, x86.UC_X86_REG_FPSW, x86.UC_X86_REG_FPTAG, x86.UC_X86_REG_MXCSR]
# EFLAGS bits a signal handler's ucontext may change on sigreturn (Linux FIX_EFLAGS)
FIX_EFLAGS = 0x0001 | 0x0004 | 0x0010 | 0x0040 | 0x0080 | 0x0100 | 0x0400 | 0x0800 | 0x40000 | 0x200000


def _abridged_tag(tag: int) -> int:
    """Full x87 tag word -> FXSAVE's abridged one (bit set = register valid)."""
    return sum(1 << i for i in range(8) if (tag >> (2 * i)) & 3 != 3)


def save_fpstate(uc) -> bytes:
    fcw, fsw, ftw, mxcsr = uc.reg_read_batch(_FX_CTRL)
    st = uc.reg_read_batch(_ST)
    xmm = uc.reg_read_batch(_XMM)
    out = bytearray(FPSTATE_SIZE)
    struct.pack_into("<HHBxH", out, 0, fcw, fsw, _abridged_tag(ftw), 0)
    struct.pack_into("<II", out, 24, mxcsr, 0xFFFF)
    for i, (mant, exp) in enumerate(st):
        struct.pack_into("<QH", out, 32 + 16 * i, mant, exp)
    for i, v in enumerate(xmm):
        out[160 + 16 * i:176 + 16 * i] = v.to_bytes(16, "little")
    return bytes(out)


def restore_fpstate(uc, data: bytes) -> None:
    fcw, fsw, ftw = struct.unpack_from("<HHB", data, 0)
    mxcsr = struct.unpack_from("<I", data, 24)[0]
    tag = sum((0 if ftw >> i & 1 else 3) << (2 * i) for i in range(8))
    uc.reg_write_batch([(x86.UC_X86_REG_FPCW, fcw), (x86.UC_X86_REG_FPSW, fsw),
                        (x86.UC_X86_REG_FPTAG, tag), (x86.UC_X86_REG_MXCSR, mxcsr & 0xFFBF)])
    uc.reg_write_batch([(r, struct.unpack_from("<QH", data, 32 + 16 * i)) for i, r in enumerate(_ST)])
    uc.reg_write_batch([(r, int.from_bytes(data[160 + 16 * i:176 + 16 * i], "little")) for i, r in enumerate(_XMM)])


def build_frame(regs: dict, fpstate: bytes, info: SigInfo, mask: int, altstack: tuple[int, int, int],
                restorer: int, sp: int) -> tuple[int, bytes, int]:
    """Lay out an rt_sigframe below `sp`. Returns (frame address, bytes to write there, fpstate address)."""
    fp_addr = ((sp - FPSTATE_SIZE) & ~63)
    frame = ((fp_addr - FRAME_SIZE + 8) & ~15) - 8
    ss_sp, ss_flags, ss_size = altstack
    sc = struct.pack("<18Q", *(regs[r] for r in _SIGCONTEXT_GPRS))
    sc += struct.pack("<HHHH", 0x33, 0, 0, 0x2B)                       # cs, gs, fs, ss
    sc += struct.pack("<4Q", regs.get("err", 0), regs.get("trapno", 0), mask, regs.get("cr2", 0))
    sc += struct.pack("<Q", fp_addr) + bytes(64)
    uc = struct.pack("<QQQi4xQ", UC_FLAGS, 0, ss_sp, ss_flags, ss_size) + sc + struct.pack("<Q", mask)
    body = struct.pack("<Q", restorer) + uc + info.pack()
    assert len(body) == FRAME_SIZE
    blob = body + bytes(fp_addr - frame - FRAME_SIZE) + fpstate
    return frame, blob, fp_addr


def parse_ucontext(raw: bytes) -> tuple[dict, int, int]:
    """From the `struct ucontext` bytes of a frame: (registers, signal mask, fpstate address)."""
    gprs = struct.unpack_from("<18Q", raw, 40)
    regs = dict(zip(_SIGCONTEXT_GPRS, gprs))
    fp_addr = struct.unpack_from("<Q", raw, 40 + 184)[0]
    mask = struct.unpack_from("<Q", raw, 296)[0]
    return regs, mask, fp_addr


UCONTEXT_SIZE = 304


def _initial_fpstate() -> bytes:
    """What FNINIT + the default MXCSR leave (Linux's fpstate_init): fcw 0x37f, mxcsr 0x1f80."""
    out = bytearray(FPSTATE_SIZE)
    struct.pack_into("<HH", out, 0, 0x037F, 0)
    struct.pack_into("<II", out, 24, 0x1F80, 0xFFFF)
    return bytes(out)


INITIAL_FPSTATE = _initial_fpstate()
