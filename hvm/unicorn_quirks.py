"""Facts about the installed Unicorn that mvemu must find at start-up rather than hard-code.

Unicorn does not pass an exception's error code to UC_HOOK_INTR, and (unicorn#1883) it never clears
the CPU's `old_exception` field after a hook handles an exception, so the next exception would be
promoted to #DF and the one after would silently end `emu_start`. Both fields live inside the CPU
state that `uc_context_save` copies; their offsets in that blob depend on the Unicorn build, so we
discover them once per host process with tiny probe machines (see ../shared/probes/unicorn_1883.py),
about 10 ms in all.

This module is the only place that knows about these fields.
"""
from __future__ import annotations

import ctypes
import functools
import struct

from unicorn import UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INTR, UC_MODE_64, Uc
from unicorn.x86_const import (UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_CR4, UC_X86_REG_CS, UC_X86_REG_RIP,
                               UC_X86_REG_GDTR, UC_X86_REG_SS)

_PML4, _PDPT, _PD, _PT, _CODE, _GDT = 0x10000, 0x11000, 0x12000, 0x13000, 0x1000, 0x500
_NOT_PRESENT, _READ_ONLY, _NO_EXEC = 0x20000, 0x21000, 0x22000
_NX = 1 << 63


def _probe_machine(code: bytes) -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 1 << 20)
    w64 = lambda a, v: uc.mem_write(a, struct.pack("<Q", v))
    w64(_PML4, _PDPT | 3); w64(_PDPT, _PD | 3); w64(_PD, _PT | 3)
    for i in range(256):
        w64(_PT + 8 * i, i << 12 | 3)
    w64(_PT + 8 * (_NOT_PRESENT >> 12), 0)
    w64(_PT + 8 * (_READ_ONLY >> 12), _READ_ONLY | 1)
    w64(_PT + 8 * (_NO_EXEC >> 12), _NO_EXEC | 3 | _NX)
    w64(_GDT + 8, 0x00AF9A000000FFFF); w64(_GDT + 16, 0x00CF92000000FFFF)
    uc.reg_write(UC_X86_REG_GDTR, (0, _GDT, 23, 0))
    uc.reg_write(UC_X86_REG_CR3, _PML4)
    uc.reg_write(UC_X86_REG_CR4, 0x20)
    uc.msr_write(0xC0000080, 0xD00)                    # EFER: LME|LMA|NXE
    uc.reg_write(UC_X86_REG_CR0, 0x80010001)           # PG|WP|PE
    uc.reg_write(UC_X86_REG_CS, 0x08); uc.reg_write(UC_X86_REG_SS, 0x10)
    uc.mem_write(_CODE, code)
    return uc


def _context_at_fault(code: bytes) -> tuple[bytes, bytes, int]:
    """Run `code` until its first exception; return the context blob before and at the fault."""
    uc = _probe_machine(code)
    before, seen = bytes(uc.context_save()), []
    uc.hook_add(UC_HOOK_INTR, lambda uc, n, _: (seen.append((bytes(uc.context_save()), n)), uc.emu_stop()))
    uc.emu_start(_CODE, _CODE + len(code))
    return before, seen[0][0], seen[0][1]


def _i32(blob: bytes, off: int) -> int:
    return struct.unpack_from("<i", blob, off)[0]


@functools.cache
def offsets() -> tuple[int, int]:
    """(old_exception offset, error_code offset) inside a context blob of this Unicorn build."""
    mov_rax = lambda addr: b"\x48\xb8" + struct.pack("<Q", addr)
    probes = [  # (code, expected #PF error code)
        (mov_rax(_NOT_PRESENT) + b"\x48\x89\x00", 0x2),     # write, not present
        (mov_rax(_READ_ONLY) + b"\x48\x89\x00", 0x3),       # write, protection (CR0.WP)
        (mov_rax(_NO_EXEC) + b"\xff\xe0", 0x11),            # fetch from an NX page (jmp rax)
    ]
    old_exc = err = None
    err_candidates = None
    for code, expected in probes:
        before, at, vector = _context_at_fault(code)
        if vector != 14:
            raise RuntimeError(f"Unicorn probe expected #PF, got vector {vector}")
        hits = {o for o in range(0, len(before) - 3, 4) if _i32(at, o) == expected}
        err_candidates = hits if err_candidates is None else err_candidates & hits
        if old_exc is None:
            olds = [o for o in range(0, len(before) - 3, 4) if _i32(before, o) == -1 and _i32(at, o) == 14]
            if len(olds) != 1:
                raise RuntimeError(f"cannot locate Unicorn's old_exception field (candidates {olds})")
            old_exc = olds[0]
    if not err_candidates or len(err_candidates) != 1:
        raise RuntimeError(f"cannot locate Unicorn's exception error_code field ({err_candidates})")
    err = err_candidates.pop()
    return old_exc, err


