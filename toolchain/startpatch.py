"""Finding the program's main from its entry point, and handing libc another one (capstone).

A static program's entry point, _start, passes main's address to libc in RDI:

    glibc            mov  $main, %rdi         then  call __libc_start_main
    glibc static-pie lea  main(%rip), %rdi    then  call __libc_start_main
    musl             call _start_c,  where:   mov  $main, %rdi (or lea)  then  jmp __libc_start_main

So: disassemble straight-line code from the entry point up to its first branch, which must be a
direct call or jmp (to __libc_start_main). The last instruction before it that writes RDI must
load a constant address of code, with `mov $imm` or a RIP-relative `lea`: that address is main.
musl's _start instead passes the stack pointer (`mov %rsp, %rdi`) to a call: follow that one call
and look again. No symbols are needed; when the file has them, they must agree (the branch goes to
__libc_start_main and the address is main's), or the program is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from capstone import CS_ARCH_X86, CS_GRP_CALL, CS_GRP_INT, CS_GRP_IRET, CS_GRP_JUMP, CS_GRP_RET, CS_MODE_64, Cs
from capstone.x86 import (X86_INS_CALL, X86_INS_JMP, X86_INS_LEA, X86_INS_MOV, X86_INS_MOVABS, X86_OP_IMM,
                          X86_OP_MEM, X86_OP_REG, X86_REG_DI, X86_REG_DIL, X86_REG_EDI, X86_REG_RDI,
                          X86_REG_RIP, X86_REG_RSP)

from .elf import Elf
from .errors import Refused

MAX_INSTRUCTIONS = 40        # _start and _start_c are a dozen instructions each
MAX_INSTRUCTION_SIZE = 15
_RDI = {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL}      # any write to these changes RDI
_RDI_OR_EDI = (X86_REG_RDI, X86_REG_EDI)
_BRANCHES = (CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET, CS_GRP_INT, CS_GRP_IRET)

_disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
_disassembler.detail = True


@dataclass(frozen=True)
class MainLoad:
    """The instruction that gives libc main's address, and how to give it another."""
    address: int             # of the instruction
    text: str                # e.g. "mov rdi, 0x401530"
    field_offset: int        # file offset of the immediate or displacement that holds main
    encoding: str            # "imm32s" (sign-extended to RDI), "imm32" (EDI), "imm64", "rel32" (lea)
    next_address: int        # of the next instruction (what a rel32 is relative to)
    main: int                # the address it loads
    start_main: int          # the branch target: __libc_start_main


def find_main_load(elf: Elf) -> MainLoad:
    """The load of main's address on the way from the entry point to __libc_start_main."""
    where, may_follow = elf.entry, True
    while True:
        block = _straight_line(elf, where)
        branch = block[-1]
        if branch.id not in (X86_INS_CALL, X86_INS_JMP) or branch.operands[0].type != X86_OP_IMM:
            raise Refused(f"no call to __libc_start_main: the code at {where:#x} reaches "
                          f"`{_text(branch)}` at {branch.address:#x} first")
        target = branch.operands[0].imm
        if not elf.is_code(target):
            raise Refused(f"`{_text(branch)}` at {branch.address:#x} leaves the program's code")
        writer = next((i for i in reversed(block[:-1]) if _RDI & set(i.regs_access()[1])), None)
        load = _address_load(elf, writer, target) if writer else None
        if load:
            _check_symbols(elf, load)
            return load
        if not (may_follow and branch.id == X86_INS_CALL and writer and _is_stack_pointer_to_rdi(writer)):
            what = f"`{_text(writer)}` at {writer.address:#x}" if writer else "nothing"
            raise Refused(f"the pattern of _start is not there: before `{_text(branch)}` at "
                          f"{branch.address:#x}, RDI gets {what}, not main's address")
        where, may_follow = target, False


