#!/usr/bin/env python3
"""Check an AeroKernel image against the VMM contract (hvm/abi.py): `make check` runs it.

ELF64 x86-64 ET_EXEC, entry = _start, only PT_LOAD segments, page-aligned, at or above
KERNEL_VBASE, none writable and executable, no relocation or dynamic sections. Standard library
only (run before any virtualenv exists)."""
import struct
import sys

PT_LOAD, SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_DYNAMIC = 1, 2, 4, 9, 6
PF_X, PF_W = 1, 2


def main(path: str, kernel_vbase: int) -> int:
    data = open(path, "rb").read()
    errors = []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        print(f"check: {path}: not a little-endian ELF64 file")
        return 1
    (e_type, e_machine, _v, e_entry, e_phoff, e_shoff, _f, _eh, e_phentsize, e_phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_type != 2:
        errors.append(f"type {e_type}, not ET_EXEC")
    if e_machine != 62:
        errors.append(f"machine {e_machine}, not x86-64")
    loads = []
    for i in range(e_phnum):
        p_type, p_flags, p_off, p_vaddr, _pa, p_filesz, p_memsz, p_align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type != PT_LOAD:
            errors.append(f"segment {i} has type {p_type:#x}, not PT_LOAD")
            continue
        flags = "".join(c if p_flags & b else "-" for c, b in (("R", 4), ("W", 2), ("X", 1)))
        loads.append((p_vaddr, p_memsz, flags))
        if p_vaddr < kernel_vbase or p_vaddr % 4096 or p_off % 4096:
            errors.append(f"segment at {p_vaddr:#x} (offset {p_off:#x}) is below KERNEL_VBASE or not page-aligned")
        if p_flags & PF_W and p_flags & PF_X:
            errors.append(f"segment at {p_vaddr:#x} is writable and executable")
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    start = None
    for sh in sections:
        if sh[1] in (SHT_RELA, SHT_REL, SHT_DYNAMIC):
            errors.append("relocation or dynamic section present")
        if sh[1] == SHT_SYMTAB:
            strtab = sections[sh[6]]
            for off in range(sh[4], sh[4] + sh[5], 24):
                name, _info, _o, _shndx, value, _size = struct.unpack_from("<IBBHQQ", data, off)
                end = data.index(b"\0", strtab[4] + name)
                if data[strtab[4] + name:end] == b"_start":
                    start = value
    if start is None:
        errors.append("no _start symbol")
    elif e_entry != start:
        errors.append(f"entry {e_entry:#x} is not _start {start:#x}")
    for e in errors:
        print(f"check: {path}: {e}")
    if not errors:
        segs = ", ".join(f"{f} {va:#x}+{sz:#x}" for va, sz, f in loads)
        print(f"check: {path} ok: ET_EXEC, entry _start {e_entry:#x}, PT_LOAD only ({segs}), no relocations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2], 0)))
