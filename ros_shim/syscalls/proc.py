"""Process, identity, limits, signal bookkeeping and randomness system calls."""
from __future__ import annotations

import errno
import os
import signal as host_signal
import struct

from .table import NORETURN, i32, signed, syscall

ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID, ARCH_SET_CPUID = 0x1011, 0x1012
RLIM_INFINITY = 0xFFFF_FFFF_FFFF_FFFF
RLIMIT_STACK, RLIMIT_NOFILE, RLIMIT_AS = 3, 7, 9
_DEFAULT_RLIMITS = {RLIMIT_STACK: (8 << 20, RLIM_INFINITY), RLIMIT_NOFILE: (1024, 1048576)}


@syscall("getpid")
def sys_getpid(k, t, *_):
    return t.proc.pid


@syscall("gettid")
def sys_gettid(k, t, *_):
    return t.tid


@syscall("getppid")
def sys_getppid(k, t, *_):
    return t.proc.parent.pid if t.proc.parent is not None else t.proc.ppid


@syscall("getuid")
def sys_getuid(k, t, *_):
    return os.getuid()


@syscall("geteuid")
def sys_geteuid(k, t, *_):
    return os.geteuid()


@syscall("getgid")
def sys_getgid(k, t, *_):
    return os.getgid()


@syscall("getegid")
def sys_getegid(k, t, *_):
    return os.getegid()


@syscall("getgroups", "i,x")
def sys_getgroups(k, t, size, ptr, *_):
    groups = os.getgroups()
    size = i32(size)
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -errno.EINVAL
    return len(groups) if t.proc.mm.write(ptr, struct.pack(f"<{len(groups)}I", *groups)) else -errno.EFAULT


def _put_ids(t, ptrs, values):
    for p, v in zip(ptrs, values):
        if p and not t.proc.mm.write(p, struct.pack("<I", v)):
            return -errno.EFAULT
    return 0


@syscall("getresuid", "x,x,x")
def sys_getresuid(k, t, r, e, s, *_):
    return _put_ids(t, (r, e, s), os.getresuid())


@syscall("getresgid", "x,x,x")
def sys_getresgid(k, t, r, e, s, *_):
    return _put_ids(t, (r, e, s), os.getresgid())


@syscall("getpgrp")
def sys_getpgrp(k, t, *_):
    return t.proc.pgid


@syscall("getpgid", "i")
def sys_getpgid(k, t, pid, *_):
    p = t.proc if i32(pid) == 0 else k.processes.get(i32(pid))
    return p.pgid if p else -errno.ESRCH


@syscall("getsid", "i")
def sys_getsid(k, t, pid, *_):
    p = t.proc if i32(pid) == 0 else k.processes.get(i32(pid))
    return p.sid if p else -errno.ESRCH


@syscall("umask", "o")
def sys_umask(k, t, mask, *_):
    old, t.proc.umask = t.proc.umask, mask & 0o777
    return old


@syscall("uname", "x")
def sys_uname(k, t, buf, *_):
    host = os.uname()
    fields = ["Linux", k.opt.hostname, k.opt.uname_release, host.version, "x86_64", "(none)"]
    data = b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields)
    return 0 if t.proc.mm.write(buf, data) else -errno.EFAULT


@syscall("arch_prctl", "arch,x")
def sys_arch_prctl(k, t, code, addr, *_):
    vcpu = k.cpu.vcpu
    if code == ARCH_SET_FS:
        if addr >= 1 << 47:
            return -errno.EPERM
        t.fs_base = addr
        vcpu.set_reg("fs_base", addr)
        return 0
    if code == ARCH_SET_GS:
        if addr >= 1 << 47:
            return -errno.EPERM
        vcpu.set_reg("gs_base", addr)
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        value = vcpu.reg("fs_base" if code == ARCH_GET_FS else "gs_base")
        return 0 if t.proc.mm.write(addr, struct.pack("<Q", value)) else -errno.EFAULT
    if code == ARCH_GET_CPUID:
        return 1
    if code == ARCH_SET_CPUID:
        return -errno.ENODEV
    return -errno.EINVAL


@syscall("set_tid_address", "x")
def sys_set_tid_address(k, t, addr, *_):
    t.clear_child_tid = addr
    return t.tid


@syscall("set_robust_list", "x,u")
def sys_set_robust_list(k, t, head, length, *_):
    if length != 24:
        return -errno.EINVAL
    t.robust_list = head
    return 0


@syscall("get_robust_list", "i,x,x")
def sys_get_robust_list(k, t, pid, head_ptr, len_ptr, *_):
    if i32(pid) not in (0, t.tid):
        return -errno.ESRCH
    mm = t.proc.mm
    if not mm.write(head_ptr, struct.pack("<Q", t.robust_list)) or not mm.write(len_ptr, struct.pack("<Q", 24)):
        return -errno.EFAULT
    return 0


@syscall("rseq", "x,u,x,x")
def sys_rseq(k, t, *_):
    # Restartable sequences need the kernel to rewrite user state at preemption; mvemu's ROS does not
    # implement them, exactly like a Linux kernel built without CONFIG_RSEQ (libc then falls back).
    return -errno.ENOSYS


