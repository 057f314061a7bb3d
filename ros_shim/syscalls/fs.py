"""File-system and file-descriptor system calls.

Data moves between host files and guest memory without a Python copy where it can (readv/writev
on views of guest-physical pages). Path-based calls translate the guest's fds and paths and make the
same call on the host (see host.py), so results and errno values are Linux's own.
"""
from __future__ import annotations

import errno
import os
import stat as st
import struct

import select

from hvm import abi

from .. import signals
from ..files import OpenFile
from . import hvmdev
from ..process import Wait
from ..sched import now_ns
from . import host
from .host import AT_FDCWD, Buffer
from .table import BLOCK, i32, signed, syscall
from .time import timespec_ns

O_ACCMODE = os.O_ACCMODE
O_CLOEXEC = os.O_CLOEXEC
O_CREAT, O_TMPFILE = os.O_CREAT, 0o20200000
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR = 0x1000, 0x100, 0x200
MAX_IO = 0x7FFF_F000             # Linux caps one read/write at this many bytes
IOV_MAX = 1024
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 5, 6, 7, 36, 37, 38
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1030, 1031, 1032, 1033, 1034
FD_CLOEXEC = 1
PATH_MAX = 4096


# -- helpers -----------------------------------------------------------------------------------
def _file(t, fd):
    return t.proc.fds.get(i32(fd))


def _path(t, ptr):
    """The guest path at ptr, translated for the host, or a negative errno."""
    if not ptr:
        return -errno.EFAULT
    p = t.proc.mm.read_cstr(ptr, PATH_MAX + 1)
    if p is None:
        return -errno.EFAULT
    if len(p) > PATH_MAX:
        return -errno.ENAMETOOLONG
    return _host_path(t, p)


def _host_path(t, p: bytes) -> bytes:
    """Paths that name the process itself refer to the guest process, not to mvemu."""
    if _is_self_exe(t, p):
        return os.fsencode(t.proc.exe)
    for prefix in (b"/proc/self/fd/", b"/dev/fd/", b"/proc/%d/fd/" % t.proc.pid):
        if p.startswith(prefix):
            num, _, rest = p[len(prefix):].partition(b"/")
            if num.isdigit():
                f = t.proc.fds.get(int(num))
                if f is None:
                    return p          # the host lookup fails naturally with ENOENT
                return b"/proc/self/fd/%d" % f.host_fd + (b"/" + rest if rest else b"")
    std = {b"/dev/stdin": 0, b"/dev/stdout": 1, b"/dev/stderr": 2}.get(p)
    if std is not None:
        f = t.proc.fds.get(std)
        return b"/proc/self/fd/%d" % f.host_fd if f else p
    return p


def _at_path(t, dfd, pathp):
    """(host dirfd, host path) for a guest (dirfd, path) pair, or a negative errno."""
    path = _path(t, pathp)
    if isinstance(path, int):
        return path
    d = _dirfd(t, dfd)
    return -errno.EBADF if d is None else (d, path)


def _dirfd(t, dfd):
    dfd = i32(dfd)
    if dfd == AT_FDCWD:
        return t.proc.cwd_fd
    f = t.proc.fds.get(dfd)
    return f.host_fd if f else None


def _is_self_exe(t, p: bytes) -> bool:
    return p in (b"/proc/self/exe", b"/proc/%d/exe" % t.proc.pid, b"/proc/thread-self/exe")


def _io_views(t, buf, count, write_to_guest):
    count = min(count, MAX_IO, 1 << 24)
    return t.proc.mm.user_buffers(buf, count, write_to_guest) if count else []


def _merge(views):
    """At most IOV_MAX iovecs per host call (a short transfer is allowed, as on Linux)."""
    return views[:IOV_MAX]


def _oserr(e: OSError) -> int:
    return -(e.errno or errno.EIO)


# -- read/write --------------------------------------------------------------------------------
def _wait_ready(k, t, f, events):
    """None if `f` is ready for `events` now; otherwise what the syscall returns (EAGAIN, a block,
    or the restart code after a signal)."""
    w = k.resume_wait(t, "fd")
    if w is not None and w.interrupted:
        return -signals.ERESTARTSYS
    if not f.pollable:
        return None
    p = select.poll()
    p.register(f.host_fd, events)
    if p.poll(0):
        return None
    if f.nonblocking:
        return -errno.EAGAIN
    return k.block(t, Wait("fd", fds=[(f.host_fd, events)], internal=f.peer is not None))


def _pipe_activity(k, f) -> None:
    if f.peer is not None:
        k.sched.wake_fd(f.peer.host_fd)


@syscall("read", "fd,r,u")
def sys_read(k, t, fd, buf, count, *_):
    f = _file(t, fd)
    if f is None or f.flags & O_ACCMODE == os.O_WRONLY and not f.path.startswith("<"):
        return -errno.EBADF
    if f.path == EVENTFD and count < 8:
        return -errno.EINVAL                      # (before any wait, as eventfd_read does)
    views = _io_views(t, buf, count, True)
    if views is None:
        return -errno.EFAULT
    if not views:
        return 0
    r = _wait_ready(k, t, f, select.POLLIN)
    if r is not None:
        return r
    try:
        n = os.readv(f.host_fd, _merge(views))
    except BlockingIOError:
        return -errno.EAGAIN if f.nonblocking else \
            k.block(t, Wait("fd", fds=[(f.host_fd, select.POLLIN)], internal=f.peer is not None))
    except OSError as e:
        return _oserr(e)
    _pipe_activity(k, f)
    return n


@syscall("write", "fd,w,u")
def sys_write(k, t, fd, buf, count, *_):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    views = _io_views(t, buf, count, False)
    if views is None:
        return -errno.EFAULT
    if f.path == EVENTFD and (count < 8 or t.proc.mm.read(buf, 8) == b"\xff" * 8):
        return -errno.EINVAL                      # (before any wait, as eventfd_write does)
    return _write_views(k, t, f, views)


