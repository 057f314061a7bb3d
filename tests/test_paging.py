"""Unit tests of ros_shim.paging (frames, 4-level page tables) and ros_shim.mm (address spaces:
VMAs, demand paging, kernel access to user memory). No vCPU, no subprocess."""
from __future__ import annotations

import pytest

from hvm.memory import PAGE_SIZE, GuestMemory
from ros_shim import layout
from ros_shim.mm import (MAP_ANONYMOUS, MAP_PRIVATE, PF_I, PF_U, PF_W, PROT_EXEC, PROT_READ,
                         PROT_WRITE, AddressSpace, BytesBacking, TlbHooks)
from ros_shim.paging import (ADDR_MASK, PTE_NX, PTE_P, PTE_U, PTE_W, FrameAllocator, OutOfMemory,
                             PageTable)

MEM_SIZE = 8 << 20
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


@pytest.fixture
def mem():
    return GuestMemory(MEM_SIZE)


@pytest.fixture
def frames(mem):
    return FrameAllocator(mem, 0, MEM_SIZE)


class FlushCounter:
    def __init__(self):
        self.tlb = 0
        self.code = 0

    def hooks(self) -> TlbHooks:
        return TlbHooks(flush_tlb=lambda mm=None: setattr(self, "tlb", self.tlb + 1),
                        flush_code=lambda mm=None: setattr(self, "code", self.code + 1))


@pytest.fixture
def flushes():
    return FlushCounter()


@pytest.fixture
def mm(mem, frames, flushes):
    return AddressSpace(mem, frames, 0, flushes.hooks())


# -- FrameAllocator ------------------------------------------------------------------------------
def test_frames_are_distinct_aligned_and_inside_the_partition(mem):
    fa = FrameAllocator(mem, 1 << 20, 2 << 20)
    got = [fa.alloc() for _ in range(256)]
    assert len(set(got)) == 256
    assert all(pa % PAGE_SIZE == 0 and (1 << 20) <= pa < (2 << 20) for pa in got)
    assert fa.used == 256 and fa.total == 256
    with pytest.raises(OutOfMemory):
        fa.alloc()


def test_frame_refcounts(frames):
    pa = frames.alloc()
    assert frames.refcount(pa) == 1
    frames.get(pa)
    assert frames.refcount(pa) == 2
    frames.put(pa)
    assert frames.refcount(pa) == 1
    used = frames.used
    frames.put(pa)
    assert frames.refcount(pa) == 0
    assert frames.used == used - 1


def test_freed_frame_is_reused_and_zeroed(mem, frames):
    pa = frames.alloc()
    mem.write(pa, b"\xAA" * PAGE_SIZE)
    frames.put(pa)
    again = frames.alloc()
    assert again == pa, "a freed frame should be handed out again before untouched ones"
    assert mem.read(again, PAGE_SIZE) == bytes(PAGE_SIZE), "a reused frame must come back zeroed"


def test_fresh_frames_are_zero(mem, frames):
    pa = frames.alloc()
    assert mem.read(pa, PAGE_SIZE) == bytes(PAGE_SIZE)


def test_out_of_memory_then_free_allows_alloc(mem):
    fa = FrameAllocator(mem, 0, 4 * PAGE_SIZE)
    got = [fa.alloc() for _ in range(4)]
    with pytest.raises(OutOfMemory):
        fa.alloc()
    fa.put(got[2])
    assert fa.alloc() == got[2]


# -- PageTable -----------------------------------------------------------------------------------
def test_map_translate(mem, frames):
    pt = PageTable(mem, frames)
    pa = frames.alloc()
    va = 0x7FFF_1234_5000
    assert pt.translate(va) is None
    pt.set_pte(va, pa | PTE_P | PTE_U | PTE_NX)
    assert pt.translate(va + 0x123) == pa + 0x123
    assert pt.translate(va, write=True) is None, "read-only page must not translate for a write"
    pt.set_pte(va, pa | PTE_P | PTE_W | PTE_U)
    assert pt.translate(va + 0xFFF, write=True) == pa + 0xFFF
    assert pt.translate(va + PAGE_SIZE) is None
    pt.set_pte(va, pa)                 # not present
    assert pt.translate(va) is None


