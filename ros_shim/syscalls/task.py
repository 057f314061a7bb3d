"""Process and thread life cycle: clone/fork/vfork/clone3, execve, exit, wait4/waitid, groups."""
from __future__ import annotations

import errno
import os
import struct

from unicorn import x86_const as x86

from .. import loader, signals
from ..process import BLOCKED, DEAD, RUNNABLE, Process, Thread, Wait
from ..signals import SigInfo
from .table import NORETURN, i32, signed, syscall

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x20000, 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x200000, 0x400000, 0x800000, 0x1000000
CLONE_IO = 0x8000_0000
_NAMESPACES = 0x7E02_0000 & ~CLONE_SETTLS & ~CLONE_PARENT_SETTID & ~CLONE_CHILD_CLEARTID & ~CLONE_DETACHED \
    & ~CLONE_UNTRACED & ~CLONE_CHILD_SETTID
WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x0100_0000
__WNOTHREAD, __WALL, __WCLONE = 0x2000_0000, 0x4000_0000, 0x8000_0000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
ARG_MAX = 2 * 1024 * 1024


@syscall("exit", "i")
def sys_exit(k, t, code, *_):
    k.exit_thread(t, i32(code) & 0xFF)
    return NORETURN


@syscall("exit_group", "i")
def sys_exit_group(k, t, code, *_):
    k.exit_process(t.proc, i32(code) & 0xFF)
    return NORETURN


@syscall("sched_yield")
def sys_sched_yield(k, t, *_):
    if k.sched.runq:
        k.cpu.slice_over = True
        k.cpu.need_resched = True
    return 0


# -- clone ---------------------------------------------------------------------------------------
def do_clone(k, t, flags, stack, ptid, ctid, tls, exit_signal):
    if flags & CLONE_THREAD and not flags & CLONE_SIGHAND or flags & CLONE_SIGHAND and not flags & CLONE_VM:
        return -errno.EINVAL
    if flags & (CLONE_NEWNS | 0x7C00_0000) & ~CLONE_IO & ~CLONE_UNTRACED & ~CLONE_CHILD_SETTID:
        return -errno.EPERM                      # namespaces need privileges mvemu does not model
    vcpu = k.cpu.vcpu
    parent = t.proc
    ctx = vcpu.save_context()                    # the parent's state at the syscall instruction
    ctx.reg_write(x86.UC_X86_REG_RIP, vcpu.reg("rip") + 2)
    ctx.reg_write(x86.UC_X86_REG_RAX, 0)
    if stack:
        ctx.reg_write(x86.UC_X86_REG_RSP, stack)
    if flags & CLONE_SETTLS:
        ctx.reg_write(x86.UC_X86_REG_FS_BASE, tls)
    tid = k.alloc_pid()
    if flags & CLONE_THREAD:
        proc = parent
    else:
        if flags & CLONE_VM:
            mm = parent.mm
            mm.users += 1
        else:
            mm = parent.mm.fork()      # the child's CR3 is loaded when it is switched in
        proc = Process(pid=tid, ppid=parent.pid, mm=mm,
                       fds=parent.fds if flags & CLONE_FILES else parent.fds.fork(),
                       cwd_fd=os.dup(parent.cwd_fd), exe=parent.exe, comm=parent.comm, auxv=parent.auxv,
                       umask=parent.umask, pgid=parent.pgid, sid=parent.sid,
                       sig=parent.sig if flags & CLONE_SIGHAND else parent.sig.copy(),
                       exit_signal=exit_signal, rlimits=dict(parent.rlimits))
        if flags & CLONE_FILES:
            parent.fds.users += 1
        real_parent = parent.parent if flags & CLONE_PARENT and parent.parent else parent
        proc.parent = real_parent
        proc.ppid = real_parent.pid
        real_parent.children.append(proc)
        k.processes[tid] = proc
    child = Thread(tid=tid, proc=proc, ctx=ctx, sigmask=t.sigmask, affinity=t.affinity, altstack=t.altstack if not flags & CLONE_VM or flags & CLONE_VFORK else (0, signals.SS_DISABLE, 0))
    proc.threads.append(child)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    tidb = struct.pack("<i", tid)
    if flags & CLONE_PARENT_SETTID and not parent.mm.write(ptid, tidb):
        return -errno.EFAULT
    if flags & CLONE_CHILD_SETTID and not proc.mm.write(ctid, tidb):
        return -errno.EFAULT
    k.sched.make_runnable(child)
    if flags & CLONE_VFORK:                       # the parent sleeps until the child execs or exits
        proc.vfork_parent = t
        return k.block(t, Wait("vfork", data=tid))
    return tid


def _clone_result(k, t, flags, stack, ptid, ctid, tls, exit_signal):
    w = k.resume_wait(t, "vfork")
    if w is not None:                             # vfork: the child has exec'd or exited
        return w.data
    return do_clone(k, t, flags, stack, ptid, ctid, tls, exit_signal)


@syscall("clone", "clone,x,x,x,x")
def sys_clone(k, t, flags, stack, ptid, ctid, tls, *_):
    return _clone_result(k, t, flags & ~0xFF, stack, ptid, ctid, tls, flags & 0xFF)