def _write_views(k, t, f, views):
    r = _wait_ready(k, t, f, select.POLLOUT)
    if r is not None:
        return r
    try:
        if len(views) > IOV_MAX:
            n = os.write(f.host_fd, b"".join(views))
        else:
            n = os.writev(f.host_fd, views) if views else os.write(f.host_fd, b"")
    except BrokenPipeError:
        return k.sigpipe(t)
    except BlockingIOError:
        return -errno.EAGAIN if f.nonblocking else \
            k.block(t, Wait("fd", fds=[(f.host_fd, select.POLLOUT)], internal=f.peer is not None))
    except OSError as e:
        return _oserr(e)
    _pipe_activity(k, f)
    return n


def _iovecs(t, iov, iovcnt, write_to_guest):
    iovcnt = i32(iovcnt)
    if iovcnt < 0 or iovcnt > IOV_MAX:
        return -errno.EINVAL
    raw = t.proc.mm.read(iov, 16 * iovcnt) if iovcnt else b""
    if raw is None:
        return -errno.EFAULT
    views, total = [], 0
    for i in range(iovcnt):
        base, length = struct.unpack_from("<QQ", raw, 16 * i)
        if length > MAX_IO - total:
            if signed(length) < 0:
                return -errno.EINVAL
            length = MAX_IO - total
        if length:
            v = t.proc.mm.user_buffers(base, length, write_to_guest)
            if v is None:
                return -errno.EFAULT
            views += v
            total += length
    return views


@syscall("readv", "fd,x,i")
def sys_readv(k, t, fd, iov, iovcnt, *_):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    views = _iovecs(t, iov, iovcnt, True)
    if isinstance(views, int):
        return views
    if not views:
        return 0
    r = _wait_ready(k, t, f, select.POLLIN)
    if r is not None:
        return r
    try:
        n = _readv_all(f.host_fd, views)
    except BlockingIOError:
        return -errno.EAGAIN if f.nonblocking else \
            k.block(t, Wait("fd", fds=[(f.host_fd, select.POLLIN)], internal=f.peer is not None))
    except OSError as e:
        return _oserr(e)
    _pipe_activity(k, f)
    return n


def _readv_all(fd, views):
    if len(views) <= IOV_MAX:
        return os.readv(fd, views)
    total = 0
    for i in range(0, len(views), IOV_MAX):
        part = views[i:i + IOV_MAX]
        n = os.readv(fd, part)
        total += n
        if n < sum(len(v) for v in part):
            break
    return total


@syscall("writev", "fd,x,i")
def sys_writev(k, t, fd, iov, iovcnt, *_):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    views = _iovecs(t, iov, iovcnt, False)
    if isinstance(views, int):
        return views
    return _write_views(k, t, f, views) if views else 0


def _positional(k, t, fd, offset, views, write: bool):
    """pread64/pwrite64/preadv/pwritev: I/O at an offset, without moving the file position."""
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    if signed(offset) < 0:
        return -errno.EINVAL
    if isinstance(views, int):
        return views
    if views is None:
        return -errno.EFAULT
    if not views:
        return 0
    try:
        return os.pwritev(f.host_fd, views[:IOV_MAX], offset) if write else \
            os.preadv(f.host_fd, views[:IOV_MAX], offset)
    except BrokenPipeError:
        return k.sigpipe(t)
    except OSError as e:
        return _oserr(e)


@syscall("pread64", "fd,r,u,i")
def sys_pread64(k, t, fd, buf, count, offset, *_):
    return _positional(k, t, fd, offset, _io_views(t, buf, count, True), False)


@syscall("pwrite64", "fd,w,u,i")
def sys_pwrite64(k, t, fd, buf, count, offset, *_):
    return _positional(k, t, fd, offset, _io_views(t, buf, count, False), True)


@syscall("preadv", "fd,x,i,i")
def sys_preadv(k, t, fd, iov, iovcnt, offset, *_):
    return _positional(k, t, fd, offset, _iovecs(t, iov, iovcnt, True), False)


@syscall("pwritev", "fd,x,i,i")
def sys_pwritev(k, t, fd, iov, iovcnt, offset, *_):
    return _positional(k, t, fd, offset, _iovecs(t, iov, iovcnt, False), True)


@syscall("lseek", "fd,i,seek")
def sys_lseek(k, t, fd, offset, whence, *_):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    return host.call("lseek", f.host_fd, offset, i32(whence))


@syscall("sendfile", "fd,fd,x,u")
def sys_sendfile(k, t, out_fd, in_fd, offset_ptr, count, *_):
    out, inp = _file(t, out_fd), _file(t, in_fd)
    if out is None or inp is None:
        return -errno.EBADF
    count = min(count, MAX_IO)
    try:
        if offset_ptr:
            raw = t.proc.mm.read(offset_ptr, 8)
            if raw is None:
                return -errno.EFAULT
            off = struct.unpack("<q", raw)[0]
            data = os.pread(inp.host_fd, count, off)
            n = os.write(out.host_fd, data) if data else 0
            t.proc.mm.write(offset_ptr, struct.pack("<q", off + n))
            return n
        data = os.read(inp.host_fd, count)
        n = os.write(out.host_fd, data) if data else 0
        if n < len(data):
            os.lseek(inp.host_fd, n - len(data), os.SEEK_CUR)
        return n
    except BrokenPipeError:
        return k.sigpipe(t)
    except OSError as e:
        return _oserr(e)


