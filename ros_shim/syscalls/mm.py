"""Memory system calls: brk, mmap, munmap, mprotect, madvise, mremap, msync."""
from __future__ import annotations

import errno
import os

from .. import layout
from ..mm import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_EXEC,
                  PROT_READ, PROT_WRITE, AnonBacking, FileBacking, page_up)
from .table import i32, signed, syscall

PAGE = layout.PAGE
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_NORMAL, MADV_DONTNEED, MADV_FREE = 0, 4, 8
MADV_POPULATE_READ, MADV_POPULATE_WRITE = 22, 23
_KNOWN_MADV = {0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 100, 101}


@syscall("brk", "x")
def sys_brk(k, t, addr, *_):
    mm = t.proc.mm
    if addr < mm.brk_start:
        return mm.brk
    old_top, new_top = page_up(mm.brk), page_up(addr)
    if new_top > old_top:
        if mm.overlapping(old_top, new_top) or new_top > layout.USER_TOP or \
                not _enough_memory(k, new_top - old_top):
            return mm.brk
        heap = mm.find(old_top - 1) if old_top > mm.brk_start else None
        if heap is not None and heap.name == "[heap]" and heap.end == old_top:
            heap.end = new_top
        else:
            mm.map(old_top, new_top, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, name="[heap]")
    elif new_top < old_top:
        mm.unmap(new_top, old_top)
    mm.brk = addr
    return addr


@syscall("mmap", "x,u,prot,map,fd,i")
def sys_mmap(k, t, addr, length, prot, flags, fd, offset, *_):
    mm = t.proc.mm
    if length == 0 or offset & (PAGE - 1):
        return -errno.EINVAL
    length = page_up(length)
    if length == 0 or length > layout.USER_TOP:
        return -errno.ENOMEM
    maptype = flags & MAP_TYPE
    if maptype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        return -errno.EINVAL
    backing = AnonBacking() if flags & MAP_ANONYMOUS and maptype != MAP_PRIVATE else None
    name = ""
    may_write = True
    if prot & PROT_WRITE and not flags & MAP_NORESERVE and not _enough_memory(k, length):
        return -errno.ENOMEM
    if not flags & MAP_ANONYMOUS:
        f = t.proc.fds.get(i32(fd))
        if f is None:
            return -errno.EBADF
        acc = f.flags & os.O_ACCMODE
        if acc == os.O_WRONLY:
            return -errno.EACCES
        if maptype != MAP_PRIVATE and prot & PROT_WRITE and acc != os.O_RDWR:
            return -errno.EACCES
        try:
            import stat
            if not stat.S_ISREG(os.fstat(f.host_fd).st_mode):
                return -errno.ENODEV
        except OSError as e:
            return -e.errno
        backing = FileBacking(os.dup(f.host_fd), writable=acc == os.O_RDWR)
        name = os.path.basename(f.path)
        may_write = maptype == MAP_PRIVATE or acc == os.O_RDWR
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr & (PAGE - 1):
            return -errno.EINVAL
        if addr + length > layout.USER_TOP or addr < layout.MIN_MMAP_ADDR:
            return -errno.EPERM if addr < layout.MIN_MMAP_ADDR else -errno.ENOMEM
        if flags & MAP_FIXED_NOREPLACE and not flags & MAP_FIXED and mm.overlapping(addr, addr + length):
            return -errno.EEXIST
        start = addr
    else:
        start = mm.find_free(length, addr & ~(PAGE - 1))
        if start is None:
            return -errno.ENOMEM
    vma = mm.map(start, start + length, prot & (PROT_READ | PROT_WRITE | PROT_EXEC),
                 (flags & ~MAP_TYPE) | (MAP_SHARED if maptype != MAP_PRIVATE else MAP_PRIVATE),
                 backing, offset, name)
    vma.may_write = may_write
    return start


def _enough_memory(k, nbytes: int) -> bool:
    """Linux's default (heuristic) overcommit: one request for more than all of RAM fails."""
    return nbytes <= k.frames.total * PAGE


@syscall("munmap", "x,u")
def sys_munmap(k, t, addr, length, *_):
    if addr & (PAGE - 1) or length == 0 or addr + length > layout.USER_TOP:
        return -errno.EINVAL
    t.proc.mm.unmap(addr, addr + page_up(length))
    return 0