def test_walk_shows_four_levels(mem, frames):
    pt = PageTable(mem, frames)
    pa = frames.alloc()
    va = 0x0000_5555_5555_4000
    pt.set_pte(va, pa | PTE_P | PTE_W | PTE_U)
    levels = pt.walk(va)
    assert [lvl for lvl, _, _ in levels] == [4, 3, 2, 1]
    assert levels[0][1] == pt.pml4 + 8 * ((va >> 39) & 0x1FF)
    for (_, _, entry), (_, next_slot, _) in zip(levels, levels[1:]):
        assert entry & PTE_P
        assert next_slot & ~0xFFF == entry & ADDR_MASK
    assert levels[-1][2] & ADDR_MASK == pa
    # an unmapped address stops at the first missing level
    short = pt.walk(0x0000_7000_0000_0000)
    assert len(short) < 4 and not short[-1][2] & PTE_P


def test_page_table_memory_is_what_the_mmu_reads(mem, frames):
    """The tables live in guest-physical memory: walk them by hand."""
    pt = PageTable(mem, frames)
    pa = frames.alloc()
    va = 0x40_3000
    pt.set_pte(va, pa | PTE_P | PTE_U)
    table = pt.pml4
    for level in (3, 2, 1):
        entry = mem.read_u64(table + 8 * ((va >> (12 + 9 * level)) & 0x1FF))
        assert entry & (PTE_P | PTE_W | PTE_U) == PTE_P | PTE_W | PTE_U
        table = entry & ADDR_MASK
    assert mem.read_u64(table + 8 * ((va >> 12) & 0x1FF)) == pa | PTE_P | PTE_U


def test_mapped_pages_skips_missing_tables(mem, frames):
    pt = PageTable(mem, frames)
    vas = [0x40_0000, 0x40_1000, 0x60_0000, 0x7FFF_FFFF_E000]
    for va in vas:
        pt.set_pte(va, frames.alloc() | PTE_P | PTE_U)
    found = [va for va, _slot, _pte in pt.mapped_pages(0, layout.USER_TOP)]
    assert found == vas
    assert [va for va, _, _ in pt.mapped_pages(0x40_1000, 0x60_0000)] == [0x40_1000]
    for va, slot, pte in pt.mapped_pages(0, layout.USER_TOP):
        assert mem.read_u64(slot) == pte


def test_release_user_frees_every_table(mem, frames):
    pt = PageTable(mem, frames)
    baseline = frames.used            # the PML4
    data = []
    for va in (0x40_0000, 0x7FFF_FFFF_E000, 0x1_0000_0000):
        pa = frames.alloc()
        data.append(pa)
        pt.set_pte(va, pa | PTE_P | PTE_U)
    for pa in data:
        frames.put(pa)                # the caller releases the data frames
    assert frames.used > baseline     # the tables are still there
    pt.release_user()
    assert frames.used == baseline
    assert list(pt.mapped_pages(0, layout.USER_TOP)) == []
    pt.destroy()
    assert frames.used == baseline - 1


def test_kernel_half_is_preserved(mem, frames):
    kernel_entry = frames.alloc() | PTE_P | PTE_W
    pt = PageTable(mem, frames, kernel_entry)
    assert mem.read_u64(pt.pml4 + 8 * 511) == kernel_entry
    pt.set_pte(0x40_0000, frames.alloc() | PTE_P | PTE_U)
    pt.release_user()
    assert mem.read_u64(pt.pml4 + 8 * 511) == kernel_entry


# -- AddressSpace: VMAs ---------------------------------------------------------------------------
def vma_layout(mm):
    return [(v.start, v.end, v.prot) for v in mm.vmas]