# -- open/close/dup ----------------------------------------------------------------------------
# The guest's CPUs are the ROS vCPUs, not the host's: glibc's get_nprocs() reads these.
_CPU_LISTS = (b"/sys/devices/system/cpu/online", b"/sys/devices/system/cpu/possible",
              b"/sys/devices/system/cpu/present")


def _open_cpu_list(k, t, path: bytes, flags: int):
    if flags & (os.O_WRONLY | os.O_RDWR | O_CREAT | O_TMPFILE | os.O_TRUNC):
        return -errno.EACCES                      # sysfs files are read-only (0444)
    n = len(k.cpus)
    fd = os.memfd_create("mvemu-cpu-list", os.MFD_CLOEXEC)
    os.write(fd, (b"0\n" if n == 1 else b"0-%d\n" % (n - 1)))
    os.lseek(fd, 0, os.SEEK_SET)
    r = t.proc.fds.install(OpenFile(fd, os.O_RDONLY, path.decode()),
                           cloexec=bool(flags & O_CLOEXEC))
    if r < 0:
        os.close(fd)
    return r


def _openat(k, t, dfd, pathp, flags, mode):
    path = _path(t, pathp)
    if isinstance(path, int):
        return path
    if path == abi.ROS_DEVICE.encode():
        return hvmdev.open_device(k, t, i32(flags))
    if path in _CPU_LISTS:
        return _open_cpu_list(k, t, path, i32(flags))
    d = _dirfd(t, dfd)
    if d is None:
        return -errno.EBADF
    flags = i32(flags)
    if flags & (O_CREAT | O_TMPFILE):
        os.umask(t.proc.umask)
    r = host.call("openat", d, path, flags | O_CLOEXEC, mode & 0o7777)
    if r < 0:
        return r
    fd = t.proc.fds.install(OpenFile(r, flags & ~O_CLOEXEC, path.decode(errors="replace")),
                            cloexec=bool(flags & O_CLOEXEC))
    if fd < 0:
        os.close(r)
    return fd


@syscall("open", "s,oflags,o")
def sys_open(k, t, path, flags, mode, *_):
    return _openat(k, t, AT_FDCWD, path, flags, mode)


@syscall("openat", "fd,s,oflags,o")
def sys_openat(k, t, dfd, path, flags, mode, *_):
    return _openat(k, t, dfd, path, flags, mode)


@syscall("creat", "s,o")
def sys_creat(k, t, path, mode, *_):
    return _openat(k, t, AT_FDCWD, path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)


@syscall("close", "fd")
def sys_close(k, t, fd, *_):
    return 0 if t.proc.fds.close(i32(fd)) else -errno.EBADF


@syscall("close_range", "u,u,closerange")
def sys_close_range(k, t, first, last, flags, *_):
    if first > last or flags & ~0x6:
        return -errno.EINVAL
    for fd in [fd for fd in t.proc.fds.entries if first <= fd <= last]:
        if flags & 0x4:                           # CLOSE_RANGE_CLOEXEC
            t.proc.fds.entries[fd].cloexec = True
        else:
            t.proc.fds.close(fd)
    return 0


@syscall("dup", "fd")
def sys_dup(k, t, fd, *_):
    f = _file(t, fd)
    return t.proc.fds.install(f) if f else -errno.EBADF


def _dup3(t, old, new, flags):
    old, new = i32(old), i32(new)
    f = t.proc.fds.get(old)
    if f is None:
        return -errno.EBADF
    if new < 0 or new >= 1024:
        return -errno.EBADF
    t.proc.fds.install_at(new, f, cloexec=bool(flags & O_CLOEXEC))
    return new


@syscall("dup2", "fd,fd")
def sys_dup2(k, t, old, new, *_):
    if i32(old) == i32(new):
        return i32(new) if _file(t, old) else -errno.EBADF
    return _dup3(t, old, new, 0)


@syscall("dup3", "fd,fd,fdflags")
def sys_dup3(k, t, old, new, flags, *_):
    if i32(old) == i32(new) or flags & ~O_CLOEXEC:
        return -errno.EINVAL
    return _dup3(t, old, new, flags)


@syscall("pipe2", "x,fdflags")
def sys_pipe2(k, t, fds_ptr, flags, *_):
    if flags & ~(O_CLOEXEC | os.O_NONBLOCK | os.O_DIRECT):
        return -errno.EINVAL
    try:
        r, w = os.pipe2(O_CLOEXEC | os.O_NONBLOCK | (flags & os.O_DIRECT))
    except OSError as e:
        return _oserr(e)
    cloexec = bool(flags & O_CLOEXEC)
    gflags = flags & (os.O_NONBLOCK | os.O_DIRECT)
    fr = t.proc.fds.install(OpenFile(r, os.O_RDONLY | gflags, "pipe:[r]", own_nonblock=True), cloexec=cloexec)
    if fr < 0:
        os.close(r); os.close(w)
        return fr
    fw = t.proc.fds.install(OpenFile(w, os.O_WRONLY | gflags, "pipe:[w]", own_nonblock=True), cloexec=cloexec)
    if fw < 0:
        t.proc.fds.close(fr); os.close(w)
        return fw
    rfile, wfile = t.proc.fds.get(fr), t.proc.fds.get(fw)
    rfile.peer, wfile.peer = wfile, rfile
    if not t.proc.mm.write(fds_ptr, struct.pack("<ii", fr, fw)):
        t.proc.fds.close(fr); t.proc.fds.close(fw)
        return -errno.EFAULT
    return 0


EFD_SEMAPHORE = 1
EVENTFD = "anon_inode:[eventfd]"


