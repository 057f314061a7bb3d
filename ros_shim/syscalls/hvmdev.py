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
    hc = abi.HC
    mm = t.proc.mm
    if cmd == IOC["INSTALL"]:
        raw = mm.read(arg, 16)
        if raw is None:
            return -errno.EFAULT
        addr, length = struct.unpack("<QQ", raw)
        if not 0 < length <= MAX_IMAGE:
            return -errno.EINVAL
        image = mm.read(addr, length)
        if image is None:
            return -errno.EFAULT
        return k.hypercall(hc["INSTALL_IMAGE"], addr, length, data=image)
    if cmd == IOC["BOOT"]:
        return k.hypercall(hc["BOOT_HRT"])
    if cmd == IOC["STATE"]:
        return k.hypercall(hc["GET_STATE"])
    if cmd == IOC["RESET"]:
        return k.hypercall(hc["RESET_HRT"])
    if cmd in (IOC["INVOKE_SYNC"], IOC["SELFTEST"]):
        w = k.resume_wait(t, "hvm")
        if w is not None:                            # re-run after the HRT reported the call done
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
            func, farg = 0, 0                        # address 0: the AeroKernel's self-tests
        wait = Wait("hvm")

        def done(result: int, t=t, wait=wait) -> None:
            wait.data = result
            k.sched.wake(t, woken=True)

        r = k.hypercall(hc["INVOKE_FUNC_SYNC"], func, farg, on_done=done)
        if r is not None:
            return r
        return k.block(t, wait)
    return -errno.ENOTTY


def _signed(v: int) -> int:
    v &= 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v >> 63 else v