@syscall("fork")
def sys_fork(k, t, *_):
    return _clone_result(k, t, 0, 0, 0, 0, 0, signals.SIGCHLD)


@syscall("vfork")
def sys_vfork(k, t, *_):
    return _clone_result(k, t, CLONE_VM | CLONE_VFORK, 0, 0, 0, 0, signals.SIGCHLD)


@syscall("clone3", "x,u")
def sys_clone3(k, t, args, size, *_):
    if size < 64 or size > 4096:
        return -errno.EINVAL
    raw = t.proc.mm.read(args, min(size, 88))
    if raw is None:
        return -errno.EFAULT
    raw = raw.ljust(88, b"\0")
    flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup = \
        struct.unpack("<11Q", raw)
    if set_tid or set_tid_size or flags & CLONE_PIDFD or exit_signal > 64 or flags & 0xFF:
        return -errno.EINVAL
    if (stack == 0) != (stack_size == 0) and not (flags & CLONE_VM == 0 and stack == 0):
        return -errno.EINVAL
    sp = stack + stack_size if stack else 0
    return _clone_result(k, t, flags, sp, parent_tid, child_tid, tls, exit_signal)


# -- execve --------------------------------------------------------------------------------------
def _read_ptr_array(t, addr, limit=ARG_MAX):
    out, total = [], 0
    if not addr:
        return out
    mm = t.proc.mm
    while True:
        raw = mm.read(addr, 8)
        if raw is None:
            return None
        p = struct.unpack("<Q", raw)[0]
        if not p:
            return out
        s = mm.read_cstr(p, ARG_MAX)
        if s is None:
            return None
        total += len(s) + 1
        if total > limit:
            return -errno.E2BIG
        out.append(s)
        addr += 8