@syscall("eventfd2", "u,efd")
def sys_eventfd2(k, t, initval, flags, *_):
    """A host eventfd: its counter, semaphore mode and errors are the host kernel's. Like a guest
    pipe it is non-blocking on the host and its own peer, so a read or write wakes its waiters."""
    if flags & ~(O_CLOEXEC | os.O_NONBLOCK | EFD_SEMAPHORE):
        return -errno.EINVAL
    try:
        fd = os.eventfd(initval & 0xFFFF_FFFF, O_CLOEXEC | os.O_NONBLOCK | (flags & EFD_SEMAPHORE))
    except OSError as e:
        return _oserr(e)
    f = OpenFile(fd, os.O_RDWR | (flags & os.O_NONBLOCK), EVENTFD, own_nonblock=True)
    f.peer = f
    r = t.proc.fds.install(f, cloexec=bool(flags & O_CLOEXEC))
    if r < 0:
        os.close(fd)
    return r


@syscall("eventfd", "u")
def sys_eventfd(k, t, initval, *_):
    return sys_eventfd2(k, t, initval, 0)


@syscall("pipe", "x")
def sys_pipe(k, t, fds_ptr, *_):
    return sys_pipe2(k, t, fds_ptr, 0)


@syscall("fcntl", "fd,fcntl,x")
def sys_fcntl(k, t, fd, cmd, arg, *_):
    fd, cmd = i32(fd), i32(cmd)
    fds = t.proc.fds
    f = fds.get(fd)
    if f is None:
        return -errno.EBADF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if i32(arg) < 0 or i32(arg) >= 1024:
            return -errno.EINVAL
        return fds.install(f, lowest=i32(arg), cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if fds.entries[fd].cloexec else 0
    if cmd == F_SETFD:
        fds.entries[fd].cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        r = host.call("fcntl", f.host_fd, F_GETFL, 0)
        if r >= 0 and f.own_nonblock:
            r = (r & ~os.O_NONBLOCK) | (f.flags & os.O_NONBLOCK)
        return r if r < 0 else r & ~O_CLOEXEC
    if cmd == F_SETFL:
        arg = i32(arg)
        r = host.call("fcntl", f.host_fd, F_SETFL, arg | (os.O_NONBLOCK if f.own_nonblock else 0))
        if r == 0:
            f.flags = (f.flags & O_ACCMODE) | (arg & (os.O_APPEND | os.O_NONBLOCK | os.O_DIRECT | 0o2000 | 0o1000000))
        return r
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        raw = t.proc.mm.read(arg, 32)
        if raw is None:
            return -errno.EFAULT
        buf = Buffer(32, raw)
        r = host.call("fcntl", f.host_fd, cmd, buf.ptr)
        if r >= 0 and cmd in (F_GETLK, F_OFD_GETLK):
            t.proc.mm.write(arg, buf.bytes())
        return r
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ, F_GET_SEALS, F_ADD_SEALS, 1024, 1025, 1026):  # + lease/notify
        return host.call("fcntl", f.host_fd, cmd, i32(arg))
    return -errno.EINVAL


# -- ioctl -------------------------------------------------------------------------------------
# Terminal ioctls forwarded to the host terminal: command -> (bytes copied in, bytes copied out).
_TTY_IOCTLS = {
    0x5401: (0, 36),     # TCGETS
    0x5402: (36, 0), 0x5403: (36, 0), 0x5404: (36, 0),   # TCSETS, TCSETSW, TCSETSF
    0x5413: (0, 8),      # TIOCGWINSZ
    0x5414: (8, 0),      # TIOCSWINSZ
    0x541B: (0, 4),      # FIONREAD
    0x5421: (4, 0),      # FIONBIO
    0x5411: (0, 4),      # TIOCOUTQ
}
_TTY_INT_IOCTLS = {0x540B, 0x540A, 0x5409, 0x540E, 0x5422}   # TCFLSH, TCXONC, TCSBRK, TIOCSCTTY, TIOCNOTTY
FIONCLEX, FIOCLEX = 0x5450, 0x5451
TIOCGPGRP, TIOCSPGRP, TIOCGSID = 0x540F, 0x5410, 0x5429


def _job_control(k, t, f, cmd, arg):
    """The terminal's foreground process group and session, in guest ids. The host terminal is
    mvemu's; the guest's job control is kept by the ROS (tcgetpgrp/tcsetpgrp of shells)."""
    if not os.isatty(f.host_fd):
        return -errno.ENOTTY
    if cmd == TIOCGPGRP:
        return 0 if t.proc.mm.write(arg, struct.pack("<i", k.fg_pgrp)) else -errno.EFAULT
    if cmd == TIOCGSID:
        return 0 if t.proc.mm.write(arg, struct.pack("<i", k.init.sid)) else -errno.EFAULT
    raw = t.proc.mm.read(arg, 4)
    if raw is None:
        return -errno.EFAULT
    pgrp = struct.unpack("<i", raw)[0]
    if pgrp < 0:
        return -errno.EINVAL
    if not any(p.pgid == pgrp and not p.zombie for p in k.processes.values()):
        return -errno.ESRCH
    if t.proc.sid != k.init.sid:
        return -errno.ENOTTY
    k.fg_pgrp = pgrp
    return 0


