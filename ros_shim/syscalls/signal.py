"""Signal system calls: dispositions, masks, sending, waiting, the alternate stack, timers."""
from __future__ import annotations

import errno
import struct

from .. import signals
from ..process import Wait
from ..sched import now_ns
from ..signals import SigInfo
from .table import NORETURN, i32, syscall

ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
NS = 1_000_000_000


def _check_pending(k, t) -> None:
    """After a mask change: if something became deliverable, leave the fast path to deliver it."""
    if k.deliverable(t):
        k.need_resched = True


@syscall("rt_sigaction", "sig,x,x,u")
def sys_rt_sigaction(k, t, sig, act, oldact, sigsetsize, *_):
    sig = i32(sig)
    if sigsetsize != 8 or not 1 <= sig <= signals.NSIG:
        return -errno.EINVAL
    proc = t.proc
    mm = proc.mm
    old = proc.sig.get(sig)
    new = None
    if act:
        if sig in (signals.SIGKILL, signals.SIGSTOP):
            return -errno.EINVAL
        data = mm.read(act, 32)
        if data is None:
            return -errno.EFAULT
        handler, flags, restorer, mask = struct.unpack("<4Q", data)
        new = (handler, flags, restorer, mask & ~signals.UNBLOCKABLE)
    if oldact and not mm.write(oldact, struct.pack("<4Q", *old)):
        return -errno.EFAULT
    if new is not None:
        proc.sig.table[sig] = new
        if new[0] == signals.SIG_IGN or (new[0] == signals.SIG_DFL and signals.default_action(sig) == "ignore"):
            proc.pending &= ~signals.bit(sig)          # POSIX: setting SIG_IGN discards pending
            for th in proc.threads:
                th.pending &= ~signals.bit(sig)
    return 0


@syscall("rt_sigprocmask", "sighow,x,x,u")
def sys_rt_sigprocmask(k, t, how, set_ptr, old_ptr, sigsetsize, *_):
    if sigsetsize != 8:
        return -errno.EINVAL
    mm = t.proc.mm
    old = t.sigmask
    if set_ptr:
        data = mm.read(set_ptr, 8)
        if data is None:
            return -errno.EFAULT
        new = struct.unpack("<Q", data)[0]
        if how == 0:
            mask = old | new
        elif how == 1:
            mask = old & ~new
        elif how == 2:
            mask = new
        else:
            return -errno.EINVAL
        t.sigmask = mask & ~signals.UNBLOCKABLE
    if old_ptr and not mm.write(old_ptr, struct.pack("<Q", old)):
        return -errno.EFAULT
    _check_pending(k, t)
    return 0


@syscall("rt_sigpending", "x,u")
def sys_rt_sigpending(k, t, set_ptr, size, *_):
    if size > 8:
        return -errno.EINVAL
    pending = (t.pending | t.proc.pending) & t.sigmask
    return 0 if t.proc.mm.write(set_ptr, struct.pack("<Q", pending)[:size]) else -errno.EFAULT


@syscall("rt_sigreturn")
def sys_rt_sigreturn(k, t, *_):
    # Rewriting every register is done with the vCPU stopped (kernel.on_exit -> deferred op).
    t.deferred = "sigreturn"
    return NORETURN


@syscall("pause")
def sys_pause(k, t, *_):
    if k.resume_wait(t, "signal") is not None:
        return -signals.ERESTARTNOHAND
    return k.block(t, Wait("signal"))


@syscall("rt_sigsuspend", "x,u")
def sys_rt_sigsuspend(k, t, mask_ptr, size, *_):
    if size != 8:
        return -errno.EINVAL
    if k.resume_wait(t, "signal") is not None:
        return -signals.ERESTARTNOHAND
    raw = t.proc.mm.read(mask_ptr, 8)
    if raw is None:
        return -errno.EFAULT
    t.saved_sigmask = t.sigmask
    t.sigmask = struct.unpack("<Q", raw)[0] & ~signals.UNBLOCKABLE
    if k.deliverable(t):
        return -signals.ERESTARTNOHAND
    return k.block(t, Wait("signal"))


@syscall("sigaltstack", "x,x")
def sys_sigaltstack(k, t, ss, old, *_):
    mm = t.proc.mm
    cur_sp, cur_flags, cur_size = t.altstack
    rsp = k.cpu.vcpu.reg("rsp")
    on = cur_size and cur_sp <= rsp < cur_sp + cur_size
    if old and not mm.write(old, struct.pack("<QiiQ", cur_sp, signals.SS_ONSTACK if on else cur_flags, 0, cur_size)):
        return -errno.EFAULT
    if ss:
        raw = mm.read(ss, 24)
        if raw is None:
            return -errno.EFAULT
        sp, flags, size = struct.unpack("<Qi4xQ", raw)
        if on:
            return -errno.EPERM
        if flags & ~(signals.SS_DISABLE | 0x8000_0000):      # SS_AUTODISARM
            return -errno.EINVAL
        if flags & signals.SS_DISABLE:
            t.altstack = (0, signals.SS_DISABLE, 0)
        else:
            if size < 2048:
                return -errno.ENOMEM
            t.altstack = (sp, 0, size)
    return 0


