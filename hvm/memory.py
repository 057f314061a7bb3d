"""Guest-physical memory: one host buffer, shared by every vCPU through `mem_map_ptr`.

The buffer is an anonymous host mapping, so untouched guest RAM costs no host memory. Python code
(the ROS kernel model, the VMM) reads and writes it directly through a memoryview: no copy through
Unicorn, no per-access hook. Partitions (ROS, HRT) are ranges of this one buffer.
"""
from __future__ import annotations

import ctypes
import mmap
import struct
from dataclasses import dataclass

PAGE_SIZE = 4096
PAGE_SHIFT = 12

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class Partition:
    """A named range [base, base + size) of guest-physical memory."""
    name: str
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size

    def __contains__(self, pa: int) -> bool:
        return self.base <= pa < self.end


class GuestMemory:
    """Guest-physical RAM. Addresses are guest-physical; all accessors are bounds-checked by Python."""

    def __init__(self, size: int):
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"guest memory size must be a positive multiple of {PAGE_SIZE}")
        self.size = size
        self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self._map)
        self.u64 = self.view.cast("Q")       # aligned 64-bit words: u64[pa >> 3] (page-table entries)
        self.host_address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        self.partitions: dict[str, Partition] = {}

    def add_partition(self, name: str, base: int, size: int) -> Partition:
        if base < 0 or base + size > self.size or base % PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"partition {name} [{base:#x}, {base + size:#x}) is not inside guest memory")
        part = Partition(name, base, size)
        self.partitions[name] = part
        return part

    # -- byte access ----------------------------------------------------------------------------
    def read(self, pa: int, n: int) -> bytes:
        return self._map[pa:pa + n]

    def write(self, pa: int, data) -> None:
        self.view[pa:pa + len(data)] = data

    def zero(self, pa: int, n: int) -> None:
        self.view[pa:pa + n] = bytes(n)

    def copy(self, dst: int, src: int, n: int) -> None:
        self._map.move(dst, src, n)

    def read_u64(self, pa: int) -> int:
        return _U64.unpack_from(self._map, pa)[0]

    def write_u64(self, pa: int, value: int) -> None:
        _U64.pack_into(self._map, pa, value)

    def read_u32(self, pa: int) -> int:
        return _U32.unpack_from(self._map, pa)[0]

    def write_u32(self, pa: int, value: int) -> None:
        _U32.pack_into(self._map, pa, value)