# -- direct access to the live register file -------------------------------------------------------
# Each register access through the binding costs ~1-2 us of ctypes overhead, which would dominate
# a system call exit. QEMU keeps the general-purpose registers in `CPUX86State.regs[16]`, followed
# by `eip`, and syncs them to memory before it calls a helper (the syscall/out hooks, exceptions),
# which is exactly what uc_reg_read/uc_reg_write touch. We locate that array for one instance by
# writing a unique pattern into the registers and finding it in the memory reachable from the
# instance's handle, then check that the API and memory agree both ways. If anything differs the
# caller falls back to the API.
GPR_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


def _rw_mappings() -> list[tuple[int, int]]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if parts[1].startswith("rw"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi))
    return out


def register_file_address(uc: Uc) -> int | None:
    """Address of the live `regs[16]` + `eip` array of `uc`'s CPU, or None if it cannot be proven.

    The pattern also turns up in stale copies (the pattern's own bytes object, scan buffers, freed
    memory of earlier engines), so every occurrence near a pointer of the handle is a candidate,
    and the live one is the candidate that follows register writes through the API; only that one
    is then written to (the proof the other way)."""
    from unicorn import x86_const as x86
    ids = [getattr(x86, f"UC_X86_REG_{n.upper()}") for n in GPR_ORDER]
    saved = [uc.reg_read(i) for i in ids]
    pattern_values = [0x6D76_656D_7500_0000 + 0x1111 * i for i in range(16)]
    for i, v in zip(ids, pattern_values):
        uc.reg_write(i, v)
    pattern = struct.pack("<16Q", *pattern_values)
    found = None
    ok = False
    try:
        maps = _rw_mappings()
        handle = uc._uch.value
        region = next(((lo, hi) for lo, hi in maps if lo <= handle < hi), None)
        if region is None:
            return None
        blob = ctypes.string_at(handle, min(0x4000, region[1] - handle))
        candidates: dict[int, None] = {}
        for off in range(0, len(blob) - 8, 8):
            p = struct.unpack_from("<Q", blob, off)[0]
            span = next(((lo, hi) for lo, hi in maps if lo <= p < hi), None)
            if span is None:
                continue
            data = ctypes.string_at(p, min(0x40000, span[1] - p))
            i = data.find(pattern)
            while i >= 0:
                if (p + i) % 8 == 0:
                    candidates[p + i] = None
                i = data.find(pattern, i + 1)
        # API -> memory: only the live register file follows (reads only, for every candidate).
        uc.reg_write(x86.UC_X86_REG_R11, 0x1234_5678_9ABC)
        uc.reg_write(x86.UC_X86_REG_RIP, 0x4000_1000)
        for c in candidates:
            regs = (ctypes.c_uint64 * 17).from_address(c)
            if regs[11] == 0x1234_5678_9ABC and regs[16] == 0x4000_1000 and regs[10] == pattern_values[10]:
                found = c
                break
        if found is not None:
            # memory -> API, on the one proven live.
            regs = (ctypes.c_uint64 * 17).from_address(found)
            regs[3] = 0x0BAD_CAFE
            ok = uc.reg_read(x86.UC_X86_REG_RBX) == 0x0BAD_CAFE
    finally:
        for i, v in zip(ids, saved):
            uc.reg_write(i, v)
        uc.reg_write(x86.UC_X86_REG_RIP, 0)
    return found if ok else None


# -- the rest of the live CPU state ------------------------------------------------------------------
# `uc_context_save` is a memcpy of the CPU state (CPUX86State, which starts with regs[16]) into the
# context's data, after a small header. So an offset into a context blob is, less that header, an
# offset from the register file found above: fields the blob shows (old_exception, error_code) can
# be read and written in place, without a context round trip (~1.3 us each way). The header size is
# found, and the equivalence proven, by comparing a fresh blob with the live memory.

