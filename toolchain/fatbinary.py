"""The format of what `mvemu hybridize` adds, both defined field by field in hvm/abi.py:

- `struct mv_config`, inside the runtime, read by mv_main: offsets relative to its own address;
- the Multiverse note (a PT_NOTE), read by tools such as `mvemu hybridize --info`: link-time
  addresses and the AeroKernel image's file offset.

An ELF note is a header (namesz, descsz, type: three u32), then the name and the descriptor, each
padded to 4 bytes. "Multiverse\\0" is 11 bytes, padded to 12, so the descriptor starts 24 bytes into
the note: 8-aligned, like its u64 fields.
"""
from __future__ import annotations

import struct
from collections import namedtuple

from hvm import abi

from .elf import PT_NOTE, Elf
from .errors import Refused

Config = namedtuple("Config", abi.FAT_CONFIG_FIELDS)
Note = namedtuple("Note", abi.FAT_NOTE_FIELDS)
CONFIG = struct.Struct("<" + "Q" * len(Config._fields))
NOTE_DESC = struct.Struct("<" + "Q" * len(Note._fields))
NOTE_HEADER = struct.Struct("<III")
NOTE_NAME = abi.FAT_NOTE_NAME.encode() + b"\0"
SIGNED_CONFIG_FIELDS = ("main_off", "image_off")
NT_GNU_BUILD_ID = 3


def pack_config(config: Config) -> bytes:
    return CONFIG.pack(*(v % (1 << 64) for v in config))     # signed offsets in two's complement


def unpack_config(data: bytes) -> Config:
    config = Config(*CONFIG.unpack(data))
    return config._replace(**{f: _signed(getattr(config, f)) for f in SIGNED_CONFIG_FIELDS})


def pack_note(note: Note) -> bytes:
    return _note(NOTE_NAME, abi.FAT_NOTE_TYPE, NOTE_DESC.pack(*note))


def pack_named_note(kind: int, desc: bytes) -> bytes:
    """Another note of owner "Multiverse" (the overrides note, overrides.py)."""
    return _note(NOTE_NAME, kind, desc)


def find_fat_note(elf: Elf) -> Note | None:
    """The Multiverse note of a fat binary; None for any other program."""
    for name, kind, desc in notes(elf):
        if name == NOTE_NAME and kind == abi.FAT_NOTE_TYPE:
            if len(desc) != NOTE_DESC.size:
                raise Refused(f"a Multiverse note of {len(desc)} bytes (expected {NOTE_DESC.size})")
            return Note(*NOTE_DESC.unpack(desc))
    return None


def build_id(elf: Elf) -> str | None:
    """The GNU build id, in hex, if the file has one."""
    return next((desc.hex() for name, kind, desc in notes(elf) if name == b"GNU\0" and kind == NT_GNU_BUILD_ID),
                None)


def notes(elf: Elf):
    """(name with its NUL, type, descriptor) of every note in the PT_NOTE segments."""
    for seg in elf.segments:
        if seg.type != PT_NOTE:
            continue
        at, end = seg.offset, seg.offset + seg.filesz
        while at + NOTE_HEADER.size <= end:
            namesz, descsz, kind = NOTE_HEADER.unpack_from(elf.data, at)
            name_at = at + NOTE_HEADER.size
            desc_at = name_at + _align4(namesz)
            if desc_at + descsz > end:
                raise Refused("malformed ELF: a note runs past the end of its segment")
            yield elf.data[name_at:name_at + namesz], kind, elf.data[desc_at:desc_at + descsz]
            at = desc_at + _align4(descsz)


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(_align4(len(b)) - len(b))  # noqa: E731
    return NOTE_HEADER.pack(len(name), len(desc), kind) + pad(name) + pad(desc)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v