def test_map_find_overlapping(mm):
    a = mm.map(0x10_0000, 0x10_4000, RW, ANON)
    mm.map(0x20_0000, 0x20_1000, PROT_READ, ANON)
    assert mm.find(0x10_0000) is a and mm.find(0x10_3FFF) is a
    assert mm.find(0x10_4000) is None and mm.find(0xFFFFF) is None
    assert [v.start for v in mm.overlapping(0x10_3000, 0x20_0001)] == [0x10_0000, 0x20_0000]
    assert mm.is_mapped(0x10_0000, 0x10_4000)
    assert not mm.is_mapped(0x10_0000, 0x10_5000)


def test_map_over_existing_replaces(mm):
    mm.map(0x10_0000, 0x10_4000, RW, ANON)
    mm.map(0x10_1000, 0x10_2000, PROT_READ, ANON)
    assert vma_layout(mm) == [(0x10_0000, 0x10_1000, RW), (0x10_1000, 0x10_2000, PROT_READ),
                              (0x10_2000, 0x10_4000, RW)]


def test_unmap_middle_splits_and_frees_pages(mm, frames, flushes):
    mm.map(0x10_0000, 0x10_4000, RW, ANON)
    for i in range(4):
        assert mm.write(0x10_0000 + i * PAGE_SIZE, b"page%d" % i)
    used = frames.used
    tlb = flushes.tlb
    mm.unmap(0x10_1000, 0x10_3000)
    assert vma_layout(mm) == [(0x10_0000, 0x10_1000, RW), (0x10_3000, 0x10_4000, RW)]
    assert frames.used == used - 2
    assert flushes.tlb > tlb, "unmapping resident pages must flush the TLB"
    assert mm.read(0x10_0000, 5) == b"page0" and mm.read(0x10_3000, 5) == b"page3"
    assert mm.read(0x10_1000, 1) is None
    assert mm.pt.translate(0x10_1000) is None


def test_protect_splits_vmas_and_updates_resident_ptes(mm, flushes):
    mm.map(0x10_0000, 0x10_4000, RW, ANON)
    assert mm.write(0x10_1000, b"resident")
    mm.protect(0x10_1000, 0x10_2000, PROT_READ)
    assert vma_layout(mm) == [(0x10_0000, 0x10_1000, RW), (0x10_1000, 0x10_2000, PROT_READ),
                              (0x10_2000, 0x10_4000, RW)]
    assert mm.pt.translate(0x10_1000) is not None
    assert mm.pt.translate(0x10_1000, write=True) is None, "resident PTE must lose its W bit"
    assert mm.read(0x10_1000, 8) == b"resident"
    assert not mm.write(0x10_1000, b"x"), "the kernel must not write a read-only user page for the user"
    mm.protect(0x10_1000, 0x10_2000, RW)
    assert mm.write(0x10_1000, b"again")
    assert mm.read(0x10_1000, 8) == b"againent"


def test_protect_none_then_back(mm):
    mm.map(0x10_0000, 0x10_2000, RW, ANON)
    assert mm.write(0x10_0000, b"keep me")
    mm.protect(0x10_0000, 0x10_2000, 0)
    assert mm.read(0x10_0000, 1) is None
    assert not mm.fault(0x10_0000, PF_U)
    mm.protect(0x10_0000, 0x10_2000, PROT_READ)
    assert mm.read(0x10_0000, 7) == b"keep me", "PROT_NONE must keep the page's contents"


def test_protect_exec_removal_flushes_code(mm, flushes):
    mm.map(0x40_0000, 0x40_2000, PROT_READ | PROT_EXEC, MAP_PRIVATE)
    code = flushes.code
    mm.protect(0x40_0000, 0x40_1000, PROT_READ)
    assert flushes.code > code


def test_find_free_is_top_down(mm):
    top = mm.mmap_base
    a = mm.find_free(0x3000)
    assert a == top - 0x3000
    mm.map(a, a + 0x3000, RW, ANON)
    b = mm.find_free(0x1000)
    assert b == a - 0x1000
    mm.map(b, b + 0x1000, RW, ANON)
    mm.unmap(a, a + 0x1000)              # a one-page hole between b and the rest of a
    assert mm.find_free(0x1000) == a, "a hole big enough is found again"
    assert mm.find_free(0x2000) == b - 0x2000, "a hole too small is skipped"


