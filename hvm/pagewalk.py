"""Software walk of x86-64 4-level page tables in guest memory (for the VMM, debuggers, teaching).

The VMM needs guest-virtual accesses that are not done by a vCPU: reading an IDT gate, pushing an
interrupt frame, copying an AeroKernel console buffer. This walks the tables the way the MMU does,
including 2 MiB and 1 GiB pages.
"""
from __future__ import annotations

from .memory import PAGE_SIZE, GuestMemory

P, W, U, PS, NX = 1, 2, 4, 0x80, 1 << 63
ADDR = 0x000F_FFFF_FFFF_F000


class PageFault(Exception):
    def __init__(self, va: int):
        super().__init__(f"no mapping for {va:#x}")
        self.va = va


def translate(mem: GuestMemory, cr3: int, va: int, write: bool = False) -> int:
    """Guest-physical address of `va` under `cr3` (supervisor access); raises PageFault."""
    table = cr3 & ADDR
    q = mem.u64
    for level in (3, 2, 1, 0):
        entry = q[(table >> 3) + ((va >> (12 + 9 * level)) & 0x1FF)]
        if not entry & P or (write and not entry & W):
            raise PageFault(va)
        if level in (2, 1) and entry & PS:
            size = 1 << (12 + 9 * level)
            return (entry & ADDR & ~(size - 1)) | (va & (size - 1))
        table = entry & ADDR
    return table | (va & (PAGE_SIZE - 1))


def read(mem: GuestMemory, cr3: int, va: int, n: int) -> bytes:
    return read_via(mem, lambda v, w: translate(mem, cr3, v, w), va, n)


def write(mem: GuestMemory, cr3: int, va: int, data: bytes) -> None:
    write_via(mem, lambda v, w: translate(mem, cr3, v, w), va, data)


def read_via(mem: GuestMemory, translate_fn, va: int, n: int) -> bytes:
    """`n` bytes at `va`, page by page through `translate_fn(va, write) -> pa` (which raises
    PageFault): this module's walk, or a vCPU's own MMU (hvm/hrt.py)."""
    out = bytearray()
    while n > 0:
        chunk = min(n, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
        pa = translate_fn(va, False)
        out += mem.read(pa, chunk)
        va += chunk
        n -= chunk
    return bytes(out)


def write_via(mem: GuestMemory, translate_fn, va: int, data: bytes) -> None:
    pos = 0
    while pos < len(data):
        chunk = min(len(data) - pos, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
        pa = translate_fn(va, True)
        mem.write(pa, data[pos:pos + chunk])
        va += chunk
        pos += chunk
