"""`mvemu hybridize`: a static program in, a fat binary out (docs/hybridize.md).

The fat binary is the program, unchanged but for two things, plus one new segment:

    new segment (R+X):  program headers | Multiverse runtime | overrides | AeroKernel image (ELF) | notes
    _start:             the load of main's address now loads the runtime's mv_main
    overridden functions: their first bytes jump to their wrappers (overrides.py)
    ELF header:         e_phoff/e_phnum point to the new table

mv_main runs main in the HRT under mvemu, and simply calls it anywhere else.
"""
from __future__ import annotations

import hashlib

from hvm import abi

from . import elfedit, overrides as ov, startpatch
from .elf import ET_DYN, PF_R, PT_INTERP, PT_NOTE, SHF_ALLOC, SHF_EXECINSTR, SHT_NOTE, SHT_PROGBITS, Elf, Segment
from .errors import Refused
from .fatbinary import (CONFIG, NOTE_NAME, Config, Note, build_id, find_fat_note, notes, pack_config, pack_named_note,
                        pack_note, unpack_config)
from .pieces import Runtime

IMAGE_ALIGN = 16            # the embedded ELF file: its header wants 8
NOTE_ALIGN = 8


def hybridize(program: bytes, runtime: Runtime, image: bytes, overrides: list[ov.Override] = ()) -> bytes:
    """The fat binary made of `program` (a static x86-64 executable's bytes), the runtime and
    the AeroKernel `image` (an ELF file's bytes), with the function `overrides` applied."""
    elf = Elf(program)
    _check_static(elf)
    if find_fat_note(elf):
        raise Refused("already a fat binary (it has a Multiverse note)")
    load = startpatch.find_main_load(elf)
    plan = ov.resolve(elf, list(overrides), runtime.functions, image)

    place = elfedit.place_segment(elf, extra_headers=1)
    runtime_at = _align(place.body_offset, runtime.align)
    runtime_address = place.address_of(runtime_at)
    overrides_at = _align(runtime_at + len(runtime.code), ov.CODE_ALIGN)
    code, patches, applied = ov.generate(plan, place.address_of(overrides_at), runtime_address,
                                         runtime.functions, elf)
    image_at = _align(overrides_at + len(code), IMAGE_ALIGN)
    note_at = _align(image_at + len(image), NOTE_ALIGN)
    mv_main = runtime_address + runtime.mv_main
    config_address = runtime_address + runtime.mv_config
    config = Config(magic=abi.FAT_CONFIG_MAGIC, version=abi.FAT_VERSION, main_off=load.main - config_address,
                    image_off=place.address_of(image_at) - config_address, image_len=len(image), flags=0)
    note = pack_note(Note(version=abi.FAT_VERSION, main=load.main, runtime_entry=mv_main, config=config_address,
                          image_offset=image_at, image_len=len(image), flags=config.flags))
    if applied:
        note += pack_named_note(ov.NOTE_TYPE, ov.pack_note_desc(applied))

    body = bytearray(note_at + len(note) - place.body_offset)
    for at, content in ((runtime_at, runtime.with_config(pack_config(config))), (overrides_at, code),
                        (image_at, image), (note_at, note)):
        body[at - place.body_offset:at - place.body_offset + len(content)] = content
    patched = bytearray(program)
    startpatch.redirect(patched, load, mv_main, position_independent=elf.type == ET_DYN)
    for offset, jump in patches:
        patched[offset:offset + len(jump)] = jump
    note_address = place.address_of(note_at)
    note_header = Segment(PT_NOTE, PF_R, note_at, note_address, note_address, len(note), len(note), 4)
    parts = [elfedit.Part(".multiverse.runtime", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, runtime_at,
                          len(runtime.code), runtime.align)]
    if code:
        parts.append(elfedit.Part(".multiverse.overrides", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, overrides_at,
                                  len(code), ov.CODE_ALIGN))
    parts += [elfedit.Part(".multiverse.aerokernel", SHT_PROGBITS, SHF_ALLOC, image_at, len(image), IMAGE_ALIGN),
              elfedit.Part(".note.multiverse", SHT_NOTE, SHF_ALLOC, note_at, len(note), 4)]
    return elfedit.add_segment(elf, bytes(patched), place, bytes(body), [note_header], parts)


