"""Reading an ELF64 x86-64 executable: its header, program headers and (if it has one) symbol
table, as laid out in the System V gABI. Every offset is checked against the file, so a truncated
or damaged file is refused with one clear sentence. Only what the toolchain needs is read."""
from __future__ import annotations

import struct
from collections import namedtuple
from dataclasses import dataclass

from .errors import Refused

ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")     # 64 bytes
PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")          # 56 bytes
SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")        # 64 bytes
SYMBOL = struct.Struct("<IBBHQQ")                    # 24 bytes

Header = namedtuple("Header", "ident type machine version entry phoff shoff flags ehsize "
                              "phentsize phnum shentsize shnum shstrndx")
Section = namedtuple("Section", "name type flags addr offset size link info addralign entsize")

ELFCLASS32, ELFCLASS64, ELFDATA2LSB = 1, 2, 1
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
EM_X86_64 = 62
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR = 1, 2, 3, 4, 6
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_SYMTAB, SHT_NOTE, SHT_NOBITS = 1, 2, 7, 8
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
PAGE = 0x1000

_TYPES = {ET_EXEC: "ET_EXEC", ET_DYN: "ET_DYN"}
_NOT_PROGRAMS = {ET_REL: "an object file (ET_REL), not a program: link it first",
                 ET_CORE: "a core dump, not a program"}
_MACHINES = {2: "SPARC", 3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "s390",
             40: "ARM", 183: "AArch64", 243: "RISC-V"}


@dataclass
class Segment:
    """One program header."""
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int

    def pack(self) -> bytes:
        return PROGRAM_HEADER.pack(self.type, self.flags, self.offset, self.vaddr, self.paddr,
                                   self.filesz, self.memsz, self.align)

    @property
    def end(self) -> int:
        """The end of the segment in memory."""
        return self.vaddr + self.memsz

    def holds(self, vaddr: int, size: int = 1) -> bool:
        """Whether [vaddr, vaddr + size) lies in the part of the segment read from the file."""
        return self.vaddr <= vaddr and vaddr + size <= self.vaddr + self.filesz

    @property
    def permissions(self) -> str:
        return "".join(c if self.flags & bit else " " for c, bit in (("R", PF_R), ("W", PF_W), ("E", PF_X)))


class Elf:
    """An x86-64 ELF64 executable (ET_EXEC or ET_DYN), validated as far as the toolchain reads it."""

    def __init__(self, data: bytes):
        self.data = data
        self.header = _read_header(data)
        self.type = self.header.type
        self.entry = self.header.entry
        self.segments = _read_segments(data, self.header)
        self.loads = [s for s in self.segments if s.type == PT_LOAD]
        if not self.loads:
            raise Refused("no loadable segments")
        self.sections = _read_sections(data, self.header)

    @property
    def kind(self) -> str:
        return _TYPES[self.type]

    def segment_at(self, vaddr: int, size: int = 1) -> Segment | None:
        """The PT_LOAD whose file-backed part holds [vaddr, vaddr + size)."""
        return next((s for s in self.loads if s.holds(vaddr, size)), None)

    def is_code(self, vaddr: int) -> bool:
        seg = self.segment_at(vaddr)
        return seg is not None and bool(seg.flags & PF_X)

    def file_offset(self, vaddr: int) -> int:
        seg = self.segment_at(vaddr)
        if seg is None:
            raise Refused(f"address {vaddr:#x} is not in any loadable segment")
        return seg.offset + (vaddr - seg.vaddr)

    def read(self, vaddr: int, size: int) -> bytes:
        """Up to `size` bytes from vaddr, as far as its segment's file-backed part goes."""
        start = self.file_offset(vaddr)
        seg = self.segment_at(vaddr)
        return self.data[start:min(start + size, seg.offset + seg.filesz)]

    def header_with(self, **changes) -> bytes:
        """The ELF header with some fields changed, e.g. header_with(phoff=..., phnum=...)."""
        return ELF_HEADER.pack(*self.header._replace(**changes))

    def symbols(self, *names: str) -> dict[str, int]:
        """The values of those of `names` that the symbol table defines ({} when stripped)."""
        wanted = {n.encode() for n in names}
        found = {}
        for symtab in (s for s in self.sections if s.type == SHT_SYMTAB):
            if symtab.entsize != SYMBOL.size or symtab.link >= len(self.sections):
                raise Refused("malformed ELF: a bad symbol table")
            strtab = self.sections[symtab.link]
            for at in range(symtab.offset, symtab.offset + symtab.size - SYMBOL.size + 1, SYMBOL.size):
                name_at, _info, _other, shndx, value, _size = SYMBOL.unpack_from(self.data, at)
                if shndx != 0 and name_at < strtab.size and self.string(strtab, name_at) in wanted:
                    found.setdefault(self.string(strtab, name_at).decode(), value)
        return found

    def string(self, strtab: Section, at: int) -> bytes:
        """The NUL-terminated string at `at` in a string table section."""
        start, end = strtab.offset + at, strtab.offset + strtab.size
        nul = self.data.find(b"\0", start, end)
        return self.data[start:nul if nul >= 0 else end]