@syscall("prlimit64", "i,rlimit,x,x")
def sys_prlimit64(k, t, pid, resource, new, old, *_):
    if i32(pid) not in (0, t.proc.pid):
        return -errno.ESRCH
    if resource >= 16:
        return -errno.EINVAL
    proc = t.proc
    cur = proc.rlimits.get(resource) or _DEFAULT_RLIMITS.get(resource) or _host_rlimit(resource)
    if old and not proc.mm.write(old, struct.pack("<QQ", *cur)):
        return -errno.EFAULT
    if new:
        data = proc.mm.read(new, 16)
        if data is None:
            return -errno.EFAULT
        soft, hard = struct.unpack("<QQ", data)
        if soft > hard:
            return -errno.EINVAL
        if hard > cur[1] and os.geteuid() != 0:
            return -errno.EPERM
        proc.rlimits[resource] = (soft, hard)
    return 0


def _host_rlimit(resource: int) -> tuple[int, int]:
    import resource as r
    try:
        soft, hard = r.getrlimit(resource)
    except (ValueError, OSError):
        return (RLIM_INFINITY, RLIM_INFINITY)
    conv = lambda v: RLIM_INFINITY if v == r.RLIM_INFINITY else v
    return conv(soft), conv(hard)


@syscall("getrlimit", "rlimit,x")
def sys_getrlimit(k, t, resource, old, *_):
    return sys_prlimit64(k, t, 0, resource, 0, old)


@syscall("setrlimit", "rlimit,x")
def sys_setrlimit(k, t, resource, new, *_):
    return sys_prlimit64(k, t, 0, resource, new, 0)


def _affinity_target(k, t, pid):
    pid = i32(pid)
    return t if pid == 0 else k.find_thread(0, pid) if pid > 0 else None


@syscall("sched_getaffinity", "i,u,x")
def sys_sched_getaffinity(k, t, pid, size, mask, *_):
    """The CPUs (ROS vCPUs) thread `pid` may run on; the result is the mask's size in bytes."""
    ncpu = len(k.cpus)
    nbytes = 8 * ((ncpu + 63) // 64)
    if size < nbytes or size & 7:
        return -errno.EINVAL
    th = _affinity_target(k, t, pid)
    if th is None:
        return -errno.ESRCH
    bits = (1 << ncpu) - 1 if th.affinity is None else th.affinity
    return nbytes if t.proc.mm.write(mask, bits.to_bytes(nbytes, "little")) else -errno.EFAULT


@syscall("sched_setaffinity", "i,u,x")
def sys_sched_setaffinity(k, t, pid, size, mask, *_):
    """Restrict thread `pid` to the CPUs (ROS vCPUs) in the mask; bits past the last vCPU are
    ignored, and a mask with none of them is EINVAL. A thread that may no longer run where it is
    moves at once (inherited by threads and processes it creates, as on Linux)."""
    ncpu = len(k.cpus)
    raw = t.proc.mm.read(mask, min(size, 8 * ((ncpu + 63) // 64))) if size else b""
    if raw is None:
        return -errno.EFAULT
    th = _affinity_target(k, t, pid)
    if th is None:
        return -errno.ESRCH
    every = (1 << ncpu) - 1
    bits = int.from_bytes(raw, "little") & every
    if not bits:
        return -errno.EINVAL
    th.affinity = None if bits == every else bits
    if th.on_cpu is not None and not th.allowed_on(th.on_cpu.index):
        th.on_cpu.need_resched = True
    return 0


@syscall("getcpu", "x,x,x")
def sys_getcpu(k, t, cpu, node, _tcache, *_):
    """The ROS vCPU the thread runs on (all in NUMA node 0)."""
    mm = t.proc.mm
    if cpu and not mm.write(cpu, struct.pack("<I", k.cpu.index)):
        return -errno.EFAULT
    if node and not mm.write(node, b"\0\0\0\0"):
        return -errno.EFAULT
    return 0


@syscall("getrandom", "x,u,grnd")
def sys_getrandom(k, t, buf, n, flags, *_):
    if flags & ~0x7:
        return -errno.EINVAL
    n = min(n, 33554431)
    return n if t.proc.mm.write(buf, k.rng.randbytes(n)) else -errno.EFAULT


@syscall("prctl", "prctl,x,x,x,x")
def sys_prctl(k, t, option, a2, *_):
    PR_SET_NAME, PR_GET_NAME = 15, 16
    if option == PR_SET_NAME:
        name = t.proc.mm.read_cstr(a2, 16)
        if name is None:
            return -errno.EFAULT
        t.proc.comm = name[:15].decode(errors="replace")
        return 0
    if option == PR_GET_NAME:
        return 0 if t.proc.mm.write(a2, t.proc.comm.encode()[:15].ljust(16, b"\0")) else -errno.EFAULT
    return -errno.EINVAL


@syscall("sysinfo", "x")
def sys_sysinfo(k, t, info, *_):
    """Uptime and load from the host; memory figures are the guest's own RAM."""
    with open("/proc/uptime") as f:
        uptime = int(float(f.read().split()[0]))
    loads = [int(x * 65536) for x in os.getloadavg()]
    total = k.frames.total * 4096
    free = (k.frames.total - k.frames.used) * 4096
    data = struct.pack("<q3Q6QH6xQQI", uptime, *loads, total, free, 0, 0, 0, 0,
                       len(k.processes), 0, 0, 1)
    data = data.ljust(112, b"\0")
    return 0 if t.proc.mm.write(info, data) else -errno.EFAULT
