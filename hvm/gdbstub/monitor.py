"""`monitor` commands (gdb's qRcmd): a look at the machine that a process debugger cannot give.

    monitor pt ADDR          walk the selected thread's page tables for ADDR, level by level
    monitor phys ADDR [LEN]  dump guest-physical memory (LEN bytes, default 64, at most 4096)
    monitor hvm              partitions, the HRT (image, booted, merged), every vCPU
    monitor trace on|off     strace-style system call trace and HVM steps on mvemu's stderr
    monitor aerokernel       the gdb command that loads the AeroKernel's symbols
    monitor help             this list

gdb passes the text of a monitor command as it is, without evaluating it: ADDR and LEN are numbers
(0x for hex) or a register of the selected thread ($sp, $pc, $rax, $cr3, ...); for any other
expression let gdb do the arithmetic: `eval "monitor pt %p", &counter`.
"""
from __future__ import annotations

import os

from .. import pagewalk
from ..memory import PAGE_SIZE
from .interface import TargetError

_HELP = __doc__.split("\n\n")[1].rstrip() + "\n"
_LEVELS = (("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12))
_FLAG_BITS = (("P", 0), ("W", 1), ("U", 2), ("PWT", 3), ("PCD", 4), ("A", 5), ("D", 6), ("PS", 7), ("G", 8))
_AEROKERNEL_ELF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "aerokernel", "build", "aerokernel.elf")


def _flags(entry: int, level: int) -> str:
    names = [n for n, b in _FLAG_BITS if entry >> b & 1 and not (n == "PS" and level == 3)]
    if entry >> 63 & 1:
        names.append("NX")
    return " ".join(names) if names else "-"


_ALIASES = {"pc": "rip", "sp": "rsp", "fp": "rbp"}


def _number(text: str, target=None, tid: int = 0) -> int:
    """A number (0x for hex), or $REGISTER of the selected thread ($sp, $pc, $rax, $cr3 ...)."""
    if text.startswith("$") and target is not None:
        from . import regs
        name = _ALIASES.get(text[1:], text[1:])
        if name in regs.NUMBER:
            value = target.read_registers(tid)[regs.NUMBER[name]]
            if isinstance(value, int):
                return value
        raise TargetError(f"no register {text} (give a number, or $sp, $pc, $rax, ...)")
    try:
        return int(text, 0)
    except ValueError:
        raise TargetError(f"not a number: {text!r} (give a number such as 0x401000, or $sp)")


def page_walk(mem, cr3: int, va: int) -> list[str]:
    """The walk of `va` under `cr3`, one line per level, as the MMU does it."""
    lines = [f"CR3 {cr3:#x}: PML4 at physical {cr3 & pagewalk.ADDR:#x}"]
    table = cr3 & pagewalk.ADDR
    for depth, (name, shift) in enumerate(_LEVELS):
        index = (va >> shift) & 0x1FF
        slot = table + 8 * index
        entry = mem.read_u64(slot)
        head = f"  {name:<4} [{index:3}] at {slot:#x}: {entry:#018x}  {_flags(entry, depth)}"
        if not entry & pagewalk.P:
            lines.append(head + "  (not present: the access faults)")
            return lines
        level = 3 - depth
        if level in (2, 1) and entry & pagewalk.PS:
            size = 1 << shift
            pa = (entry & pagewalk.ADDR & ~(size - 1)) | (va & (size - 1))
            lines.append(head + f"  -> {size >> 20 if size < 1 << 30 else size >> 30} "
                                f"{'MiB' if size < 1 << 30 else 'GiB'} page")
            lines.append(f"  physical address {pa:#x}")
            return lines
        table = entry & pagewalk.ADDR
        if level == 0:
            lines.append(head + f"  -> page frame {table:#x}")
            lines.append(f"  physical address {table | (va & (PAGE_SIZE - 1)):#x}")
            return lines
        lines.append(head + f"  -> {_LEVELS[depth + 1][0]} at {table:#x}")
    return lines


def _hexdump(base: int, data: bytes) -> list[str]:
    out = []
    for off in range(0, len(data), 16):
        row = data[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        out.append(f"{base + off:#014x}: {hexes:<47}  {text}")
    return out


def _hvm(target) -> list[str]:
    m = target.machine
    out = ["partitions (guest-physical):"]
    for p in m.memory.partitions.values():
        out.append(f"  {p.name:<4} [{p.base:#012x}, {p.end:#012x})  {p.size >> 20} MiB")
    hrt = m.hrt
    if hrt is None:
        out.append("HRT: none (--hrt-mem 0)")
    else:
        out.append(f"HRT: image {'installed' if hrt.image else 'not installed'}, "
                   f"{'booted' if hrt.booted else 'not booted'}, {'merged' if hrt.merged else 'not merged'}"
                   + (f", page tables at {hrt.cr3:#x}" if hrt.cr3 else ""))
    hrt_vcpus = {c.vcpu: c for c in (hrt.cpus if hrt else []) if c.vcpu is not None}
    out.append("vCPUs:")
    for v in m.vcpus:
        cpu = hrt_vcpus.get(v)
        role = f"HRT vCPU {cpu.index} ({cpu.state})" if cpu else "ROS vCPU"
        tid = target.thread_on(v)
        who = f", thread {tid}" if tid else ""
        out.append(f"  {v.index}: {role}{who}: ring {v.cpl()}, rip {v.reg('rip'):#x}, cr3 {v.reg('cr3'):#x}")
    return out


def run_monitor_command(target, tid: int, command: str) -> str:
    try:
        return _run(target, tid, command)
    except TargetError as e:
        return f"monitor {command}: {e}\n"


def _run(target, tid: int, command: str) -> str:
    words = command.split()
    if not words or words[0] == "help":
        return _HELP
    cmd, args = words[0], words[1:]
    mem = target.machine.memory
    if cmd == "pt" and len(args) == 1:
        va = _number(args[0], target, tid)
        t = target._thread(tid)
        head = f"page walk of {va:#x} for thread {tid} ({t.description})"
        return "\n".join([head] + page_walk(mem, t.cr3, va)) + "\n"
    if cmd == "phys" and 1 <= len(args) <= 2:
        pa = _number(args[0], target, tid)
        n = _number(args[1], target, tid) if len(args) == 2 else 64
        if not 0 < n <= 4096 or pa < 0 or pa + n > mem.size:
            return (f"phys: [{pa:#x}, {pa + n:#x}) is not inside guest memory (0 to {mem.size:#x}), "
                    f"or LEN is not 1..4096\n")
        return "\n".join(_hexdump(pa, mem.read(pa, n))) + "\n"
    if cmd == "hvm" and not args:
        return "\n".join(_hvm(target)) + "\n"
    if cmd == "trace" and args in (["on"], ["off"]):
        on = args[0] == "on"
        target.machine.trace = on
        if target.machine.hrt is not None:
            target.machine.hrt.trace = on
        target.guest.set_trace(on)
        return ("trace on: system calls and HVM steps go to mvemu's stderr\n" if on else "trace off\n")
    if cmd == "aerokernel" and not args:
        path = _AEROKERNEL_ELF if os.path.exists(_AEROKERNEL_ELF) else "aerokernel/build/aerokernel.elf"
        return (f"add-symbol-file {path}\n"
                f"(the AeroKernel is linked at its run address, so no offset is needed)\n")
    return f"unknown or malformed monitor command: {command!r}\n" + _HELP