def _read_header(data: bytes) -> Header:
    if data[:4] != b"\x7fELF":
        raise Refused("not an ELF file")
    if len(data) < 6:
        raise Refused("truncated ELF file (the ELF header is incomplete)")
    if data[4] == ELFCLASS32:
        raise Refused("a 32-bit ELF; hybridize works on 64-bit x86-64 programs")
    if data[4] != ELFCLASS64 or data[5] != ELFDATA2LSB:
        raise Refused("malformed ELF: not a little-endian ELF64 file")
    if len(data) < ELF_HEADER.size:
        raise Refused("truncated ELF file (the ELF header is incomplete)")
    h = Header(*ELF_HEADER.unpack_from(data))
    if h.machine != EM_X86_64:
        raise Refused(f"an ELF for {_MACHINES.get(h.machine, f'machine {h.machine}')}, not x86-64")
    if h.type in _NOT_PROGRAMS:
        raise Refused(_NOT_PROGRAMS[h.type])
    if h.type not in _TYPES:
        raise Refused(f"not an executable (ELF type {h.type})")
    if h.phnum == 0:
        raise Refused("no program headers")
    if h.phentsize != PROGRAM_HEADER.size:
        raise Refused(f"malformed ELF: program headers of {h.phentsize} bytes (expected {PROGRAM_HEADER.size})")
    if h.phoff + h.phnum * PROGRAM_HEADER.size > len(data):
        raise Refused("truncated ELF file (the program headers run past its end)")
    return h


def _read_segments(data: bytes, h: Header) -> list[Segment]:
    segments = []
    for i in range(h.phnum):
        seg = Segment(*PROGRAM_HEADER.unpack_from(data, h.phoff + i * PROGRAM_HEADER.size))
        if seg.type in (PT_LOAD, PT_INTERP, PT_NOTE) and seg.offset + seg.filesz > len(data):
            raise Refused(f"truncated ELF file (segment {i} runs past its end)")
        if seg.type == PT_LOAD:
            if seg.filesz > seg.memsz:
                raise Refused(f"malformed ELF: segment {i} has more bytes in the file than in memory")
            if seg.vaddr % PAGE != seg.offset % PAGE:
                raise Refused(f"malformed ELF: segment {i}'s address and file offset disagree modulo the page size")
        segments.append(seg)
    return segments


def _read_sections(data: bytes, h: Header) -> list[Section]:
    if h.shoff == 0 or h.shnum == 0:
        return []
    if h.shentsize != SECTION_HEADER.size:
        raise Refused(f"malformed ELF: section headers of {h.shentsize} bytes (expected {SECTION_HEADER.size})")
    if h.shoff + h.shnum * SECTION_HEADER.size > len(data):
        raise Refused("truncated ELF file (the section headers run past its end)")
    sections = [Section(*SECTION_HEADER.unpack_from(data, h.shoff + i * SECTION_HEADER.size)) for i in range(h.shnum)]
    for i, s in enumerate(sections):
        if s.type != SHT_NOBITS and s.offset + s.size > len(data):
            raise Refused(f"truncated ELF file (section {i} runs past its end)")
    return sections