@syscall("ioctl", "fd,ioctl,x")
def sys_ioctl(k, t, fd, cmd, arg, *_):
    cmd &= 0xFFFF_FFFF
    e = t.proc.fds.entries.get(fd & 0xFFFF_FFFF)       # no entry has a negative number
    if e is None:
        return -errno.EBADF
    if cmd == FIOCLEX or cmd == FIONCLEX:
        e.cloexec = cmd == FIOCLEX
        return 0
    f = e.file
    if f.device == "hvm":                              # /dev/hvm: the partner loop's every event
        return hvmdev.ioctl(k, t, f, cmd, arg)
    fd = i32(fd)
    if cmd in (TIOCGPGRP, TIOCSPGRP, TIOCGSID):
        return _job_control(k, t, f, cmd, arg)
    if cmd in _TTY_IOCTLS:
        n_in, n_out = _TTY_IOCTLS[cmd]
        raw = t.proc.mm.read(arg, n_in) if n_in else b""
        if raw is None:
            return -errno.EFAULT
        buf = Buffer(max(n_in, n_out, 1), raw or None)
        r = host.call("ioctl", f.host_fd, cmd, buf.ptr)
        if r >= 0 and n_out and not t.proc.mm.write(arg, buf.bytes(n_out)):
            return -errno.EFAULT
        return r
    if cmd in _TTY_INT_IOCTLS:
        return host.call("ioctl", f.host_fd, cmd, arg)
    try:
        mode = os.fstat(f.host_fd).st_mode
    except OSError as e:
        return _oserr(e)
    if st.S_ISREG(mode) or st.S_ISDIR(mode) or st.S_ISFIFO(mode):
        return -errno.ENOTTY            # what Linux answers for an ioctl a file does not know
    k.report_once(("ioctl", cmd), f"mvemu: unsupported ioctl {cmd:#x} on {f.path}: returning -ENOTTY")
    return -errno.ENOTTY


# -- metadata ----------------------------------------------------------------------------------
OUT = object()     # where the host buffer goes in `_call_out`'s arguments


def _call_out(t, buf_ptr: int, size: int, name: str, *args) -> int:
    """Make host call `name` with a `size`-byte host buffer in place of OUT, then copy the buffer
    to the guest at buf_ptr (a stat, statx, statfs structure: Linux's own layout)."""
    buf = Buffer(size)
    r = host.call(name, *(buf.ptr if a is OUT else a for a in args))
    if r < 0:
        return r
    return 0 if t.proc.mm.write(buf_ptr, buf.bytes()) else -errno.EFAULT


@syscall("fstat", "fd,x")
def sys_fstat(k, t, fd, buf, *_):
    f = _file(t, fd)
    return _call_out(t, buf, 144, "fstat", f.host_fd, OUT) if f else -errno.EBADF


def _fstatat(t, dfd, pathp, buf, flags):
    at = _at_path(t, dfd, pathp)
    if isinstance(at, int):
        return at
    return _call_out(t, buf, 144, "newfstatat", *at, OUT, i32(flags))


@syscall("stat", "s,x")
def sys_stat(k, t, path, buf, *_):
    return _fstatat(t, AT_FDCWD, path, buf, 0)


