"""/dev/hvm: the ROS's door to the HVM (like Palacios' ROS-side HVM module).

A ROS program cannot issue hypercalls (ring 3 may not do port I/O); it opens /dev/hvm and asks
with ioctls. The ROS kernel checks the request, copies what the VMM needs out of the caller's
memory, and issues the hypercall itself. INVOKE_SYNC and SELFTEST block only the calling thread
until the HRT reports the call done.
"""
from __future__ import annotations

import errno
import os
import struct

from hvm import abi

from ..files import OpenFile
from ..process import Wait

IOC = {name: number for name, (number, _doc) in abi.ROS_IOCTLS.items()}
_IOC_WAIT_EVENT, _IOC_COMPLETE_WAIT = IOC["WAIT_EVENT"], IOC["COMPLETE_WAIT"]
MAX_IMAGE = 64 << 20


def open_device(k, t, flags: int) -> int:
    if k.hypercall is None:
        return -errno.ENODEV
    host = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)      # a descriptor to hold; never read
    f = OpenFile(host, flags & ~os.O_CLOEXEC, abi.ROS_DEVICE, device="hvm")
    fd = t.proc.fds.install(f, cloexec=bool(flags & os.O_CLOEXEC))
    if fd < 0:
        os.close(host)
    return fd


def ioctl(k, t, f, cmd: int, arg: int) -> int:
    if cmd == _IOC_COMPLETE_WAIT or cmd == _IOC_WAIT_EVENT:      # the partner's loop: first
        return _channel_wait(k, t, t.proc.mm, arg, cmd == _IOC_COMPLETE_WAIT)
    handler = _IOCTLS.get(cmd)
    return -errno.ENOTTY if handler is None else handler(k, t, cmd, arg)


# One function per request (_IOCTLS): (kernel, thread, cmd, arg) -> the ioctl's result.
def _install(k, t, cmd, arg):
    mm = t.proc.mm
    raw = mm.read(arg, 16)
    if raw is None:
        return -errno.EFAULT
    addr, length = struct.unpack("<QQ", raw)
    if not 0 < length <= MAX_IMAGE:
        return -errno.EINVAL
    image = mm.read(addr, length)
    if image is None:
        return -errno.EFAULT
    return k.hypercall(_HC["INSTALL_IMAGE"], addr, length, data=image)


def _boot(k, t, cmd, arg):
    return k.hypercall(_HC["BOOT_HRT"])


def _state(k, t, cmd, arg):
    return k.hypercall(_HC_GET_STATE)


def _reset(k, t, cmd, arg):
    return k.hypercall(_HC["RESET_HRT"])


def _merge(k, t, cmd, arg):
    mm = t.proc.mm
    if k.hvm_mm is not None and k.hvm_mm is not mm:
        return -errno.EBUSY                          # another process runs in the HRT
    r = k.hypercall(_HC["MERGE"], mm.cr3)
    if r == 0:
        k.hvm_mm = mm
    return r


def _create_thread(k, t, cmd, arg):
    mm = t.proc.mm
    if k.hvm_mm is not mm:
        return -errno.EPERM                          # only the merged process has HRT threads
    raw = mm.read(arg, 8 * len(abi.THREAD_IOC_FIELDS))
    if raw is None:
        return -errno.EFAULT
    fields = struct.unpack(f"<{len(abi.THREAD_IOC_FIELDS)}Q", raw)
    return k.hypercall(_HC["CREATE_THREAD"], t.tid, t.proc.pid, data=fields)


def _invoke(k, t, cmd, arg):                         # asynchronous: queued, not waited for
    raw = t.proc.mm.read(arg, 16)
    if raw is None:
        return -errno.EFAULT
    func, farg = struct.unpack("<QQ", raw)
    if func == 0:
        return -errno.EINVAL
    return k.hypercall(_HC["INVOKE_FUNC"], func, farg)