def _signal_procs(k, t, pid):
    """The processes kill(pid, ...) addresses."""
    if pid > 0:
        p = k.processes.get(pid)
        return [p] if p is not None and not p.zombie else []
    if pid == 0:
        return [p for p in k.processes.values() if p.pgid == t.proc.pgid and not p.zombie]
    if pid == -1:
        return [p for p in k.processes.values() if p is not t.proc and not p.zombie]
    return [p for p in k.processes.values() if p.pgid == -pid and not p.zombie]


@syscall("kill", "i,sig")
def sys_kill(k, t, pid, sig, *_):
    pid, sig = i32(pid), i32(sig)
    if not 0 <= sig <= signals.NSIG:
        return -errno.EINVAL
    targets = _signal_procs(k, t, pid)
    if not targets:
        return -errno.ESRCH
    if sig:
        for p in targets:
            k.post_signal(p, SigInfo(sig, signals.SI_USER, pid=t.proc.pid, uid=k.uid))
    return 0


@syscall("tgkill", "i,i,sig")
def sys_tgkill(k, t, tgid, tid, sig, *_):
    tgid, tid, sig = i32(tgid), i32(tid), i32(sig)
    if tgid <= 0 or tid <= 0 or not 0 <= sig <= signals.NSIG:
        return -errno.EINVAL
    th = k.find_thread(tgid, tid)
    if th is None:
        return -errno.ESRCH
    if sig:
        k.post_signal(th.proc, SigInfo(sig, signals.SI_TKILL, pid=t.proc.pid, uid=k.uid), thread=th)
    return 0


@syscall("tkill", "i,sig")
def sys_tkill(k, t, tid, sig, *_):
    tid, sig = i32(tid), i32(sig)
    if tid <= 0 or not 0 <= sig <= signals.NSIG:
        return -errno.EINVAL
    th = k.find_thread(0, tid)
    if th is None:
        return -errno.ESRCH
    if sig:
        k.post_signal(th.proc, SigInfo(sig, signals.SI_TKILL, pid=t.proc.pid, uid=k.uid), thread=th)
    return 0


# -- ITIMER_REAL and alarm ---------------------------------------------------------------------
def _itimer_value(proc):
    if not proc.itimer:
        return 0, 0
    expiry, interval = proc.itimer
    return max(0, expiry - now_ns()), interval


def _pack_itimerval(interval, value):
    tv = lambda ns: (ns // NS, (ns % NS) // 1000)
    return struct.pack("<4q", *tv(interval), *tv(value))


@syscall("alarm", "u")
def sys_alarm(k, t, seconds, *_):
    left, _ = _itimer_value(t.proc)
    seconds &= 0xFFFF_FFFF
    k.set_itimer(t.proc, (now_ns() + seconds * NS, 0) if seconds else None)
    return (left + NS // 2) // NS if left else 0     # rounded, as Linux does


@syscall("setitimer", "itimer,x,x")
def sys_setitimer(k, t, which, new, old, *_):
    which = i32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    if which != ITIMER_REAL:
        k.report_once(("itimer", which), "mvemu: ITIMER_VIRTUAL/ITIMER_PROF are not supported: returning EINVAL")
        return -errno.EINVAL
    value, interval = _itimer_value(t.proc)
    if new:
        raw = t.proc.mm.read(new, 32)
        if raw is None:
            return -errno.EFAULT
        isec, iusec, vsec, vusec = struct.unpack("<4q", raw)
        if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
            return -errno.EINVAL
        v = vsec * NS + vusec * 1000
        k.set_itimer(t.proc, (now_ns() + v, isec * NS + iusec * 1000) if v else None)
    if old and not t.proc.mm.write(old, _pack_itimerval(interval, value)):
        return -errno.EFAULT
    return 0


@syscall("getitimer", "itimer,x")
def sys_getitimer(k, t, which, cur, *_):
    if i32(which) not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    value, interval = _itimer_value(t.proc) if i32(which) == ITIMER_REAL else (0, 0)
    return 0 if t.proc.mm.write(cur, _pack_itimerval(interval, value)) else -errno.EFAULT
