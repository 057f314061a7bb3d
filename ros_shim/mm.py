"""A process's address space: VMAs over a page table, demand paging, mmap/munmap/mprotect/brk.

Pages are filled only when first touched (a #PF exit): from a file backing, or zero. The page
table holds what is resident; the VMA list says what is allowed.
"""
from __future__ import annotations

import bisect
import os
import weakref
from array import array
from dataclasses import dataclass, field, replace

from hvm.memory import PAGE_SIZE, GuestMemory

from . import layout
from .paging import (ADDR_MASK, PTE_NX, PTE_P, PTE_SOFT_COW, PTE_SOFT_NONE, PTE_U, PTE_W,
                     FrameAllocator, PageTable)

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_GROWSDOWN, MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x100, 0x4000, 0x100000

# #PF error-code bits
PF_P, PF_W, PF_U, PF_I = 1, 2, 4, 16


# PTE_W in each of a page table's 512 entries, for whole-table updates (PTE_SOFT_COW = PTE_W << 9)
_W_EVERY_ENTRY = int.from_bytes(PTE_W.to_bytes(8, "little") * 512, "little")
assert PTE_SOFT_COW == PTE_W << 9


def page_down(x: int) -> int:
    return x & ~(PAGE_SIZE - 1)


def page_up(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


class Backing:
    """Where a VMA's initial page contents come from."""

    def read(self, offset: int, n: int) -> bytes:
        raise NotImplementedError


@dataclass(eq=False)
class BytesBacking(Backing):
    """An in-memory image (an ELF file): bytes past `limit` read as zero (a segment's bss)."""
    data: bytes
    limit: int

    def read(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.limit)
        return self.data[offset:end] if end > offset else b""


class SharedPages:
    """The frames of a MAP_SHARED mapping, by page offset: every process mapping it (after fork)
    finds the same frame, as with Linux's page cache / shmem."""

    def __init__(self):
        self.pages: dict[int, int] = {}
        self.frames: FrameAllocator | None = None

    def __del__(self):
        if self.frames is not None:
            for pa in self.pages.values():
                self.frames.put(pa)

    def frame(self, offset: int, frames: "FrameAllocator", fill) -> int:
        self.frames = frames
        pa = self.pages.get(offset)
        if pa is None:
            pa = frames.alloc(zero=False)
            fill(pa)
            self.pages[offset] = pa       # the cache holds one reference
        frames.get(pa)                    # and the new mapping another
        return pa


_FILE_PAGE_CACHES: "weakref.WeakValueDictionary[tuple[int, int], SharedPages]" = weakref.WeakValueDictionary()


@dataclass(eq=False)
class AnonBacking(Backing):
    """MAP_SHARED|MAP_ANONYMOUS memory: zero-filled, shared through its page cache."""
    shared: SharedPages = field(default_factory=SharedPages)

    def read(self, offset: int, n: int) -> bytes:
        return b""


@dataclass(eq=False)
class FileBacking(Backing):
    """An open host file (mmap of a guest file descriptor). Holds its own duplicate of the fd."""
    fd: int
    writable: bool = False            # opened for writing: shared pages go back to the file
    shared: SharedPages = None

    def __post_init__(self):
        # One page cache per file (device, inode), as Linux has: every MAP_SHARED mapping of the
        # file, through any descriptor, in any process, meets the same frames.
        st = os.fstat(self.fd)
        key = (st.st_dev, st.st_ino)
        cache = _FILE_PAGE_CACHES.get(key)
        if cache is None:
            cache = _FILE_PAGE_CACHES[key] = SharedPages()
        self.shared = cache

    def read(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def write_back(self, offset: int, data) -> None:
        """Store a page of a shared mapping into the file (never past its end, as Linux)."""
        try:
            size = os.fstat(self.fd).st_size
            if offset < size:
                os.pwrite(self.fd, bytes(data[:size - offset]), offset)
        except OSError:
            pass          # the file went away or shrank; Linux drops such pages too

    def __del__(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


@dataclass
class Vma:
    start: int
    end: int
    prot: int
    flags: int
    backing: Backing | None = None
    offset: int = 0                  # backing offset of `start`
    name: str = ""
    may_write: bool = True           # False for a shared mapping of a file not open for writing

    def split_at(self, addr: int) -> tuple["Vma", "Vma"]:
        left = replace(self, end=addr)
        right = replace(self, start=addr, offset=self.offset + (addr - self.start))
        return left, right


def pte_flags(prot: int) -> int:
    """PTE bits for a present user page with protection `prot` (NX unless executable)."""
    flags = PTE_P | PTE_U
    if prot & PROT_WRITE:
        flags |= PTE_W
    if not prot & PROT_EXEC:
        flags |= PTE_NX
    return flags


@dataclass
class TlbHooks:
    """What the address space must tell the vCPUs when it changes a mapping they may cache."""
    flush_tlb: callable = lambda mm=None: None
    # Unicorn can only drop translated code by physical range or all at once; frames of an
    # executable mapping are not contiguous, so when one goes away we drop all translated code.
    flush_code: callable = lambda mm=None: None
    released: callable = lambda mm: None        # the address space was destroyed


class AddressSpace:
    def __init__(self, memory: GuestMemory, frames: FrameAllocator, kernel_pml4e: int, tlb: TlbHooks,
                 zero_page: int = 0):
        self.mem = memory
        self.frames = frames
        self.kernel_pml4e = kernel_pml4e
        self.zero_page = zero_page          # shared read-only frame for untouched anonymous pages
        self.users = 1                      # processes sharing this address space (vfork, CLONE_VM)
        self.pt = PageTable(memory, frames, kernel_pml4e)
        self.tlb = tlb
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.brk_start = self.brk = 0
        self.mmap_base = layout.MMAP_BASE
        self._remembered: dict[int, int] = {}  # kernel_page's answers until the next TLB flush
        self._words: dict[int, tuple[int, ...]] = {}   # kernel_words' answers, likewise

    @property
    def cr3(self) -> int:
        return self.pt.pml4

    # -- VMA bookkeeping --------------------------------------------------------------------------
    def find(self, va: int) -> Vma | None:
        i = bisect.bisect_right(self._starts, va) - 1
        if i >= 0 and va < self.vmas[i].end:
            return self.vmas[i]
        return None

    def _insert(self, vma: Vma) -> None:
        i = bisect.bisect_left(self._starts, vma.start)
        self.vmas.insert(i, vma)
        self._starts.insert(i, vma.start)

    def overlapping(self, start: int, end: int) -> list[Vma]:
        return [v for v in self.vmas if v.start < end and v.end > start]

    def _carve(self, start: int, end: int) -> list[Vma]:
        """Split VMAs at start and end; remove and return those inside [start, end)."""
        inside, keep = [], []
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                keep.append(v)
                continue
            if v.start < start:
                left, v = v.split_at(start)
                keep.append(left)
            if v.end > end:
                v, right = v.split_at(end)
                keep.append(right)
            inside.append(v)
        keep.sort(key=lambda v: v.start)
        self.vmas = keep
        self._starts = [v.start for v in keep]
        return inside

    def map(self, start: int, end: int, prot: int, flags: int, backing: Backing | None = None,
            offset: int = 0, name: str = "") -> Vma:
        """Create a VMA over [start, end), replacing whatever was there (MAP_FIXED semantics)."""
        if self.overlapping(start, end):
            self.unmap(start, end)
        vma = Vma(start, end, prot, flags, backing, offset, name)
        self._insert(vma)
        return vma

    def unmap(self, start: int, end: int) -> None:
        self.writeback(start, end)
        removed = self._carve(start, end)
        if not removed:
            return
        self._release_pages(start, end)
        self._flush_tlb()

    def _release_pages(self, start: int, end: int) -> None:
        """Unmap [start, end) and drop the frames' references. If a frame that was mapped
        executable is freed (and so may be reused), translated code must go."""
        code_freed = False
        mem = self.mem
        refs, fbase, free = self.frames.refs, self.frames.base, self.frames.free_list   # inlined put
        held = PTE_P | PTE_SOFT_NONE
        for base, table in self.pt.level1_tables(start, end):
            entries = array("Q", mem.read(table, PAGE_SIZE))
            lo = max(0, (start - base) >> 12)
            hi = min(512, (end - base + PAGE_SIZE - 1) >> 12)
            whole = lo == 0 and hi == 512
            for e in (entries if whole else entries[lo:hi]):
                if e & held:
                    pa = e & ADDR_MASK
                    j = (pa - fbase) >> 12
                    refs[j] -= 1
                    if not refs[j]:
                        free.append(pa)
                        if not e & PTE_NX:
                            code_freed = True
            if whole:
                mem.zero(table, PAGE_SIZE)
            else:
                mem.zero(table + 8 * lo, 8 * (hi - lo))
        if code_freed:
            self.tlb.flush_code(self)

    def protect(self, start: int, end: int, prot: int) -> None:
        """Change protection of [start, end), which the caller has checked is fully mapped."""
        for v in self._carve(start, end):
            if v.prot & PROT_EXEC and not prot & PROT_EXEC:
                self.tlb.flush_code(self)
            v.prot = prot
            self._insert(v)
            for _va, slot, pte in self.pt.mapped_pages(v.start, v.end):
                if not pte & (PTE_P | PTE_SOFT_NONE):
                    continue
                pa = pte & ADDR_MASK
                cow = pte & PTE_SOFT_COW
                if prot & PROT_WRITE and not v.flags & MAP_SHARED and self.frames.refcount(pa) > 1:
                    cow = PTE_SOFT_COW
                self.mem.write_u64(slot, self._pte_for(pa, v, cow))
        self._flush_tlb()

    def discard(self, start: int, end: int) -> None:
        """MADV_DONTNEED: drop resident pages; the next touch refills them (zero or from the file)."""
        self.writeback(start, end)
        self._release_pages(start, end)
        self._flush_tlb()

    def writeback(self, start: int, end: int) -> None:
        """Write resident pages of shared file mappings in [start, end) back to their files."""
        for v in self.overlapping(start, end):
            if not (v.flags & MAP_SHARED and isinstance(v.backing, FileBacking) and v.backing.writable):
                continue
            lo, hi = max(start, v.start), min(end, v.end)
            for offset, pa in v.backing.shared.pages.items():
                va = v.start + offset - v.offset
                if lo <= va < hi:
                    v.backing.write_back(offset, self.mem.view[pa:pa + PAGE_SIZE])

    def grow(self, vma: Vma, new_end: int) -> None:
        vma.end = new_end

    def move(self, old: int, old_size: int, new_size: int, dest: int) -> int:
        """mremap: move the pages of [old, old+old_size) to dest, with a VMA of new_size."""
        vma = self.find(old)
        moved = replace(vma, start=dest, end=dest + new_size, offset=vma.offset + (old - vma.start))
        kept = old + min(old_size, new_size)
        self._release_pages(kept, old + old_size)         # a shrinking move drops the tail's frames
        entries = []
        for va, slot, pte in list(self.pt.mapped_pages(old, kept)):
            entries.append((va, pte))                      # the frames move with their references
            self.mem.write_u64(slot, 0)
        self._carve(old, old + old_size)
        for va, pte in entries:
            self.pt.set_pte(dest + (va - old), pte)
        self._insert(moved)
        if vma.prot & PROT_EXEC:
            self.tlb.flush_code(self)
        self._flush_tlb()
        return dest

    def _pte_for(self, pa: int, vma: Vma, cow: int = 0) -> int:
        if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
            return pa | PTE_SOFT_NONE | cow
        flags = pte_flags(vma.prot)
        if cow:
            flags = (flags & ~PTE_W) | PTE_SOFT_COW
        return pa | flags

    def is_mapped(self, start: int, end: int) -> bool:
        """True if every page of [start, end) belongs to some VMA (the VMAs are sorted and do not
        overlap: start from the one that holds `start`)."""
        vmas = self.vmas
        i = bisect.bisect_right(self._starts, start) - 1
        if i < 0:
            return False
        covered = start
        for i in range(i, len(vmas)):
            v = vmas[i]
            if v.start > covered:
                return False
            if v.end > covered:
                covered = v.end
                if covered >= end:
                    return True
        return False

    def find_free(self, length: int, hint: int = 0) -> int | None:
        """Top-down search below mmap_base for a gap of `length` bytes (Linux's default policy)."""
        if hint and hint >= layout.MIN_MMAP_ADDR and hint + length <= layout.USER_TOP \
                and not self.overlapping(hint, hint + length):
            return hint
        top = self.mmap_base
        for v in reversed(self.vmas):
            if v.start >= top:
                continue
            if top - max(v.end, layout.MIN_MMAP_ADDR) >= length:
                return top - length
            top = v.start
        if top - layout.MIN_MMAP_ADDR >= length:
            return top - length
        return None

    # -- demand paging ----------------------------------------------------------------------------
    def fault(self, va: int, error_code: int, vma: Vma | None = None) -> bool:
        """Resolve a user page fault; False means the access is invalid (SIGSEGV). `vma`: the VMA
        holding `va`, when the caller has just looked it up."""
        if vma is None:
            vma = self.find(va)
            if vma is None:
                return False
        write, fetch = error_code & PF_W, error_code & PF_I
        if write and not vma.prot & PROT_WRITE:
            return False
        if fetch and not vma.prot & PROT_EXEC:
            return False
        if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
            return False
        page = page_down(va)
        slot = self.pt.pte_addr(page, create=True)
        u64 = self.mem.u64
        pte = u64[slot >> 3]
        if pte & PTE_P:
            if write and pte & PTE_SOFT_COW:
                self._break_cow(page, slot, pte, vma)
            # else: another vCPU or an earlier fault already resolved it; the TLB held a stale entry
            self._flush_tlb()
            return True
        backing = vma.backing
        offset = vma.offset + (page - vma.start)
        if vma.flags & MAP_SHARED and backing is not None:
            pa = backing.shared.frame(offset, self.frames, lambda pa: self._fill(pa, backing, offset))
            self.mem.write_u64(slot, self._pte_for(pa, vma))
            return True
        if backing is None and not write and self.zero_page and not vma.flags & MAP_SHARED:
            self.frames.get(self.zero_page)
            u64[slot >> 3] = self._pte_for(self.zero_page, vma, PTE_SOFT_COW)
            return True
        pa = self.frames.alloc(zero=backing is None)
        if backing is not None:
            self._fill(pa, backing, offset)
        u64[slot >> 3] = self._pte_for(pa, vma)
        return True

    def _fill(self, pa: int, backing: Backing, offset: int) -> None:
        data = backing.read(offset, PAGE_SIZE)
        self.mem.write(pa, data)
        if len(data) < PAGE_SIZE:
            self.mem.zero(pa + len(data), PAGE_SIZE - len(data))

    def _break_cow(self, page: int, slot: int, pte: int, vma: Vma) -> None:
        old = pte & ADDR_MASK
        if self.frames.refcount(old) == 1 and old != self.zero_page:   # last owner: take it back
            self.mem.write_u64(slot, self._pte_for(old, vma))
            return
        if old == self.zero_page:
            new = self.frames.alloc(zero=True)
        else:
            new = self.frames.alloc(zero=False)
            self.mem.copy(new, old, PAGE_SIZE)
        self.frames.put(old)
        self.mem.write_u64(slot, self._pte_for(new, vma))

    # -- access from the kernel (copy_from_user / copy_to_user) -----------------------------------
    def user_page(self, va: int, write: bool) -> int | None:
        """Physical address of `va` for a kernel access on the user's behalf, paging it in."""
        pa = self.pt.translate(va, write)
        if pa is not None:
            return pa
        if not self.fault(va, PF_U | (PF_W if write else 0)):
            return None
        return self.pt.translate(va, write)

    def populate(self, va: int, write: bool, vma: Vma) -> bool:
        """Page `va` (in `vma`) in as a user access of that kind would (user_page without wanting
        the address: MADV_POPULATE_READ/WRITE, the Multiverse partner's replicated HRT fault).
        False if that access would fault for good."""
        if self.pt.translate(va, write) is not None:
            return True
        return self.fault(va, PF_U | (PF_W if write else 0), vma)

    def kernel_page(self, va: int, write: bool) -> int | None:
        """user_page for an address the kernel touches again and again (an HVM event record):
        remembered, like a TLB entry, until this address space's TLBs are next flushed, which
        every change of a present mapping does (unmap, protect, COW, fork, move)."""
        key = (va >> 12 << 1) | (1 if write else 0)
        page = self._remembered.get(key)
        if page is None:
            pa = self.user_page(va, write)
            if pa is None:
                return None
            page = self._remembered[key] = pa & ~(PAGE_SIZE - 1)
        return page | (va & (PAGE_SIZE - 1))

    def kernel_words(self, va: int, n: int) -> tuple[int, ...] | None:
        """For a record the kernel reads and writes again and again (an HVM event record): the
        indexes in guest memory's 64-bit word view (`mem.u64`) of the `n` (< 16) words at the
        8-aligned user address `va`, paged in for writing; None if not accessible. Remembered, as
        kernel_page's pages are, until this address space's TLBs are next flushed."""
        key = va << 4 | n
        words = self._words.get(key)
        if words is None:
            found = []
            for i in range(n):
                pa = self.kernel_page(va + 8 * i, True)
                if pa is None:
                    return None
                found.append(pa >> 3)
            words = self._words[key] = tuple(found)
        return words

    def _flush_tlb(self) -> None:
        self._remembered.clear()
        self._words.clear()
        self.tlb.flush_tlb(self)

    def user_buffers(self, va: int, n: int, write: bool) -> list[memoryview] | None:
        """The guest-physical pieces of [va, va+n) as writable views (for readv/writev straight
        into guest memory), paging them in; None if any page is not accessible."""
        views = []
        while n > 0:
            pa = self.user_page(va, write)
            if pa is None:
                return None
            chunk = min(n, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            views.append(self.mem.view[pa:pa + chunk])
            va += chunk
            n -= chunk
        return views

    def read(self, va: int, n: int) -> bytes | None:
        views = self.user_buffers(va, n, False)
        return None if views is None else b"".join(views)

    def write(self, va: int, data) -> bool:
        data = memoryview(data).cast("B")
        views = self.user_buffers(va, len(data), True)
        if views is None:
            return False
        pos = 0
        for v in views:
            v[:] = data[pos:pos + len(v)]
            pos += len(v)
        return True

    def read_cstr(self, va: int, limit: int = 4096) -> bytes | None:
        """The NUL-terminated string at va; None if unreadable. A string with no NUL within
        `limit` bytes comes back truncated to `limit` bytes (callers compare the length)."""
        out = bytearray()
        while len(out) < limit:
            pa = self.user_page(va, False)
            if pa is None:
                return None
            chunk = min(limit - len(out), PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            block = self.mem.view[pa:pa + chunk]
            nul = bytes(block).find(b"\0")
            if nul >= 0:
                out += block[:nul]
                return bytes(out)
            out += block
            va += chunk
        return bytes(out)

    # -- fork -------------------------------------------------------------------------------------
    def fork(self) -> "AddressSpace":
        """A copy-on-write duplicate: private pages become read-only and shared by both until one
        writes (then `_break_cow` copies); MAP_SHARED pages stay shared and writable. Works a page
        table (512 entries) at a time."""
        child = AddressSpace(self.mem, self.frames, self.kernel_pml4e, self.tlb, self.zero_page)
        child.vmas = [replace(v) for v in self.vmas]
        child._starts = list(self._starts)
        child.brk_start, child.brk, child.mmap_base = self.brk_start, self.brk, self.mmap_base
        mem = self.mem
        refs, fbase = self.frames.refs, self.frames.base       # inlined FrameAllocator.get
        shared = [(v.start, v.end) for v in self.vmas if v.flags & MAP_SHARED]
        for base, table in self.pt.level1_tables():
            raw = mem.read(table, PAGE_SIZE)
            entries = array("Q", raw)
            for j in [((e & ADDR_MASK) - fbase) >> 12 for e in entries if e]:
                refs[j] += 1
            span_shared = [(a, b) for a, b in shared if a < base + (1 << 21) and b > base]
            if not span_shared:
                # every writable entry becomes read-only + COW at once, on the table as one integer
                x = int.from_bytes(raw, "little")
                w = x & _W_EVERY_ENTRY
                data = ((x ^ w) | (w << 9)).to_bytes(PAGE_SIZE, "little")
            else:
                for i, e in enumerate(entries):
                    if e & PTE_W and not any(a <= base + (i << 12) < b for a, b in span_shared):
                        entries[i] = (e & ~PTE_W) | PTE_SOFT_COW
                data = entries.tobytes()
            mem.write(table, data)
            mem.write(child.pt.table_for(base), data)
        self._flush_tlb()
        return child

    # -- teardown ---------------------------------------------------------------------------------
    def destroy(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        self.tlb.released(self)                 # before any frame goes: the HRT may still use them
        self.writeback(0, layout.USER_TOP)
        self._release_pages(0, layout.USER_TOP)
        self.vmas, self._starts = [], []
        self.pt.destroy()