def applied_overrides(elf: Elf) -> list[ov.Applied]:
    """The overrides recorded in a fat binary's overrides note ([] when it has none)."""
    for name, kind, desc in notes(elf):
        if name == NOTE_NAME and kind == ov.NOTE_TYPE:
            return ov.unpack_note_desc(desc)
    return []


def describe(data: bytes) -> tuple[bool, str]:
    """(is it a fat binary, a description of what it contains) for `--info`."""
    elf = Elf(data)
    note = find_fat_note(elf)
    if note is None:
        return False, f"not a fat binary (an {elf.kind} file without a Multiverse note)"
    segment = elf.segment_at(note.config, CONFIG.size)
    image = data[note.image_offset:note.image_offset + note.image_len]
    if segment is None or not segment.offset <= note.image_offset <= segment.offset + segment.filesz - len(image):
        raise Refused("a damaged fat binary: its note points outside the new segment")
    config = unpack_config(elf.read(note.config, CONFIG.size))
    problems = _inconsistencies(note, config, segment)
    if problems:
        raise Refused(f"a damaged fat binary: {'; '.join(problems)}")
    lines = [
        f"Multiverse fat binary ({elf.kind}, format version {note.version}; addresses are link-time)",
        f"  original main       {note.main:#x}",
        f"  runtime entry       {note.runtime_entry:#x} (mv_main: __libc_start_main calls it instead of main)",
        f"  new segment         LOAD offset {segment.offset:#x} vaddr {segment.vaddr:#x} size {segment.memsz:#x} "
        f"{segment.permissions}",
        f"  program headers     {elf.header.phnum} at offset {elf.header.phoff:#x} (moved into the new segment)",
        f"  config              mv_config at {note.config:#x}: magic {config.magic:#x}, version {config.version}, "
        f"main_off {config.main_off:#x}, image_off {config.image_off:#x}, image_len {config.image_len}, "
        f"flags {config.flags:#x}",
        f"  AeroKernel image    offset {note.image_offset:#x}, {note.image_len} bytes, {_describe_image(image)}",
    ] + ov.describe(applied_overrides(elf))
    return True, "\n".join(lines)


def _check_static(elf: Elf) -> None:
    interp = next((s for s in elf.segments if s.type == PT_INTERP), None)
    if interp:
        path = elf.data[interp.offset:interp.offset + interp.filesz].rstrip(b"\0").decode(errors="replace")
        raise Refused(f"dynamically linked (it asks for {path}); hybridize works on static programs "
                      f"(-static or -static-pie)")
    if elf.type == ET_DYN and elf.entry == 0:
        raise Refused("a shared library, not a program (its entry point is 0)")


def _inconsistencies(note: Note, config: Config, segment: Segment) -> list[str]:
    """How the note and mv_config disagree (they are written together, so only damage does that)."""
    problems = []
    if (config.magic, config.version, note.version) != (abi.FAT_CONFIG_MAGIC, abi.FAT_VERSION, abi.FAT_VERSION):
        problems.append(f"mv_config's magic {config.magic:#x} or the versions ({config.version}, {note.version}) "
                        f"are not this toolchain's ({abi.FAT_VERSION})")
    if note.config + config.main_off != note.main:
        problems.append("mv_config.main_off does not lead to the original main")
    if note.config + config.image_off != segment.vaddr + (note.image_offset - segment.offset):
        problems.append("mv_config.image_off does not lead to the image")
    if config.image_len != note.image_len:
        problems.append("the image's length disagrees")
    return problems


def _describe_image(image: bytes) -> str:
    try:
        elf = Elf(image)
    except Refused as e:
        return f"not a usable ELF ({e})"
    low, high = min(s.vaddr for s in elf.loads), max(s.end for s in elf.loads)
    return (f"entry {elf.entry:#x}, {len(elf.loads)} loadable segments at {low:#x}-{high:#x}, "
            f"build id {build_id(elf) or 'none'}, sha256 {hashlib.sha256(image).hexdigest()[:16]}")


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a
