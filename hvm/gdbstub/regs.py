"""The registers gdb sees: their order (the `g` packet and `p`/`P` numbers), sizes and the target
description XML that tells gdb about them (`qXfer:features:read:target.xml`).

The first four features are gdb's own for x86-64 GNU/Linux (gdb/features/i386/64bit-*.xml), so gdb
recognises an amd64 Linux target: the core registers with x87, SSE, `orig_rax` and the segment
bases. The fifth, `org.mvemu.x86.sys`, adds what a system emulator can show and a process debugger
cannot: the control registers, EFER and the current privilege level (`cpl`, read-only), with flag
names, so that `p $cr0` prints `[ PE MP ET NE WP AM PG ]` and `p $cpl` says which ring a thread is in.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reg:
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""
    readonly: bool = False

    @property
    def size(self) -> int:
        return self.bits // 8


_CORE, _SSE, _LINUX, _SEG, _SYS = ("org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.linux",
                                   "org.gnu.gdb.i386.segments", "org.mvemu.x86.sys")

REGISTERS: tuple[Reg, ...] = (
    *(Reg(n, 64, "int64", _CORE) for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi")),
    Reg("rbp", 64, "data_ptr", _CORE), Reg("rsp", 64, "data_ptr", _CORE),
    *(Reg(f"r{i}", 64, "int64", _CORE) for i in range(8, 16)),
    Reg("rip", 64, "code_ptr", _CORE), Reg("eflags", 32, "i386_eflags", _CORE),
    *(Reg(n, 32, "int32", _CORE) for n in ("cs", "ss", "ds", "es", "fs", "gs")),
    *(Reg(f"st{i}", 80, "i387_ext", _CORE) for i in range(8)),
    *(Reg(n, 32, "int", _CORE, "float") for n in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg",
                                                   "fooff", "fop")),
    *(Reg(f"xmm{i}", 128, "vec128", _SSE) for i in range(16)),
    Reg("mxcsr", 32, "i386_mxcsr", _SSE, "vector"),
    Reg("orig_rax", 64, "int", _LINUX, "system"),
    Reg("fs_base", 64, "int", _SEG), Reg("gs_base", 64, "int", _SEG),
    Reg("cr0", 64, "mvemu_cr0", _SYS, "system"), Reg("cr2", 64, "data_ptr", _SYS, "system"),
    Reg("cr3", 64, "int", _SYS, "system"), Reg("cr4", 64, "mvemu_cr4", _SYS, "system"),
    Reg("efer", 64, "mvemu_efer", _SYS, "system"),
    Reg("cpl", 32, "int32", _SYS, "system", readonly=True),
)
NUMBER = {r.name: i for i, r in enumerate(REGISTERS)}
G_PACKET_SIZE = sum(r.size for r in REGISTERS)


def _flags(name: str, size: int, fields: dict[str, int]) -> str:
    body = "".join(f'<field name="{f}" start="{b}" end="{b}"/>' for f, b in fields.items())
    return f'<flags id="{name}" size="{size}">{body}</flags>'


_EFLAGS = {"CF": 0, "PF": 2, "AF": 4, "ZF": 6, "SF": 7, "TF": 8, "IF": 9, "DF": 10, "OF": 11, "NT": 14,
           "RF": 16, "VM": 17, "AC": 18, "VIF": 19, "VIP": 20, "ID": 21}
_MXCSR = {"IE": 0, "DE": 1, "ZE": 2, "OE": 3, "UE": 4, "PE": 5, "DAZ": 6, "IM": 7, "DM": 8, "ZM": 9,
          "OM": 10, "UM": 11, "PM": 12, "FZ": 15}
_CR0 = {"PE": 0, "MP": 1, "EM": 2, "TS": 3, "ET": 4, "NE": 5, "WP": 16, "AM": 18, "NW": 29, "CD": 30, "PG": 31}
_CR4 = {"VME": 0, "PVI": 1, "TSD": 2, "DE": 3, "PSE": 4, "PAE": 5, "MCE": 6, "PGE": 7, "PCE": 8,
        "OSFXSR": 9, "OSXMMEXCPT": 10, "UMIP": 11, "LA57": 12, "FSGSBASE": 16, "PCIDE": 17,
        "OSXSAVE": 18, "SMEP": 20, "SMAP": 21, "PKE": 22}
_EFER = {"SCE": 0, "LME": 8, "LMA": 10, "NXE": 11, "SVME": 12, "FFXSR": 14}

_SSE_TYPES = (
    '<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>'
    '<vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>'
    '<vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>'
    '<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>'
    '<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>'
    '<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>'
    '<field name="uint128" type="uint128"/></union>')
_FEATURE_TYPES = {
    _CORE: _flags("i386_eflags", 4, _EFLAGS),
    _SSE: _SSE_TYPES + _flags("i386_mxcsr", 4, _MXCSR),
    _SYS: _flags("mvemu_cr0", 8, _CR0) + _flags("mvemu_cr4", 8, _CR4) + _flags("mvemu_efer", 8, _EFER),
}


def target_xml() -> bytes:
    out = ['<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">',
           "<target><architecture>i386:x86-64</architecture><osabi>GNU/Linux</osabi>"]
    feature = None
    for num, r in enumerate(REGISTERS):
        if r.feature != feature:
            if feature is not None:
                out.append("</feature>")
            feature = r.feature
            out.append(f'<feature name="{feature}">' + _FEATURE_TYPES.get(feature, ""))
        group = f' group="{r.group}"' if r.group else ""
        out.append(f'<reg name="{r.name}" bitsize="{r.bits}" type="{r.type}" regnum="{num}"{group}/>')
    out.append("</feature></target>")
    return "".join(out).encode()


def encode(reg: Reg, value) -> bytes:
    """A register value in the target's byte order, as gdb expects it in `g` and `p` replies.
    x87 registers are given as 10 raw bytes, the rest as integers."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).ljust(reg.size, b"\0")[:reg.size]
    return (value & ((1 << reg.bits) - 1)).to_bytes(reg.size, "little")


def decode(reg: Reg, data: bytes):
    if reg.type == "i387_ext":
        return bytes(data)
    return int.from_bytes(data, "little")