def test_find_free_honours_a_free_hint(mm):
    assert mm.find_free(0x2000, 0x1234_0000) == 0x1234_0000
    mm.map(0x1234_0000, 0x1234_2000, RW, ANON)
    other = mm.find_free(0x2000, 0x1234_1000)
    assert other != 0x1234_1000 and not mm.overlapping(other, other + 0x2000)


def test_find_free_when_full(mem, frames):
    mm = AddressSpace(mem, frames, 0, TlbHooks())
    mm.map(layout.MIN_MMAP_ADDR, mm.mmap_base, RW, ANON)
    assert mm.find_free(PAGE_SIZE) is None


# -- AddressSpace: demand paging ------------------------------------------------------------------
def test_demand_fault_fills_from_backing_with_zero_tail(mm):
    data = bytes(range(256)) * 24 + b"TAIL"           # 6148 bytes: 1.5 pages
    backing = BytesBacking(data, len(data))
    mm.map(0x40_0000, 0x40_3000, PROT_READ, MAP_PRIVATE, backing, 0)
    assert mm.pt.translate(0x40_0000) is None, "nothing is resident before the first touch"
    assert mm.fault(0x40_0010, PF_U)
    assert mm.pt.translate(0x40_1000) is None, "a fault pages in one page only"
    assert mm.read(0x40_0000, PAGE_SIZE) == data[:PAGE_SIZE]
    page1 = mm.read(0x40_1000, PAGE_SIZE)
    assert page1[:len(data) - PAGE_SIZE] == data[PAGE_SIZE:]
    assert page1[len(data) - PAGE_SIZE:] == bytes(2 * PAGE_SIZE - len(data))
    assert mm.read(0x40_2000, PAGE_SIZE) == bytes(PAGE_SIZE), "past the backing: zero (bss)"


def test_backing_limit_and_offset(mm):
    """A segment whose file part ends mid-page (filesz < memsz): bytes past `limit` are zero."""
    data = b"A" * 100 + b"B" * 100 + b"C" * PAGE_SIZE
    mm.map(0x60_0000, 0x60_1000, RW, MAP_PRIVATE, BytesBacking(data, 150), 50)
    assert mm.read(0x60_0000, 120) == b"A" * 50 + b"B" * 50 + bytes(20)


def test_private_file_write_does_not_touch_backing(mm):
    data = bytearray(b"original" + bytes(PAGE_SIZE - 8))
    mm.map(0x60_0000, 0x60_1000, RW, MAP_PRIVATE, BytesBacking(bytes(data), len(data)), 0)
    assert mm.write(0x60_0000, b"changed!")
    assert mm.read(0x60_0000, 8) == b"changed!"
    assert bytes(data[:8]) == b"original"


def test_anonymous_memory_reads_zero_and_keeps_writes(mm):
    mm.map(0x10_0000, 0x10_2000, RW, ANON)
    assert mm.read(0x10_0000, 2 * PAGE_SIZE) == bytes(2 * PAGE_SIZE)
    assert mm.write(0x10_0FFE, b"xyzw")
    assert mm.read(0x10_0000, 2 * PAGE_SIZE) == bytes(0xFFE) + b"xyzw" + bytes(PAGE_SIZE - 2)


def test_fault_refusals(mm):
    mm.map(0x10_0000, 0x10_1000, PROT_READ, ANON)
    mm.map(0x20_0000, 0x20_1000, RW, ANON)
    mm.map(0x30_0000, 0x30_1000, 0, ANON)
    mm.map(0x40_0000, 0x40_1000, PROT_READ | PROT_EXEC, MAP_PRIVATE)
    assert not mm.fault(0x10_0000, PF_U | PF_W), "write to a read-only VMA must be refused"
    assert mm.fault(0x10_0000, PF_U), "read of a read-only VMA pages in"
    assert not mm.fault(0x20_0000, PF_U | PF_I), "instruction fetch from a non-exec VMA"
    assert not mm.fault(0x30_0000, PF_U), "PROT_NONE"
    assert not mm.fault(0x50_0000, PF_U), "no VMA at all"
    assert not mm.fault(0x0, PF_U | PF_W)
    assert mm.fault(0x40_0000, PF_U | PF_I)