def context_data_offset(uc: Uc, regfile: int) -> int | None:
    """Where the live CPU state (at `regfile`) starts inside `bytes(uc.context_save())`, proven by
    comparing the whole blob with the live memory; None if they differ."""
    regs = (ctypes.c_uint64 * 16).from_address(regfile)
    saved = list(regs)
    try:
        for i in range(16):
            regs[i] = 0x6D76_4354_5800_0000 + 0x2222 * i
        blob = bytes(uc.context_save())
        head = ctypes.string_at(regfile, 16 * 8)
        off = blob.find(head)
        if off < 0 or blob.find(head, off + 1) >= 0:
            return None
        live = ctypes.string_at(regfile, len(blob) - off)
        return off if live == blob[off:] else None
    finally:
        for i, v in enumerate(saved):
            regs[i] = v


# SYSCALL's MSRs sit together in CPUX86State (`star, vm_hsave, lstar, cstar, fmask, kernelgsbase`).
_MSR_STAR, _MSR_LSTAR, _MSR_CSTAR, _MSR_FMASK = 0xC000_0081, 0xC000_0082, 0xC000_0083, 0xC000_0084


def syscall_msr_addresses(uc: Uc, regfile: int, size: int) -> tuple[int, int] | None:
    """Addresses of the live LSTAR and FMASK of `uc`'s CPU (in the `size` bytes of CPU state at
    `regfile`), found by planting patterns with msr_write and proven with a second pair; None if not
    found. The MSRs are left as they were."""
    saved = {m: uc.msr_read(m) for m in (_MSR_LSTAR, _MSR_CSTAR, _MSR_FMASK)}
    try:
        found = None
        for trial in (0, 1):
            pat = [0x6D76_4C53_0000_0000 + (trial << 20) + 0x1111 * i for i in range(3)]
            for m, v in zip((_MSR_LSTAR, _MSR_CSTAR, _MSR_FMASK), pat):
                uc.msr_write(m, v)
            blob = ctypes.string_at(regfile, size)
            i = blob.find(struct.pack("<3Q", *pat))
            if i < 0 or i % 8:
                return None
            if found is not None and found != i:
                return None
            found = i
        return regfile + found, regfile + found + 16
    finally:
        for m, v in saved.items():
            uc.msr_write(m, v)


# The CS selector (CPUX86State `segs[R_CS].selector`, what uc_reg_read(CS) returns) is live in
# memory at all times, unlike RIP: the CPL check of every hypercall reads it in place (~0.15 us
# less than the API). Found in a probe machine as the one 32-bit field that follows two loads of
# CS with different code selectors, as an offset from the register file (the same in every
# instance of this build); Vcpu checks it against the API before using it.

@functools.cache
def cs_selector_offset() -> int | None:
    uc = _probe_machine(b"\x90")
    uc.mem_write(_GDT + 24, struct.pack("<Q", 0x00AF9A000000FFFF))   # a second ring-0 code segment
    uc.reg_write(UC_X86_REG_GDTR, (0, _GDT, 31, 0))
    regfile = register_file_address(uc)
    if regfile is None:
        return None
    found = None
    for sel in (0x08, 0x18, 0x08):
        uc.reg_write(UC_X86_REG_CS, sel)
        if uc.reg_read(UC_X86_REG_CS) != sel:
            return None
        blob = ctypes.string_at(regfile, 0x400)
        hits = {o for o in range(0, len(blob), 4) if struct.unpack_from("<I", blob, o)[0] == sel}
        found = hits if found is None else found & hits
    return found.pop() if found and len(found) == 1 else None


# -- exits at translation-block boundaries only ----------------------------------------------------
# Unicorn emits a call to helper_check_exit_request after every guest load and store; when a stop
# was requested (uc_emu_stop, e.g. the watchdog ending a time slice from another host thread) it
# leaves the TB and restarts the *current instruction*, whose store has already happened: a
# read-modify-write (add [m], 1; xchg; cmpxchg) runs twice. The check is left out of generated
# code while the engine's `no_exit_request` flag is set (Unicorn uses it for ARM IT blocks); then a
# stop takes effect at the next TB boundary, as in QEMU, and every memory access is also cheaper.
# The flag sits in uc_struct as `bool hook_insert, first_tb, no_exit_request, init_done;` followed
# by `sigjmp_buf jmp_bufs[64]` and `int nested_level`: find it by those neighbours.

_SCAN = 40_000


