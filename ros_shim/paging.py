"""Physical frames and 4-level x86-64 page tables, kept in guest-physical memory.

The tables are real: Unicorn's MMU walks exactly what this module writes. Frames are reference
counted so that address spaces can share them (copy-on-write after fork, the shared zero page).
"""
from __future__ import annotations

from array import array

from hvm.memory import PAGE_SHIFT, PAGE_SIZE, GuestMemory

PTE_P = 1 << 0
PTE_W = 1 << 1
PTE_U = 1 << 2
PTE_A = 1 << 5
PTE_D = 1 << 6
PTE_SOFT_NONE = 1 << 9      # software bit: a frame is held but the page is PROT_NONE (P=0)
PTE_SOFT_COW = 1 << 10      # software bit: writable in the VMA, read-only here because shared
PTE_NX = 1 << 63
ADDR_MASK = 0x000F_FFFF_FFFF_F000
_TABLE_FLAGS = PTE_P | PTE_W | PTE_U


class OutOfMemory(Exception):
    """No free guest-physical frame is left in the partition."""


class FrameAllocator:
    """Hands out 4 KiB frames of one partition, with a reference count per frame."""

    def __init__(self, memory: GuestMemory, base: int, end: int):
        self.memory = memory
        self.base, self.end = base, end
        self._next = base                 # frames above this were never used: already zero
        self.free_list: list[int] = []
        self.refs = array("I", bytes(4 * ((end - base) >> PAGE_SHIFT)))

    def alloc(self, zero: bool = True) -> int:
        if self.free_list:
            pa = self.free_list.pop()
            if zero:
                self.memory.zero(pa, PAGE_SIZE)
        elif self._next < self.end:
            pa = self._next
            self._next += PAGE_SIZE
        else:
            raise OutOfMemory()
        self.refs[(pa - self.base) >> PAGE_SHIFT] = 1
        return pa

    def get(self, pa: int) -> None:
        self.refs[(pa - self.base) >> PAGE_SHIFT] += 1

    def put(self, pa: int) -> bool:
        """Drop a reference; True if that freed the frame."""
        i = (pa - self.base) >> PAGE_SHIFT
        self.refs[i] -= 1
        if self.refs[i] == 0:
            self.free_list.append(pa)
            return True
        return False

    def refcount(self, pa: int) -> int:
        return self.refs[(pa - self.base) >> PAGE_SHIFT]

    @property
    def used(self) -> int:
        return ((self._next - self.base) >> PAGE_SHIFT) - len(self.free_list)

    @property
    def total(self) -> int:
        return (self.end - self.base) >> PAGE_SHIFT


def _index(va: int, level: int) -> int:
    return (va >> (12 + 9 * level)) & 0x1FF


