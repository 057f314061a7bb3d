"""ELF loading (pyelftools) and the System V initial process stack.

Static ET_EXEC programs load at their link addresses; static-pie ET_DYN programs at PIE_BASE, as
Linux does with ASLR off. Segments become file-backed VMAs that are paged in on first touch.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from . import layout
from .mm import (MAP_GROWSDOWN, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace,
                 BytesBacking, page_down, page_up)

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4

# auxv types
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51
AUXV_ENTRIES = 20                      # pairs build_stack writes, AT_NULL included

HWCAP = 0x078BFBFF          # CPUID.1:EDX of the emulated CPU class (fpu..sse2), as Linux reports
_MACHINES = {"EM_386": "x86 (32-bit)", "EM_AARCH64": "AArch64", "EM_ARM": "ARM", "EM_RISCV": "RISC-V",
             "EM_PPC64": "PowerPC64", "EM_S390": "s390", "EM_MIPS": "MIPS"}


class ExecError(Exception):
    """The file cannot be run; `errno` is what execve(2) would return, str() the one-line reason."""

    def __init__(self, message: str, errno: int):
        super().__init__(message)
        self.errno = errno


@dataclass
class ElfImage:
    path: str
    data: bytes
    kind: str                     # "ET_EXEC" or "ET_DYN"
    entry: int                    # link-time entry
    phoff: int
    phnum: int
    segments: list[tuple[int, int, int, int, int]]   # (vaddr, memsz, offset, filesz, flags)
    exec_stack: bool


def read_elf(path: str) -> ElfImage:
    """Parse and validate a static x86-64 executable. Raises ExecError with a user-facing reason."""
    import errno as E
    if os.path.isfile(path) and not os.access(path, os.X_OK):
        raise ExecError("Permission denied (not executable)", E.EACCES)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ExecError("No such file or directory", E.ENOENT)
    except IsADirectoryError:
        raise ExecError("Is a directory", E.EACCES)
    except PermissionError:
        raise ExecError("Permission denied", E.EACCES)
    if data[:4] != b"\x7fELF":
        what = "a text file" if data[:2] == b"#!" or _looks_like_text(data) else "not an ELF file"
        raise ExecError(f"not an executable: {what}", E.ENOEXEC)
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if elf.elfclass != 64 or machine != "EM_X86_64":
            arch = _MACHINES.get(machine, machine)
            raise ExecError(f"wrong architecture: an ELF for {arch}; mvemu runs x86-64 programs", E.ENOEXEC)
        kind = elf["e_type"]
        if kind not in ("ET_EXEC", "ET_DYN"):
            raise ExecError(f"not an executable ({kind})", E.ENOEXEC)
        segments, exec_stack = [], False
        for seg in elf.iter_segments():
            t = seg["p_type"]
            if t == "PT_INTERP":
                interp = data[seg["p_offset"]:seg["p_offset"] + seg["p_filesz"]].rstrip(b"\0").decode(errors="replace")
                raise ExecError(f"dynamically linked (needs {interp}); mvemu runs statically linked "
                                f"programs: rebuild with -static or -static-pie", E.ENOEXEC)
            if t == "PT_LOAD" and seg["p_memsz"]:
                segments.append((seg["p_vaddr"], seg["p_memsz"], seg["p_offset"], seg["p_filesz"], seg["p_flags"]))
            if t == "PT_GNU_STACK":
                exec_stack = bool(seg["p_flags"] & PF_X)
        if not segments:
            raise ExecError("no loadable segments", E.ENOEXEC)
        if kind == "ET_DYN" and not any(off == 0 for _, _, off, _, _ in segments):
            raise ExecError("shared library, not a program", E.ENOEXEC)
        return ElfImage(path, data, kind, elf["e_entry"], elf["e_phoff"], elf["e_phnum"], segments, exec_stack)
    except ELFError as e:
        raise ExecError(f"malformed ELF file ({e})", E.ENOEXEC)


def _looks_like_text(data: bytes) -> bool:
    sample = data[:512]
    return bool(sample) and all(b in b"\t\n\r" or 32 <= b < 127 or b >= 128 for b in sample)


@dataclass
class LoadedImage:
    entry: int
    phdr: int
    phnum: int
    load_base: int
    brk: int


def load_image(mm: AddressSpace, image: ElfImage) -> LoadedImage:
    """Create the VMAs of the program's segments, its heap start and its stack."""
    base = layout.PIE_BASE if image.kind == "ET_DYN" else 0
    end = 0
    phdr = 0
    for vaddr, memsz, offset, filesz, flags in image.segments:
        start = base + vaddr
        vstart = page_down(start)
        prot = (PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0) | (PROT_EXEC if flags & PF_X else 0)
        lead = start - vstart
        backing = BytesBacking(image.data, offset + filesz)
        mm.map(vstart, page_up(start + memsz), prot, MAP_PRIVATE, backing, offset - lead, os.path.basename(image.path))
        end = max(end, start + memsz)
        if offset <= image.phoff < offset + filesz:
            phdr = start + (image.phoff - offset)
    brk = page_up(end)
    mm.brk_start = mm.brk = brk
    stack_prot = PROT_READ | PROT_WRITE | (PROT_EXEC if image.exec_stack else 0)
    mm.map(layout.STACK_TOP - layout.STACK_SIZE, layout.STACK_TOP, stack_prot, MAP_PRIVATE | MAP_GROWSDOWN, name="[stack]")
    return LoadedImage(base + image.entry, phdr, image.phnum, base, brk)


def build_stack(mm: AddressSpace, loaded: LoadedImage, argv: list[bytes], envp: list[bytes],
                execfn: bytes, random16: bytes, ids: tuple[int, int, int, int]) -> int:
    """Write argc/argv/envp/auxv and their strings below STACK_TOP; return the initial RSP."""
    sp = layout.STACK_TOP
    blobs = {}

    def push_bytes(b: bytes) -> int:
        nonlocal sp
        sp -= len(b)
        if not mm.write(sp, b):
            raise ExecError("argument list too long", 7)   # E2BIG
        return sp

    blobs["execfn"] = push_bytes(execfn + b"\0")
    env_ptrs = [push_bytes(e + b"\0") for e in reversed(envp)][::-1]
    arg_ptrs = [push_bytes(a + b"\0") for a in reversed(argv)][::-1]
    platform = push_bytes(b"x86_64\0")
    sp &= ~0xF
    rand = push_bytes(random16)
    uid, euid, gid, egid = ids
    auxv = [(AT_PHDR, loaded.phdr), (AT_PHENT, 56), (AT_PHNUM, loaded.phnum), (AT_PAGESZ, layout.PAGE),
            (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, loaded.entry), (AT_UID, uid), (AT_EUID, euid),
            (AT_GID, gid), (AT_EGID, egid), (AT_SECURE, 0), (AT_RANDOM, rand), (AT_HWCAP, HWCAP),
            (AT_HWCAP2, 0), (AT_CLKTCK, 100), (AT_PLATFORM, platform), (AT_EXECFN, blobs["execfn"]),
            (AT_MINSIGSTKSZ, 2048), (AT_NULL, 0)]
    assert len(auxv) == AUXV_ENTRIES
    words = [len(argv)] + arg_ptrs + [0] + env_ptrs + [0] + [x for pair in auxv for x in pair]
    sp -= 8 * len(words)
    sp &= ~0xF
    if not mm.write(sp, struct.pack(f"<{len(words)}Q", *words)):
        raise ExecError("argument list too long", 7)
    return sp