@functools.cache
def no_exit_request_offset() -> int | None:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, b"\x90\x90\xf4")
    handle = ctypes.cast(uc._uch, ctypes.c_void_p).value
    snap = lambda: ctypes.string_at(handle, _SCAN)
    before = snap()
    uc.emu_start(0x1000, 0x1003)
    after = snap()
    inside: list[bytes] = []
    uc.hook_add(UC_HOOK_CODE, lambda *_: inside.append(snap()), begin=0x1000, end=0x1000)
    uc.emu_start(0x1000, 0x1003)
    found = []
    for o in range(0, _SCAN - 13_000, 8):
        if after[o:o + 4] != b"\x00\x01\x00\x01" or before[o + 1] != 0:
            continue                                   # first_tb is set by uc_emu_start
        nested = o + 8 + 64 * _SIGJMP_BUF_SIZE
        if _i32(after, nested) == 0 and _i32(inside[0], nested) == 1:
            found.append(o + 2)
    return found[0] if len(found) == 1 else None


_SIGJMP_BUF_SIZE = 200                                   # glibc x86-64


def exits_at_block_boundaries(uc: Uc, on: bool = True) -> bool:
    """Set `no_exit_request` on this engine (before it translates code; code translated earlier
    keeps its checks until flushed). False if the flag could not be located."""
    off = no_exit_request_offset()
    if off is None:
        return False
    ctypes.c_bool.from_address(ctypes.cast(uc._uch, ctypes.c_void_p).value + off).value = on
    return True


# Unicorn ends every emu_start by invalidating the translated code at its `until` address (so a
# stop planted there does not stay in the cache). It finds that code by translating `until` through
# the guest's page tables with a real TLB fill: when the address is not mapped, the fill raises a
# #PF that Unicorn swallows, but not before it has set CR2 and the error code. A run that ends
# between an exception's delivery and the handler's `mov %cr2` hands the handler a CR2 of
# until - 1 (tests/test_vcpu.py shows it). With "exits" enabled and none set,
# there is no `until` address at all and nothing is translated.

def no_until_address(uc: Uc) -> None:
    uc.ctl_exits_enabled(True)


# -- a RIP written from a hook must not make a later stop leave a stale RIP ---------------------------
# uc_reg_write(RIP) during a run sets uc_struct's `skip_sync_pc_on_exit` (and `quit_request`) so the
# exit it asks for does not restore the PC it just wrote from the translation block. When the write
# comes from a UC_HOOK_INTR hook (the VMM delivering an exception), that exit is taken by
# cpu_handle_interrupt, which never clears the flag: it stays set for the rest of the run, and the
# next asynchronous stop (a time slice's end) leaves without restoring the PC at all. RIP then reads
# as the last value stored to env->eip, which chained blocks do not update: the vCPU resumes at an
# old address with newer registers (a program thread restarted at its last faulting store with its
# loop counter in the pointer register; tests/test_vcpu.py shows the fact and the fix). With
# `no_exit_request` set, exits happen only at block starts, where restoring is always right, so the
# flag can be cleared right after the write. Found as the one byte a RIP write sets that the run
# does not clear again (`quit_request`, the other, is reset by the exit).

@functools.cache
def skip_sync_pc_offset() -> int | None:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, 0x4000)
    uc.mem_write(0x1000, b"\xcc")                        # int3: the hook sends it to 0x2000
    uc.mem_write(0x2000, b"\xf4")                        # hlt
    handle = ctypes.cast(uc._uch, ctypes.c_void_p).value
    snaps: list[bytes] = []

    def intr(uc, _intno, _user):
        snaps.append(ctypes.string_at(handle, _SCAN))
        uc.reg_write(UC_X86_REG_RIP, 0x2000)
        snaps.append(ctypes.string_at(handle, _SCAN))

    uc.hook_add(UC_HOOK_INTR, intr)
    uc.emu_start(0x1000, 0xFFFF_FFFF)
    if len(snaps) != 2:
        return None
    after = ctypes.string_at(handle, _SCAN)
    before, written = snaps
    found = [o for o in range(_SCAN) if before[o] == 0 and written[o] == 1 and after[o] == 1]
    return found[0] if len(found) == 1 else None


def pc_sync_flag(uc: Uc) -> ctypes.c_bool | None:
    """This engine's `skip_sync_pc_on_exit`, to clear after a RIP write inside a run; None if it
    could not be located."""
    off = skip_sync_pc_offset()
    if off is None:
        return None
    return ctypes.c_bool.from_address(ctypes.cast(uc._uch, ctypes.c_void_p).value + off)
