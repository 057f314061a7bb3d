"""Pass-through to the host kernel for file-system calls.

The ROS keeps guest processes' files on the host file system. Where a guest call names only
paths, file descriptors, integers and fixed-size structures, the most exact emulation is to make
the very same system call on the host with guest fds and paths translated and guest structures
copied through a host buffer: results, struct layouts (stat, statx, statfs, linux_dirent64) and
errno values are then Linux's own.
"""
from __future__ import annotations

import ctypes
import errno
import os

from .names import NUMBERS

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

AT_FDCWD = -100


def call(name: str, *args) -> int:
    """Host system call `name`; ints pass as longs, bytes/ctypes buffers as pointers. -errno on failure."""
    conv = []
    for a in args:
        if isinstance(a, int):
            conv.append(ctypes.c_long(a if a < (1 << 63) else a - (1 << 64)))
        else:
            conv.append(a)
    r = _syscall(ctypes.c_long(NUMBERS[name]), *conv)
    if r == -1:
        return -ctypes.get_errno()
    return r


class Buffer:
    """A host buffer to pass to `call` and copy to/from guest memory."""

    def __init__(self, size: int, init: bytes | None = None):
        self.size = size
        self.buf = ctypes.create_string_buffer(init if init is not None else b"", size) if init \
            else ctypes.create_string_buffer(size)

    @property
    def ptr(self):
        return self.buf

    def bytes(self, n: int | None = None) -> bytes:
        return self.buf.raw[: self.size if n is None else n]


def oserror(e: OSError) -> int:
    return -(e.errno or errno.EIO)
