"""Open files and per-process file-descriptor tables.

A guest file description is backed by one host file descriptor, so offsets, O_APPEND and file
status flags behave exactly as the host kernel makes them. Guest fds that share a description
(dup, fork) share the OpenFile; the host fd closes when the last guest fd does.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

NOFILE_LIMIT = 1024


class _PipeEvents:
    """Where pipe activity is reported (the scheduler sets `notify` to its wake_fd)."""
    notify = staticmethod(lambda host_fd: None)


PIPE_EVENTS = _PipeEvents()


@dataclass(eq=False)
class OpenFile:
    host_fd: int
    flags: int                    # O_* status flags at open (access mode, O_APPEND, O_NONBLOCK...)
    path: str = ""
    refs: int = 0
    own_nonblock: bool = False    # the host fd is O_NONBLOCK for mvemu's sake (guest pipes)
    device: str = ""              # a ROS device served by the kernel itself ("hvm" for /dev/hvm)
    peer: "OpenFile | None" = None    # a guest pipe's other end: its waiters are woken directly
    _pollable: bool | None = None

    @property
    def pollable(self) -> bool:
        """Can reading or writing it wait (a pipe, terminal, socket, device)? Regular files never do."""
        if self._pollable is None:
            import stat
            try:
                mode = os.fstat(self.host_fd).st_mode
                self._pollable = not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
            except OSError:
                self._pollable = False
        return self._pollable

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & os.O_NONBLOCK)

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            try:
                os.close(self.host_fd)
            except OSError:
                pass
            if self.peer is not None:           # EOF or EPIPE for whoever waits on the other end
                PIPE_EVENTS.notify(self.peer.host_fd)
                self.peer.peer = None


@dataclass
class FdEntry:
    file: OpenFile
    cloexec: bool = False


class FdTable:
    def __init__(self):
        self.entries: dict[int, FdEntry] = {}
        self.users = 1                    # processes sharing this table (CLONE_FILES)

    def get(self, fd: int) -> OpenFile | None:
        e = self.entries.get(fd)
        return e.file if e else None

    def install(self, file: OpenFile, lowest: int = 0, cloexec: bool = False) -> int:
        fd = lowest
        while fd in self.entries:
            fd += 1
        if fd >= NOFILE_LIMIT:
            return -errno.EMFILE
        file.refs += 1
        self.entries[fd] = FdEntry(file, cloexec)
        return fd

    def install_at(self, fd: int, file: OpenFile, cloexec: bool = False) -> None:
        self.close(fd)
        file.refs += 1
        self.entries[fd] = FdEntry(file, cloexec)

    def close(self, fd: int) -> bool:
        e = self.entries.pop(fd, None)
        if e is None:
            return False
        e.file.release()
        return True

    def close_all(self) -> None:
        """A process using this table exits: the last one closes the files."""
        self.users -= 1
        if self.users > 0:
            return
        for fd in list(self.entries):
            self.close(fd)

    def fork(self) -> "FdTable":
        t = FdTable()
        for fd, e in self.entries.items():
            e.file.refs += 1
            t.entries[fd] = FdEntry(e.file, e.cloexec)
        return t

    def close_on_exec(self) -> None:
        for fd in [fd for fd, e in self.entries.items() if e.cloexec]:
            self.close(fd)


def stdio_table() -> FdTable:
    """Guest fds 0, 1, 2 on duplicates of mvemu's own standard streams."""
    t = FdTable()
    for fd in (0, 1, 2):
        try:
            host = os.dup(fd)
        except OSError:
            continue
        os.set_inheritable(host, False)
        flags = os.O_RDONLY if fd == 0 else os.O_WRONLY
        t.install_at(fd, OpenFile(host, flags, f"<std{fd}>"))
    return t