def _resolve_script(path: str, argv: list[bytes], depth: int = 0):
    """#! interpreters, as the kernel's binfmt_script does (up to 4 levels)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:
        raise loader.ExecError(os.strerror(e.errno), e.errno)
    if not head.startswith(b"#!") or depth > 4:
        return path, argv
    line = head[2:].split(b"\n", 1)[0].strip()
    if not line:
        raise loader.ExecError("empty #! line", errno.ENOEXEC)
    interp, _, arg = line.partition(b" ")
    arg = arg.strip()
    new_argv = [interp] + ([arg] if arg else []) + [path.encode()] + argv[1:]
    return _resolve_script(os.fsdecode(interp), new_argv, depth + 1)


@syscall("execve", "s,x,x")
def sys_execve(k, t, pathp, argvp, envpp, *_):
    return _execveat(k, t, -100, pathp, argvp, envpp, 0)


@syscall("execveat", "fd,s,x,x,x")
def sys_execveat(k, t, dfd, pathp, argvp, envpp, flags, *_):
    return _execveat(k, t, i32(dfd), pathp, argvp, envpp, flags)


def _execveat(k, t, dfd, pathp, argvp, envpp, flags):
    from . import fs
    path = fs._path(t, pathp)
    if isinstance(path, int):
        return path
    argv = _read_ptr_array(t, argvp)
    envp = _read_ptr_array(t, envpp)
    if argv is None or envp is None:
        return -errno.EFAULT
    if isinstance(argv, int) or isinstance(envp, int):
        return -errno.E2BIG
    proc = t.proc
    if not path.startswith(b"/"):
        d = fs._dirfd(t, dfd)
        if d is None:
            return -errno.EBADF
        host_path = f"/proc/self/fd/{d}/" + os.fsdecode(path)
    else:
        host_path = os.fsdecode(path)
    if not path:
        return -errno.ENOENT
    if not os.access(host_path, os.X_OK):
        return -errno.EACCES if os.path.exists(host_path) else -errno.ENOENT
    try:
        real_path, argv = _resolve_script(host_path, argv)
        image = loader.read_elf(real_path)
    except loader.ExecError as e:
        return -e.errno
    # Point of no return: the old image goes.
    for th in proc.threads:
        if th is not t and th.alive:
            k._thread_gone(th)
    proc.threads = [t]
    old_mm = proc.mm
    proc.mm = k.new_address_space()
    old_mm.destroy()
    proc.fds.close_on_exec()
    for sig, (handler, *_rest) in list(proc.sig.table.items()):
        if handler != signals.SIG_IGN:
            del proc.sig.table[sig]
    t.altstack = (0, signals.SS_DISABLE, 0)
    t.clear_child_tid = 0
    t.robust_list = 0
    execfn = path
    try:
        k.exec_image(t, image, argv, envp, execfn)
    except loader.ExecError as e:             # too late to fail: the old image is gone
        k.kill_process(proc, signals.SIGSEGV, f"execve failed after the point of no return: {e}")
        return NORETURN
    proc.exe = os.path.realpath(real_path)
    proc.comm = os.path.basename(os.fsdecode(path))[:15]
    if proc.vfork_parent is not None:
        k.sched.wake(proc.vfork_parent, woken=True)
        proc.vfork_parent = None
    return NORETURN


# -- wait ----------------------------------------------------------------------------------------
def _wait_match(proc: Process, child: Process, idtype: int, ident: int) -> bool:
    if idtype == P_ALL:
        return True
    if idtype == P_PID:
        return child.pid == ident
    if idtype == P_PGID:
        return child.pgid == (ident or proc.pgid)
    return False


def _find_waitable(k, t, idtype, ident, options):
    """(child, kind) of the first child with something to report, or None; -ECHILD if none matches."""
    proc = t.proc
    candidates = [c for c in proc.children if _wait_match(proc, c, idtype, ident)]
    clone_filter = lambda c: options & __WALL or bool(options & __WCLONE) == (c.exit_signal != signals.SIGCHLD)
    candidates = [c for c in candidates if clone_filter(c)]
    if not candidates:
        return -errno.ECHILD
    for c in candidates:
        if c.zombie and options & WEXITED:
            return c, "exit"
        if c.stopped and not c.reported_stop and options & WUNTRACED:
            return c, "stop"
        if c.continued and options & WCONTINUED:
            return c, "cont"
    return None


def _reap(k, t, child):
    t.proc.children.remove(child)
    k.processes.pop(child.pid, None)


@syscall("wait4", "i,x,wait,x")
def sys_wait4(k, t, pid, status_ptr, options, rusage, *_):
    pid, options = i32(pid), i32(options)
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE):
        return -errno.EINVAL
    k.resume_wait(t, "child")
    if pid == -1:
        idtype, ident = P_ALL, 0
    elif pid > 0:
        idtype, ident = P_PID, pid
    else:
        idtype, ident = P_PGID, -pid if pid < -1 else 0
    found = _find_waitable(k, t, idtype, ident, options | WEXITED)
    if isinstance(found, int):
        return found
    if found is None:
        if options & WNOHANG:
            return 0
        return k.block(t, Wait("child"))
    child, kind = found
    if kind == "exit":
        status = child.exit_status
        _reap(k, t, child)
    elif kind == "stop":
        child.reported_stop = True
        status = 0x7F | (signals.SIGSTOP << 8)
    else:
        child.continued = False
        status = 0xFFFF
    if status_ptr and not t.proc.mm.write(status_ptr, struct.pack("<i", status)):
        return -errno.EFAULT
    if rusage and not t.proc.mm.write(rusage, bytes(144)):
        return -errno.EFAULT
    return child.pid


@syscall("waitid", "idtype,i,x,wait,x")
def sys_waitid(k, t, idtype, ident, infop, options, rusage, *_):
    idtype, ident, options = i32(idtype), i32(ident), i32(options)
    if idtype not in (P_ALL, P_PID, P_PGID) or not options & (WEXITED | WUNTRACED | WCONTINUED):
        return -errno.EINVAL
    k.resume_wait(t, "child")
    found = _find_waitable(k, t, idtype, ident, options)
    if isinstance(found, int):
        return found
    if found is None:
        if options & WNOHANG:
            if infop and not t.proc.mm.write(infop, bytes(128)):
                return -errno.EFAULT
            return 0
        return k.block(t, Wait("child"))
    child, kind = found
    if kind == "exit":
        st = child.exit_status
        code, status = (signals.CLD_EXITED, st >> 8) if st & 0x7F == 0 else \
            (signals.CLD_DUMPED if st & 0x80 else signals.CLD_KILLED, st & 0x7F)
        if not options & WNOWAIT:
            _reap(k, t, child)
    elif kind == "stop":
        code, status = signals.CLD_STOPPED, signals.SIGSTOP
        if not options & WNOWAIT:
            child.reported_stop = True
    else:
        code, status = signals.CLD_CONTINUED, signals.SIGCONT
        if not options & WNOWAIT:
            child.continued = False
    info = SigInfo(signals.SIGCHLD, code, pid=child.pid, uid=k.uid, status=status)
    if infop and not t.proc.mm.write(infop, info.pack()):
        return -errno.EFAULT
    return 0


# -- process groups and sessions -----------------------------------------------------------------
@syscall("setpgid", "i,i")
def sys_setpgid(k, t, pid, pgid, *_):
    pid, pgid = i32(pid), i32(pgid)
    if pgid < 0:
        return -errno.EINVAL
    target = t.proc if pid == 0 else k.processes.get(pid)
    if target is None or (target is not t.proc and target.parent is not t.proc):
        return -errno.ESRCH
    if target.sid != t.proc.sid:
        return -errno.EPERM
    if target.pid == target.sid:
        return -errno.EPERM
    pgid = pgid or target.pid
    if pgid != target.pid and not any(p.pgid == pgid and p.sid == t.proc.sid for p in k.processes.values()):
        return -errno.EPERM
    target.pgid = pgid
    return 0


@syscall("setsid")
def sys_setsid(k, t, *_):
    proc = t.proc
    if any(p.pgid == proc.pid for p in k.processes.values() if not p.zombie):
        return -errno.EPERM
    proc.sid = proc.pgid = proc.pid
    return proc.pid