@syscall("mprotect", "x,u,prot")
def sys_mprotect(k, t, addr, length, prot, *_):
    if addr & (PAGE - 1) or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x0100_0000 | 0x0200_0000):
        return -errno.EINVAL
    end = addr + page_up(length)
    if end < addr:
        return -errno.ENOMEM
    if end == addr:
        return 0
    mm = t.proc.mm
    if not mm.is_mapped(addr, end):
        return -errno.ENOMEM
    if prot & PROT_WRITE and any(not v.may_write for v in mm.overlapping(addr, end)):
        return -errno.EACCES
    mm.protect(addr, end, prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
    return 0


@syscall("madvise", "x,u,madv")
def sys_madvise(k, t, addr, length, advice, *_):
    if addr & (PAGE - 1) or advice not in _KNOWN_MADV:
        return -errno.EINVAL
    end = addr + page_up(length)
    mm = t.proc.mm
    if end == addr:
        return 0
    if advice == MADV_POPULATE_WRITE or advice == MADV_POPULATE_READ:   # (checks as it goes)
        return _populate(mm, addr, end, advice == MADV_POPULATE_WRITE)
    if not mm.is_mapped(addr, end):
        return -errno.ENOMEM
    if advice in (MADV_DONTNEED, MADV_FREE):
        mm.discard(addr, end)
    return 0


def _populate(mm, start: int, end: int, write: bool) -> int:
    """MADV_POPULATE_READ/WRITE (Linux 5.14): page the range in as a read (or write) access would,
    breaking copy-on-write for a write, without changing its contents. EINVAL for a mapping the
    access is not allowed on (PROT_NONE; a write to a read-only one), EFAULT where the access would
    fault anyway (past the end of a file). The Multiverse partner replicates an HRT write fault
    this way (docs/split.md). ENOMEM at the first page no VMA holds, as Linux, which populates
    the range VMA by VMA and stops at a hole."""
    for va in range(start, end, PAGE):
        vma = mm.find(va)
        if vma is None:
            return -errno.ENOMEM
        if not vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) or write and not vma.prot & PROT_WRITE:
            return -errno.EINVAL
        if not mm.populate(va, write, vma):
            return -errno.EFAULT
    return 0


@syscall("mremap", "x,u,u,mremap,x")
def sys_mremap(k, t, old, old_size, new_size, flags, new_addr, *_):
    mm = t.proc.mm
    if old & (PAGE - 1) or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
        return -errno.EINVAL
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        return -errno.EINVAL
    old_size, new_size = page_up(old_size), page_up(new_size)
    if new_size == 0:
        return -errno.EINVAL
    vma = mm.find(old)
    if vma is None or (old_size and old + old_size > vma.end):
        return -errno.EFAULT
    if flags & MREMAP_DONTUNMAP:
        return -errno.EINVAL
    if flags & MREMAP_FIXED:
        if new_addr & (PAGE - 1) or (new_addr < old + old_size and old < new_addr + new_size):
            return -errno.EINVAL
        mm.unmap(new_addr, new_addr + new_size)
        return mm.move(old, old_size, new_size, new_addr)
    if new_size > old_size and vma.prot & PROT_WRITE and not _enough_memory(k, new_size - old_size):
        return -errno.ENOMEM
    if new_size <= old_size:
        if new_size < old_size:
            mm.unmap(old + new_size, old + old_size)
        return old
    if old + old_size == vma.end and not mm.overlapping(vma.end, old + new_size) \
            and old + new_size <= layout.USER_TOP:
        mm.grow(vma, old + new_size)
        return old
    if not flags & MREMAP_MAYMOVE:
        return -errno.ENOMEM
    dest = mm.find_free(new_size)
    if dest is None:
        return -errno.ENOMEM
    return mm.move(old, old_size, new_size, dest)


@syscall("msync", "x,u,msync")
def sys_msync(k, t, addr, length, flags, *_):
    if addr & (PAGE - 1) or flags & ~7 or (flags & 1 and flags & 4):
        return -errno.EINVAL
    mm = t.proc.mm
    end = addr + page_up(length)
    if not mm.is_mapped(addr, end):
        return -errno.ENOMEM
    mm.writeback(addr, end)
    return 0


@syscall("mlock", "x,u")
def sys_mlock(k, t, *_):
    return 0


@syscall("munlock", "x,u")
def sys_munlock(k, t, *_):
    return 0