def test_fault_after_write_protection_violation_keeps_page(mm):
    """A read fault then a write fault on a read-only VMA: the page stays mapped read-only."""
    mm.map(0x10_0000, 0x10_1000, PROT_READ, ANON)
    assert mm.fault(0x10_0000, PF_U)
    assert not mm.fault(0x10_0000, PF_U | PF_W | 1)
    assert mm.pt.translate(0x10_0000) is not None
    assert mm.pt.translate(0x10_0000, write=True) is None


def test_resident_pte_flags_follow_prot(mm):
    mm.map(0x10_0000, 0x10_1000, RW, ANON)
    mm.map(0x40_0000, 0x40_1000, PROT_READ | PROT_EXEC, MAP_PRIVATE, BytesBacking(b"\xc3", 1), 0)
    assert mm.write(0x10_0000, b"x")
    assert mm.fault(0x40_0000, PF_U | PF_I)
    data_pte, code_pte = mm.pt.pte(0x10_0000), mm.pt.pte(0x40_0000)
    assert data_pte & (PTE_P | PTE_U | PTE_W | PTE_NX) == PTE_P | PTE_U | PTE_W | PTE_NX
    assert code_pte & (PTE_P | PTE_U) == PTE_P | PTE_U
    assert not code_pte & PTE_W and not code_pte & PTE_NX


# -- kernel access to user memory -------------------------------------------------------------------
def test_read_write_across_page_boundaries(mm):
    mm.map(0x10_0000, 0x10_5000, RW, ANON)
    blob = bytes((i * 31) & 0xFF for i in range(3 * PAGE_SIZE + 100))
    assert mm.write(0x10_0F00, blob)
    assert mm.read(0x10_0F00, len(blob)) == blob
    assert mm.read(0x10_0EFF, 1) == b"\0"


def test_access_fails_at_the_end_of_a_mapping(mm):
    mm.map(0x10_0000, 0x10_2000, RW, ANON)
    assert mm.read(0x10_1FF0, 0x20) is None
    assert not mm.write(0x10_1FF0, b"z" * 0x20)    # (the mapped part may be written, as copy_to_user does)
    assert mm.read(0x10_1FF0, 0x10) is not None


def test_user_buffers_are_views_of_guest_memory(mm):
    mm.map(0x10_0000, 0x10_3000, RW, ANON)
    views = mm.user_buffers(0x10_0FF0, 0x30, True)
    assert [len(v) for v in views] == [0x10, 0x20]
    views[0][:] = b"a" * 0x10
    views[1][:] = b"b" * 0x20
    assert mm.read(0x10_0FF0, 0x30) == b"a" * 0x10 + b"b" * 0x20
    assert mm.user_buffers(0x10_2FF0, 0x20, False) is None


def test_read_cstr(mm):
    mm.map(0x10_0000, 0x10_2000, RW, ANON)
    assert mm.write(0x10_0FFA, b"across\0tail")
    assert mm.read_cstr(0x10_0FFA) == b"across"
    assert mm.read_cstr(0x10_0FFA, limit=3) == b"acr", "no NUL within the limit: truncated to the limit"
    assert mm.write(0x10_1FFC, b"abcd")              # runs into the end of the mapping
    assert mm.read_cstr(0x10_1FFC) is None
    assert mm.read_cstr(0x50_0000) is None
    assert mm.read_cstr(0x10_0100) == b""


def test_destroy_releases_everything(mem, frames):
    baseline = frames.used
    mm = AddressSpace(mem, frames, 0, TlbHooks())
    mm.map(0x10_0000, 0x10_8000, RW, ANON)
    mm.map(0x7FFF_0000_0000, 0x7FFF_0001_0000, RW, ANON)
    for va in range(0x10_0000, 0x10_8000, PAGE_SIZE):
        assert mm.write(va, b"x")
    assert mm.write(0x7FFF_0000_F000, b"y")
    assert frames.used > baseline
    mm.destroy()
    assert frames.used == baseline