@syscall("lstat", "s,x")
def sys_lstat(k, t, path, buf, *_):
    return _fstatat(t, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall("newfstatat", "fd,s,x,at")
def sys_newfstatat(k, t, dfd, path, buf, flags, *_):
    return _fstatat(t, dfd, path, buf, flags)


@syscall("statx", "fd,s,at,x,x")
def sys_statx(k, t, dfd, pathp, flags, mask, buf, *_):
    at = _at_path(t, dfd, pathp)
    if isinstance(at, int):
        return at
    return _call_out(t, buf, 256, "statx", *at, i32(flags), mask & 0xFFFF_FFFF, OUT)


@syscall("statfs", "s,x")
def sys_statfs(k, t, pathp, buf, *_):
    path = _path(t, pathp)
    if isinstance(path, int):
        return path
    return _call_out(t, buf, 120, "statfs", _at(t, path), OUT)


@syscall("fstatfs", "fd,x")
def sys_fstatfs(k, t, fd, buf, *_):
    f = _file(t, fd)
    return _call_out(t, buf, 120, "fstatfs", f.host_fd, OUT) if f else -errno.EBADF


def _at(t, path: bytes) -> bytes:
    """A path for host calls that take no dirfd: relative paths go through the guest cwd's fd."""
    if path.startswith(b"/"):
        return path
    return b"/proc/self/fd/%d/" % t.proc.cwd_fd + path


def _getdents(t, name, fd, dirp, count):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    size = min(count, 1 << 20)
    b = Buffer(size)
    r = host.call(name, f.host_fd, b.ptr, size)
    if r > 0 and not t.proc.mm.write(dirp, b.bytes(r)):
        return -errno.EFAULT
    return r


@syscall("getdents64", "fd,x,u")
def sys_getdents64(k, t, fd, dirp, count, *_):
    return _getdents(t, "getdents64", fd, dirp, count)


@syscall("getdents", "fd,x,u")
def sys_getdents(k, t, fd, dirp, count, *_):
    return _getdents(t, "getdents", fd, dirp, count)


def _faccessat(t, dfd, pathp, mode, flags):
    return _path_call(t, "faccessat2", dfd, pathp, i32(mode), i32(flags))


@syscall("access", "s,amode")
def sys_access(k, t, path, mode, *_):
    return _faccessat(t, AT_FDCWD, path, mode, 0)


@syscall("faccessat", "fd,s,amode")
def sys_faccessat(k, t, dfd, path, mode, *_):
    return _faccessat(t, dfd, path, mode, 0)


@syscall("faccessat2", "fd,s,amode,atacc")
def sys_faccessat2(k, t, dfd, path, mode, flags, *_):
    return _faccessat(t, dfd, path, mode, flags)


def _readlinkat(t, dfd, pathp, buf, size):
    if i32(size) <= 0:
        return -errno.EINVAL
    raw = t.proc.mm.read_cstr(pathp, PATH_MAX + 1) if pathp else None
    if raw is None:
        return -errno.EFAULT
    if _is_self_exe(t, raw):
        target = t.proc.exe.encode()
    else:
        path = _host_path(t, raw)
        d = _dirfd(t, dfd)
        if d is None:
            return -errno.EBADF
        b = Buffer(PATH_MAX)
        r = host.call("readlinkat", d, path, b.ptr, PATH_MAX)
        if r < 0:
            return r
        target = b.bytes(r)
    target = target[:size]
    return len(target) if t.proc.mm.write(buf, target) else -errno.EFAULT


@syscall("readlink", "s,x,i")
def sys_readlink(k, t, path, buf, size, *_):
    return _readlinkat(t, AT_FDCWD, path, buf, size)


@syscall("readlinkat", "fd,s,x,i")
def sys_readlinkat(k, t, dfd, path, buf, size, *_):
    return _readlinkat(t, dfd, path, buf, size)


# -- directory tree changes (host pass-through) -------------------------------------------------
def _path_call(t, name, dfd, pathp, *rest, creates=False):
    at = _at_path(t, dfd, pathp)
    if isinstance(at, int):
        return at
    if creates:
        os.umask(t.proc.umask)
    return host.call(name, *at, *rest)


def _two_path_call(t, name, olddfd, oldp, newdfd, newp, *rest):
    old, new = _path(t, oldp), _path(t, newp)
    if isinstance(old, int):
        return old
    if isinstance(new, int):
        return new
    od, nd = _dirfd(t, olddfd), _dirfd(t, newdfd)
    if od is None or nd is None:
        return -errno.EBADF
    return host.call(name, od, old, nd, new, *rest)


@syscall("mkdir", "s,o")
def sys_mkdir(k, t, path, mode, *_):
    return _path_call(t, "mkdirat", AT_FDCWD, path, mode, creates=True)


@syscall("mkdirat", "fd,s,o")
def sys_mkdirat(k, t, dfd, path, mode, *_):
    return _path_call(t, "mkdirat", dfd, path, mode, creates=True)


@syscall("mknodat", "fd,s,o,x")
def sys_mknodat(k, t, dfd, path, mode, dev, *_):
    return _path_call(t, "mknodat", dfd, path, mode, dev, creates=True)


@syscall("rmdir", "s")
def sys_rmdir(k, t, path, *_):
    return _path_call(t, "unlinkat", AT_FDCWD, path, AT_REMOVEDIR)


@syscall("unlink", "s")
def sys_unlink(k, t, path, *_):
    return _path_call(t, "unlinkat", AT_FDCWD, path, 0)


@syscall("unlinkat", "fd,s,at")
def sys_unlinkat(k, t, dfd, path, flags, *_):
    return _path_call(t, "unlinkat", dfd, path, i32(flags))


@syscall("rename", "s,s")
def sys_rename(k, t, old, new, *_):
    return _two_path_call(t, "renameat2", AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("renameat", "fd,s,fd,s")
def sys_renameat(k, t, od, old, nd, new, *_):
    return _two_path_call(t, "renameat2", od, old, nd, new, 0)


@syscall("renameat2", "fd,s,fd,s,rename")
def sys_renameat2(k, t, od, old, nd, new, flags, *_):
    return _two_path_call(t, "renameat2", od, old, nd, new, i32(flags))


@syscall("link", "s,s")
def sys_link(k, t, old, new, *_):
    return _two_path_call(t, "linkat", AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("linkat", "fd,s,fd,s,at")
def sys_linkat(k, t, od, old, nd, new, flags, *_):
    return _two_path_call(t, "linkat", od, old, nd, new, i32(flags))


def _symlinkat(t, targetp, dfd, pathp):
    target = t.proc.mm.read_cstr(targetp, PATH_MAX + 1) if targetp else None
    if target is None:
        return -errno.EFAULT
    at = _at_path(t, dfd, pathp)
    if isinstance(at, int):
        return at
    return host.call("symlinkat", target, *at)


@syscall("symlink", "s,s")
def sys_symlink(k, t, target, path, *_):
    return _symlinkat(t, target, AT_FDCWD, path)


@syscall("symlinkat", "s,fd,s")
def sys_symlinkat(k, t, target, dfd, path, *_):
    return _symlinkat(t, target, dfd, path)


@syscall("chmod", "s,o")
def sys_chmod(k, t, path, mode, *_):
    return _path_call(t, "fchmodat", AT_FDCWD, path, mode)


@syscall("fchmodat", "fd,s,o")
def sys_fchmodat(k, t, dfd, path, mode, *_):
    return _path_call(t, "fchmodat", dfd, path, mode)


@syscall("fchmod", "fd,o")
def sys_fchmod(k, t, fd, mode, *_):
    f = _file(t, fd)
    return host.call("fchmod", f.host_fd, mode) if f else -errno.EBADF


@syscall("chown", "s,i,i")
def sys_chown(k, t, path, uid, gid, *_):
    return _path_call(t, "fchownat", AT_FDCWD, path, i32(uid), i32(gid), 0)


@syscall("lchown", "s,i,i")
def sys_lchown(k, t, path, uid, gid, *_):
    return _path_call(t, "fchownat", AT_FDCWD, path, i32(uid), i32(gid), AT_SYMLINK_NOFOLLOW)


@syscall("fchownat", "fd,s,i,i,at")
def sys_fchownat(k, t, dfd, path, uid, gid, flags, *_):
    return _path_call(t, "fchownat", dfd, path, i32(uid), i32(gid), i32(flags))


@syscall("fchown", "fd,i,i")
def sys_fchown(k, t, fd, uid, gid, *_):
    f = _file(t, fd)
    return host.call("fchown", f.host_fd, i32(uid), i32(gid)) if f else -errno.EBADF


@syscall("utimensat", "fd,s,x,at")
def sys_utimensat(k, t, dfd, pathp, times, flags, *_):
    tb = None
    if times:
        raw = t.proc.mm.read(times, 32)
        if raw is None:
            return -errno.EFAULT
        tb = Buffer(32, raw)
    d = _dirfd(t, dfd)
    if d is None:
        return -errno.EBADF
    if pathp:
        path = _path(t, pathp)
        if isinstance(path, int):
            return path
    else:
        path = None
    return host.call("utimensat", d, path, tb.ptr if tb else None, i32(flags))


@syscall("truncate", "s,i")
def sys_truncate(k, t, pathp, length, *_):
    path = _path(t, pathp)
    if isinstance(path, int):
        return path
    return host.call("truncate", _at(t, path), length)


@syscall("ftruncate", "fd,i")
def sys_ftruncate(k, t, fd, length, *_):
    f = _file(t, fd)
    return host.call("ftruncate", f.host_fd, length) if f else -errno.EBADF


@syscall("fallocate", "fd,i,i,i")
def sys_fallocate(k, t, fd, mode, offset, length, *_):
    f = _file(t, fd)
    return host.call("fallocate", f.host_fd, i32(mode), offset, length) if f else -errno.EBADF


@syscall("fsync", "fd")
def sys_fsync(k, t, fd, *_):
    f = _file(t, fd)
    return host.call("fsync", f.host_fd) if f else -errno.EBADF


@syscall("fdatasync", "fd")
def sys_fdatasync(k, t, fd, *_):
    f = _file(t, fd)
    return host.call("fdatasync", f.host_fd) if f else -errno.EBADF


@syscall("sync")
def sys_sync(k, t, *_):
    return 0


@syscall("flock", "fd,flock")
def sys_flock(k, t, fd, op, *_):
    f = _file(t, fd)
    return host.call("flock", f.host_fd, i32(op)) if f else -errno.EBADF


@syscall("fadvise64", "fd,i,i,i")
def sys_fadvise64(k, t, fd, offset, length, advice, *_):
    f = _file(t, fd)
    return host.call("fadvise64", f.host_fd, offset, length, i32(advice)) if f else -errno.EBADF


# -- working directory -------------------------------------------------------------------------
@syscall("getcwd", "x,u")
def sys_getcwd(k, t, buf, size, *_):
    try:
        cwd = t.proc.cwd.encode() + b"\0"
    except OSError as e:
        return _oserr(e)
    if size < len(cwd):
        return -errno.ERANGE
    return len(cwd) if t.proc.mm.write(buf, cwd) else -errno.EFAULT


def _set_cwd(t, new_fd):
    try:
        os.close(t.proc.cwd_fd)
    except OSError:
        pass
    t.proc.cwd_fd = new_fd
    return 0


@syscall("chdir", "s")
def sys_chdir(k, t, pathp, *_):
    path = _path(t, pathp)
    if isinstance(path, int):
        return path
    r = host.call("openat", t.proc.cwd_fd, path, os.O_PATH | os.O_DIRECTORY | O_CLOEXEC, 0)
    if r < 0:
        return r
    # search permission, as chdir(2) requires
    if host.call("faccessat2", r, b".", os.X_OK, 0x200) < 0 and os.geteuid() != 0:
        os.close(r)
        return -errno.EACCES
    return _set_cwd(t, r)


@syscall("fchdir", "fd")
def sys_fchdir(k, t, fd, *_):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    try:
        if not st.S_ISDIR(os.fstat(f.host_fd).st_mode):
            return -errno.ENOTDIR
        return _set_cwd(t, os.dup(f.host_fd))
    except OSError as e:
        return _oserr(e)


@syscall("chroot", "s")
def sys_chroot(k, t, *_):
    return -errno.EPERM


# -- polling (single process: the host does the waiting) ---------------------------------------
@syscall("poll", "x,u,i")
def sys_poll(k, t, fds_ptr, nfds, timeout, *_):
    timeout = i32(timeout)
    return _poll(k, t, fds_ptr, nfds, None if timeout < 0 else timeout * 1_000_000)


@syscall("ppoll", "x,u,x,x,u")
def sys_ppoll(k, t, fds_ptr, nfds, tsp, sigmask, sigsetsize, *_):
    timeout = timespec_ns(t, tsp)
    if isinstance(timeout, int) and timeout < 0:
        return timeout
    if sigmask and t.wait is None:
        raw = t.proc.mm.read(sigmask, 8)
        if raw is None:
            return -errno.EFAULT
        t.saved_sigmask = t.sigmask
        t.sigmask = struct.unpack("<Q", raw)[0] & ~signals.UNBLOCKABLE
    r = _poll(k, t, fds_ptr, nfds, timeout)
    if sigmask and r is not BLOCK and r != -signals.ERESTARTNOHAND and t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None
    return r


def _poll(k, t, fds_ptr, nfds, timeout_ns):
    """poll(2) without blocking the machine: look once; if nothing is ready, block the thread on
    all the fds (and the deadline) and look again when it wakes."""
    w = k.resume_wait(t, "fd")
    if w is not None and w.interrupted:
        return -signals.ERESTARTNOHAND
    if nfds > 1024:
        return -errno.EINVAL
    raw = t.proc.mm.read(fds_ptr, 8 * nfds) if nfds else b""
    if raw is None:
        return -errno.EFAULT
    entries = [struct.unpack_from("<ihh", raw, 8 * i) for i in range(nfds)]
    revents = [0] * nfds
    p = select.poll()
    host_of: dict[int, list[int]] = {}
    for i, (fd, events, _) in enumerate(entries):
        if fd < 0:
            continue
        f = t.proc.fds.get(fd)
        if f is None:
            revents[i] = select.POLLNVAL
            continue
        host_of.setdefault(f.host_fd, []).append(i)
    for hfd, idx in host_of.items():
        p.register(hfd, _u16(sum(entries[i][1] & 0xFFFF for i in idx)) | 0)
    try:
        for hfd, ev in p.poll(0):
            for i in host_of.get(hfd, []):
                revents[i] = ev & ((entries[i][1] & 0xFFFF) | select.POLLERR | select.POLLHUP | select.POLLNVAL)
    except OSError as e:
        return _oserr(e)
    ready = sum(1 for r in revents if r)
    timed_out = w is not None and w.timed_out
    if not ready and not timed_out and timeout_ns != 0:
        deadline = w.deadline if w is not None and w.deadline else \
            (None if timeout_ns is None else now_ns() + timeout_ns)
        waits = [(hfd, _u16(sum(entries[i][1] & 0xFFFF for i in idx))) for hfd, idx in host_of.items()]
        return k.block(t, Wait("fd", fds=waits, deadline=deadline))
    out = b"".join(struct.pack("<ihh", fd, ev, revents[i]) for i, (fd, ev, _) in enumerate(entries))
    if nfds and not t.proc.mm.write(fds_ptr, out):
        return -errno.EFAULT
    return ready


def _u16(v):
    return v & 0xFFFF


def _select(k, t, nfds, rp, wp, ep, timeout_ns):
    w = k.resume_wait(t, "fd")
    if w is not None and w.interrupted:
        return -signals.ERESTARTNOHAND
    nfds = i32(nfds)
    if nfds < 0 or nfds > 1024:
        return -errno.EINVAL
    nbytes = (nfds + 63) // 64 * 8
    sets = []
    for ptr in (rp, wp, ep):
        if ptr:
            raw = t.proc.mm.read(ptr, nbytes)
            if raw is None:
                return -errno.EFAULT
            sets.append(int.from_bytes(raw, "little"))
        else:
            sets.append(0)
    p = select.poll()
    want: dict[int, int] = {}
    owner: dict[int, list[int]] = {}
    for fd in range(nfds):
        ev = (select.POLLIN if sets[0] >> fd & 1 else 0) | (select.POLLOUT if sets[1] >> fd & 1 else 0) \
            | (select.POLLPRI if sets[2] >> fd & 1 else 0)
        if not ev:
            continue
        f = t.proc.fds.get(fd)
        if f is None:
            return -errno.EBADF
        want[f.host_fd] = want.get(f.host_fd, 0) | ev
        owner.setdefault(f.host_fd, []).append(fd)
    for hfd, ev in want.items():
        p.register(hfd, ev)
    out = [0, 0, 0]
    for hfd, ev in p.poll(0):
        for fd in owner[hfd]:
            if sets[0] >> fd & 1 and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                out[0] |= 1 << fd
            if sets[1] >> fd & 1 and ev & (select.POLLOUT | select.POLLERR):
                out[1] |= 1 << fd
            if sets[2] >> fd & 1 and ev & select.POLLPRI:
                out[2] |= 1 << fd
    ready = sum(bin(x).count("1") for x in out)
    timed_out = w is not None and w.timed_out
    if not ready and not timed_out and timeout_ns != 0:
        deadline = w.deadline if w is not None and w.deadline else \
            (None if timeout_ns is None else now_ns() + timeout_ns)
        return k.block(t, Wait("fd", fds=list(want.items()), deadline=deadline))
    for ptr, v in zip((rp, wp, ep), out):
        if ptr and not t.proc.mm.write(ptr, v.to_bytes(nbytes, "little")):
            return -errno.EFAULT
    return ready


@syscall("select", "i,x,x,x,x")
def sys_select(k, t, nfds, rp, wp, ep, tvp, *_):
    timeout = None
    if tvp:
        raw = t.proc.mm.read(tvp, 16)
        if raw is None:
            return -errno.EFAULT
        sec, usec = struct.unpack("<qq", raw)
        if sec < 0 or not 0 <= usec < 1_000_000:
            return -errno.EINVAL
        timeout = sec * 1_000_000_000 + usec * 1000
    return _select(k, t, nfds, rp, wp, ep, timeout)


@syscall("pselect6", "i,x,x,x,x,x")
def sys_pselect6(k, t, nfds, rp, wp, ep, tsp, sigp, *_):
    timeout = timespec_ns(t, tsp)
    if isinstance(timeout, int) and timeout < 0:
        return timeout
    if sigp and t.wait is None:
        raw = t.proc.mm.read(sigp, 16)
        if raw is None:
            return -errno.EFAULT
        mask_ptr, size = struct.unpack("<QQ", raw)
        if mask_ptr:
            m = t.proc.mm.read(mask_ptr, 8)
            if m is None:
                return -errno.EFAULT
            t.saved_sigmask = t.sigmask
            t.sigmask = struct.unpack("<Q", m)[0] & ~signals.UNBLOCKABLE
    r = _select(k, t, nfds, rp, wp, ep, timeout)
    if r is not BLOCK and r != -signals.ERESTARTNOHAND and t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None
    return r


# -- sockets: what programs ask of descriptors that may be sockets -----------------------------
def _sockname(t, name, fd, addr, lenp):
    f = _file(t, fd)
    if f is None:
        return -errno.EBADF
    raw = t.proc.mm.read(lenp, 4)
    if raw is None:
        return -errno.EFAULT
    n = struct.unpack("<I", raw)[0]
    b, lb = Buffer(max(n, 1)), Buffer(4, raw)
    r = host.call(name, f.host_fd, b.ptr, lb.ptr)
    if r < 0:
        return r
    got = struct.unpack("<I", lb.bytes())[0]
    if not t.proc.mm.write(addr, b.bytes(min(n, got))) or not t.proc.mm.write(lenp, lb.bytes()):
        return -errno.EFAULT
    return r


@syscall("getpeername", "fd,x,x")
def sys_getpeername(k, t, fd, addr, lenp, *_):
    return _sockname(t, "getpeername", fd, addr, lenp)


@syscall("getsockname", "fd,x,x")
def sys_getsockname(k, t, fd, addr, lenp, *_):
    return _sockname(t, "getsockname", fd, addr, lenp)