class PageTable:
    """One address space: a PML4 and the tables below it, in guest-physical memory."""

    def __init__(self, memory: GuestMemory, frames: FrameAllocator, kernel_pml4e: int = 0):
        self.mem = memory
        self.frames = frames
        self.pml4 = frames.alloc()
        if kernel_pml4e:
            memory.write_u64(self.pml4 + 8 * 511, kernel_pml4e)

    def pte_addr(self, va: int, create: bool = False) -> int | None:
        """Physical address of the level-1 entry for `va`, creating tables on the way if asked."""
        u64 = self.mem.u64                       # (entries as words: u64[pa >> 3])
        table = self.pml4
        for shift in (39, 30, 21):
            slot = (table >> 3) + ((va >> shift) & 0x1FF)
            entry = u64[slot]
            if not entry & PTE_P:
                if not create:
                    return None
                table = self.frames.alloc()
                u64[slot] = table | _TABLE_FLAGS
            else:
                table = entry & ADDR_MASK
        return table + ((va >> 9) & 0xFF8)

    def pte(self, va: int) -> int:
        slot = self.pte_addr(va)
        return self.mem.read_u64(slot) if slot is not None else 0

    def set_pte(self, va: int, value: int) -> None:
        self.mem.write_u64(self.pte_addr(va, create=True), value)

    def translate(self, va: int, write: bool = False) -> int | None:
        """Physical address of `va` if a user access of that kind would succeed without a fault.
        (The walk of pte_addr and pte in one function: every copy to or from user memory does it.)"""
        u64 = self.mem.u64
        entry = u64[(self.pml4 >> 3) + ((va >> 39) & 0x1FF)]
        if not entry & PTE_P:
            return None
        entry = u64[((entry & ADDR_MASK) >> 3) + ((va >> 30) & 0x1FF)]
        if not entry & PTE_P:
            return None
        entry = u64[((entry & ADDR_MASK) >> 3) + ((va >> 21) & 0x1FF)]
        if not entry & PTE_P:
            return None
        pte = u64[((entry & ADDR_MASK) >> 3) + ((va >> 12) & 0x1FF)]
        if not pte & PTE_P or (write and not pte & PTE_W):
            return None
        return (pte & ADDR_MASK) | (va & (PAGE_SIZE - 1))

    def _entries(self, table: int) -> array:
        return array("Q", self.mem.read(table, PAGE_SIZE))

    def level1_tables(self, lo: int = 0, hi: int = 1 << 47):
        """Yield (virtual base, physical address) of every page table (level 1) covering [lo, hi).
        Only the entries of each level that cover the range are looked at."""
        if hi <= lo:
            return
        last = hi - 1

        def span(level: int, prefix: int) -> range:
            shift = 12 + 9 * level
            first = max(lo, prefix) >> shift & 0x1FF if lo > prefix else 0
            end = (last >> shift & 0x1FF) + 1 if last < prefix + (1 << (shift + 9)) else 512
            return range(first, end)

        pml4 = self._entries(self.pml4)
        for i4 in span(3, 0):
            if i4 >= 256 or not pml4[i4] & PTE_P:
                continue
            b4 = i4 << 39
            pdpt = self._entries(pml4[i4] & ADDR_MASK)
            for i3 in span(2, b4):
                if not pdpt[i3] & PTE_P:
                    continue
                b3 = b4 | (i3 << 30)
                pd = self._entries(pdpt[i3] & ADDR_MASK)
                for i2 in span(1, b3):
                    if pd[i2] & PTE_P:
                        yield b3 | (i2 << 21), pd[i2] & ADDR_MASK

    def table_for(self, va: int) -> int:
        """Physical address of the page table covering `va`, creating the levels above it."""
        return self.pte_addr(va, create=True) - 8 * _index(va, 0)

    def walk(self, va: int) -> list[tuple[int, int, int]]:
        """Each level's (level, entry address, entry) for `va`, top down (for debuggers and teaching)."""
        out, table = [], self.pml4
        for level in (3, 2, 1, 0):
            slot = table + 8 * _index(va, level)
            entry = self.mem.read_u64(slot)
            out.append((level + 1, slot, entry))
            if not entry & PTE_P and level:
                break
            table = entry & ADDR_MASK
        return out

    def mapped_pages(self, start: int, end: int):
        """Yield (va, pte address, pte) for every non-empty level-1 entry in [start, end)."""
        mem = self.mem
        va = start
        while va < end:
            slot = self.pte_addr(va)
            if slot is None:   # skip the whole missing table at the lowest level that is missing
                va = self._next_table_boundary(va)
                continue
            table_end = min(end, (va | 0x1F_FFFF) + 1)
            while va < table_end:
                entry = mem.read_u64(slot)
                if entry:
                    yield va, slot, entry
                va += PAGE_SIZE
                slot += 8
        return

    def _next_table_boundary(self, va: int) -> int:
        table = self.pml4
        for level in (3, 2, 1):
            entry = self.mem.read_u64(table + 8 * _index(va, level))
            if not entry & PTE_P:
                span = 1 << (12 + 9 * level)
                return (va & ~(span - 1)) + span
            table = entry & ADDR_MASK
        return (va | 0x1F_FFFF) + 1

    def release_user(self) -> None:
        """Free every table of the lower half (the frames they map are released by the caller)."""
        def free_level(table: int, level: int, count: int) -> None:
            for i, entry in enumerate(self._entries(table)[:count]):
                if entry & PTE_P:
                    if level > 1:               # the entries of a page table map data, not tables
                        free_level(entry & ADDR_MASK, level - 1, 512)
                    self.frames.put(entry & ADDR_MASK)
            self.mem.zero(table, 8 * count)
        free_level(self.pml4, 3, 256)

    def destroy(self) -> None:
        self.release_user()
        self.frames.put(self.pml4)
