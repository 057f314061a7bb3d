"""ELF surgery: add one loadable segment to an executable and move its program-header table there.

The program headers usually fill the space between the ELF header and the first section, so a
table with more entries cannot stay where it is: it goes at the start of the new segment, which is
loaded, so AT_PHDR stays valid. The segment is placed

- at a page-aligned file offset past the end of the file and past where the program's memory image
  (with its .bss) ends, so that it overlaps nothing in the file or in memory, and
- *congruently*: its address minus its file offset equals the first PT_LOAD's. Linux before 5.18
  computes AT_PHDR as (first PT_LOAD's address - offset) + e_phoff, later kernels and mvemu's
  loader from the segment that contains e_phoff; both give the table's address. So does a program
  that reads its own header (__ehdr_start + e_phoff).

The original bytes stay where they were (only the ELF header changes, and whatever the caller
patched); the gap before the new segment is zeros. The kernel needs no sections, but tools do
(`readelf -n` reads notes from sections, `objdump -d` disassembles sections): if the program has a
section table, a copy of it with one section per part of the new segment is appended to the file.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .elf import ELF_HEADER, PAGE, PF_R, PF_X, PROGRAM_HEADER, PT_LOAD, PT_PHDR, SECTION_HEADER, Elf, Section, Segment
from .errors import Refused

MAX_PADDING = 256 << 20            # zeros we are willing to add to reach the segment's offset
USER_TOP = 1 << 47                 # x86-64 user addresses are below this


@dataclass(frozen=True)
class Placement:
    """Where the new segment goes. It starts with the new program-header table."""
    offset: int                    # file offset (page-aligned)
    vaddr: int                     # link-time address
    phnum: int                     # entries of the new table

    @property
    def body_offset(self) -> int:
        """File offset of the first byte after the table: the caller's content starts there."""
        return self.offset + self.phnum * PROGRAM_HEADER.size

    def address_of(self, file_offset: int) -> int:
        return self.vaddr + (file_offset - self.offset)


@dataclass(frozen=True)
class Part:
    """A piece of the new segment, to be described by a section header."""
    name: str
    type: int                      # SHT_PROGBITS or SHT_NOTE
    flags: int                     # SHF_ALLOC, SHF_EXECINSTR
    offset: int                    # file offset
    size: int
    align: int


def place_segment(elf: Elf, extra_headers: int) -> Placement:
    """Place a new segment for a table of the program's headers, the new PT_LOAD and
    `extra_headers` more."""
    first = elf.loads[0]
    bias = first.vaddr - first.offset
    if bias % PAGE:
        raise Refused("malformed ELF: the first loadable segment is not page-aligned")
    memory_end = max(s.end for s in elf.loads)
    offset = _page_up(max(len(elf.data), memory_end - bias))
    padding = offset - len(elf.data)
    if padding > MAX_PADDING:
        raise Refused(f"the program's memory ends {padding >> 20} MiB past the end of its file (a large "
                      f".bss?): the new segment would need that much padding (at most {MAX_PADDING >> 20} MiB)")
    phnum = len(elf.segments) + 1 + extra_headers
    if phnum >= 0xFFFF:
        raise Refused(f"too many program headers ({len(elf.segments)})")
    return Placement(offset, offset + bias, phnum)


def add_segment(elf: Elf, data: bytes, place: Placement, body: bytes, extra: list[Segment],
                parts: list[Part]) -> bytes:
    """The executable `data` (elf's bytes, possibly patched) with a new R+X segment at `place`: the
    new program-header table followed by `body`. The table is the program's headers (a PT_PHDR
    updated to the new table), the new PT_LOAD after the last one, then `extra`."""
    table_size = place.phnum * PROGRAM_HEADER.size
    size = table_size + len(body)
    if place.vaddr + size > USER_TOP:
        raise Refused("no room for a new segment above the program's memory")
    load = Segment(PT_LOAD, PF_R | PF_X, place.offset, place.vaddr, place.vaddr, size, size, PAGE)
    headers = [replace(s, offset=place.offset, vaddr=place.vaddr, paddr=place.vaddr, filesz=table_size,
                       memsz=table_size) if s.type == PT_PHDR else s for s in elf.segments]
    last_load = max(i for i, s in enumerate(headers) if s.type == PT_LOAD)
    headers[last_load + 1:last_load + 1] = [load]
    headers += extra
    assert len(headers) == place.phnum, "place_segment() was told another number of headers"
    out = bytearray(data)
    out += bytes(place.offset - len(out))
    out += b"".join(h.pack() for h in headers)
    out += body
    section_table = _append_sections(elf, out, place, parts)
    out[:ELF_HEADER.size] = elf.header_with(phoff=place.offset, phnum=place.phnum, **section_table)
    return bytes(out)


def _append_sections(elf: Elf, out: bytearray, place: Placement, parts: list[Part]) -> dict:
    """Append the program's section table with `parts` added (and its section-name table, which
    grows); return the ELF header fields that change. Nothing when there is no table to extend."""
    index = elf.header.shstrndx
    if not 0 < index < len(elf.sections):
        return {}
    old_names = elf.sections[index]
    names = bytearray(elf.data[old_names.offset:old_names.offset + old_names.size])
    sections = list(elf.sections)
    for part in parts:
        sections.append(Section(len(names), part.type, part.flags, place.address_of(part.offset), part.offset,
                                part.size, 0, 0, part.align, 0))
        names += part.name.encode() + b"\0"
    sections[index] = old_names._replace(offset=len(out), size=len(names))
    out += names
    out += bytes(-len(out) % 8)
    shoff = len(out)
    out += b"".join(SECTION_HEADER.pack(*s) for s in sections)
    return {"shoff": shoff, "shnum": len(sections)}


def _page_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)