def redirect(data: bytearray, load: MainLoad, new_main: int, position_independent: bool) -> None:
    """Rewrite the load in `data` (the program's file) so that it gives libc `new_main`."""
    if position_independent and load.encoding != "rel32":
        raise Refused(f"`{load.text}` at {load.address:#x} loads main as an absolute address in a "
                      f"position-independent program (it would need a relocation)")
    if load.encoding == "rel32":
        value, size, lo, hi = new_main - load.next_address, 4, -(1 << 31), 1 << 31
    elif load.encoding == "imm32s":
        value, size, lo, hi = new_main, 4, 0, 1 << 31
    elif load.encoding == "imm32":
        value, size, lo, hi = new_main, 4, 0, 1 << 32
    else:
        value, size, lo, hi = new_main, 8, 0, 1 << 64
    if not lo <= value < hi:
        raise Refused(f"`{load.text}` at {load.address:#x} cannot reach the runtime at {new_main:#x}")
    data[load.field_offset:load.field_offset + size] = (value % (1 << 8 * size)).to_bytes(size, "little")


def _straight_line(elf: Elf, start: int) -> list:
    """Instructions from `start` up to and including the first branch."""
    if not elf.is_code(start):
        raise Refused(f"the entry point {start:#x} is not in the program's code")
    block = []
    code = elf.read(start, MAX_INSTRUCTIONS * MAX_INSTRUCTION_SIZE)
    for insn in _disassembler.disasm(code, start, MAX_INSTRUCTIONS):
        block.append(insn)
        if any(insn.group(g) for g in _BRANCHES) or insn.mnemonic in ("hlt", "ud2"):
            return block
    raise Refused(f"no call to __libc_start_main in the first {len(block)} instructions at {start:#x}")


def _address_load(elf: Elf, insn, start_main: int) -> MainLoad | None:
    """A MainLoad if `insn` puts a constant address of code into RDI (or EDI), else None."""
    if len(insn.operands) != 2 or insn.operands[0].type != X86_OP_REG:
        return None
    dest, source = insn.operands
    here, next_address = elf.file_offset(insn.address), insn.address + insn.size
    if insn.id in (X86_INS_MOV, X86_INS_MOVABS) and source.type == X86_OP_IMM and dest.reg in _RDI_OR_EDI:
        value, field = source.imm % (1 << 64), here + insn.encoding.imm_offset
        if insn.encoding.imm_size == 8:
            encoding = "imm64"
        elif dest.reg == X86_REG_RDI:
            encoding = "imm32s"
        else:
            encoding = "imm32"
    elif insn.id == X86_INS_LEA and dest.reg == X86_REG_RDI and _rip_relative(source, insn.encoding):
        value, field, encoding = next_address + source.mem.disp, here + insn.encoding.disp_offset, "rel32"
    else:
        return None
    if not elf.is_code(value):
        return None
    return MainLoad(insn.address, _text(insn), field, encoding, next_address, value, start_main)


def _rip_relative(operand, encoding) -> bool:
    """disp32(%rip), nothing else."""
    return (operand.type == X86_OP_MEM and operand.mem.base == X86_REG_RIP and operand.mem.index == 0
            and encoding.disp_size == 4)


def _is_stack_pointer_to_rdi(insn) -> bool:
    """`mov %rsp, %rdi`: musl's _start passing the initial stack to _start_c."""
    operands = [(op.type, op.reg) for op in insn.operands]
    return insn.id == X86_INS_MOV and operands == [(X86_OP_REG, X86_REG_RDI), (X86_OP_REG, X86_REG_RSP)]


def _check_symbols(elf: Elf, load: MainLoad) -> None:
    """Cross-check with the symbol table, when there is one."""
    symbols = elf.symbols("main", "__libc_start_main")
    start_main = symbols.get("__libc_start_main")
    if start_main is not None and start_main != load.start_main:
        raise Refused(f"_start's branch goes to {load.start_main:#x}, but __libc_start_main is at {start_main:#x}")
    main = symbols.get("main")
    if main is not None and main != load.main:
        raise Refused(f"`{load.text}` at {load.address:#x} loads {load.main:#x}, but main is at {main:#x}")


def _text(insn) -> str:
    return f"{insn.mnemonic} {insn.op_str}".strip()