def _invoke_sync(k, t, cmd, arg):                    # INVOKE_SYNC and SELFTEST: the caller blocks
    mm = t.proc.mm
    w = k.resume_wait(t, "hvm")
    if w is not None:                                # re-run after the HRT reported the call done
        if not w.woken:
            return -errno.EINTR
        result = w.data
        if cmd == IOC["INVOKE_SYNC"] and not mm.write(arg + 16, struct.pack("<q", _signed(result))):
            return -errno.EFAULT
        return _signed(result) if cmd == IOC["SELFTEST"] else 0
    if cmd == IOC["INVOKE_SYNC"]:
        raw = mm.read(arg, 24)
        if raw is None:
            return -errno.EFAULT
        func, farg, _ = struct.unpack("<QQQ", raw)
        if func == 0:
            return -errno.EINVAL
    else:
        func, farg = 0, 0                            # address 0: the AeroKernel's self-tests
    wait = Wait("hvm")

    def done(result: int, t=t, wait=wait) -> None:
        wait.data = result
        k.sched.wake(t, woken=True)

    r = k.hypercall(_HC["INVOKE_FUNC_SYNC"], func, farg, on_done=done)
    if r is not None:
        return r
    return k.block(t, wait)


_HC = abi.HC
_HC_GET_STATE = _HC["GET_STATE"]
_IOCTLS = {IOC["INSTALL"]: _install, IOC["BOOT"]: _boot, IOC["STATE"]: _state, IOC["RESET"]: _reset,
           IOC["MERGE"]: _merge, IOC["CREATE_THREAD"]: _create_thread, IOC["INVOKE"]: _invoke,
           IOC["INVOKE_SYNC"]: _invoke_sync, IOC["SELFTEST"]: _invoke_sync}


_STATE = abi.EVENT_STATE
_POSTED, _TAKEN, _COMPLETED = _STATE["POSTED"], _STATE["TAKEN"], _STATE["COMPLETED"]
_KIND, _STATE_WORD = abi.EVENT_FIELDS.index("kind"), abi.EVENT_FIELDS.index("state")
_RECORD_WORDS = max(_KIND, _STATE_WORD) + 1
_HC_COMPLETE = abi.HC["COMPLETE_EVENT"]


def take_posted(mm, channel: int) -> int | None:
    """The HRT posted on `channel`, where the partner waits: take the event for it (TAKEN) and
    return its kind, which the partner's ioctl then returns without being re-run (None: nothing
    to take)."""
    words = mm.kernel_words(channel, _RECORD_WORDS)
    if words is None:
        return None
    u64 = mm.mem.u64
    state_i = words[_STATE_WORD]
    if u64[state_i] != _POSTED:
        return None
    u64[state_i] = _TAKEN
    return u64[words[_KIND]]


def _channel_wait(k, t, mm, channel: int, complete: bool) -> int:
    """The partner's side of an event channel: complete the event it took (COMPLETE_WAIT), then
    take the next posted one (its kind), blocking until the HRT posts. The post takes the event
    for the blocked partner (`take_posted`) and completes its call; a call re-run after another
    wake-up checks the record's state first."""
    if t.wait is not None:                   # a re-run after a wake-up that did not complete it
        w = k.resume_wait(t, "hvmchan")
        if w is not None and not w.woken:
            k.hvm_waiters.pop(channel, None)
            return -errno.EINTR
    if k.hvm_mm is not mm or channel & 7:
        return -errno.EINVAL
    words = mm.kernel_words(channel, _RECORD_WORDS)
    if words is None:
        return -errno.EFAULT
    kind_i, state_i = words[_KIND], words[_STATE_WORD]
    u64 = mm.mem.u64
    state = u64[state_i]
    if complete and state == _TAKEN:
        u64[state_i] = _COMPLETED
        k.hypercall(_HC_COMPLETE, channel)
        state = u64[state_i]                 # (the HRT may have posted again meanwhile)
    if state == _POSTED:
        u64[state_i] = _TAKEN
        return u64[kind_i]
    k.hvm_waiters[channel] = t
    return k.block(t, Wait("hvmchan"))


def _signed(v: int) -> int:
    v &= 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v >> 63 else v
