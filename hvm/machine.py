"""The machine: guest-physical memory, vCPUs and the run loop (kvmtool's shape: one match on exits).

The VMM serves hypercalls itself and hands every other exit of a ROS vCPU to the guest OS that runs
there (the ROS kernel model) through the `GuestOS` interface.
"""
from __future__ import annotations

import errno
from typing import Protocol

from . import abi
from .memory import GuestMemory, Partition
from .vcpu import Exit, ExitKind, Vcpu


class GuestOS(Protocol):
    finished: bool
    exit_status: int

    def boot(self, vcpu: Vcpu) -> None: ...
    def on_syscall(self, vcpu: Vcpu) -> bool: ...
    def on_exception(self, vcpu: Vcpu, exit: Exit) -> bool: ...
    def on_exit(self, vcpu: Vcpu, exit: Exit) -> None: ...


class _Dispatch:
    """What a vCPU calls from inside its hooks; bound methods as attributes keep the hot path short."""

    def __init__(self, on_syscall, on_exception, on_hypercall):
        self.on_syscall = on_syscall
        self.on_exception = on_exception
        self.on_hypercall = on_hypercall


class Machine:
    def __init__(self, mem_size: int):
        self.memory = GuestMemory(mem_size)
        self.ros = self.memory.add_partition("ros", 0, mem_size)
        self.vcpus: list[Vcpu] = []

    def add_ros_vcpu(self, guest: GuestOS) -> Vcpu:
        dispatch = _Dispatch(guest.on_syscall, guest.on_exception, self.on_hypercall)
        vcpu = Vcpu(len(self.vcpus), self.memory, [self.ros], dispatch)
        self.vcpus.append(vcpu)
        return vcpu

    def on_hypercall(self, vcpu: Vcpu, exit: Exit) -> bool:
        """`out` to a port. Only the HVM port is a hypercall, and only ring 0 may issue one; any
        other port access (or ring 3 doing I/O) stops the vCPU for the guest OS to handle (#GP)."""
        if exit.port != abi.HVM_PORT or vcpu.cpl() != 0:
            return False
        vcpu.set_rax(-errno.ENOSYS)       # the hypercall set arrives with [hrt-boot]
        return True

    def run(self, guest: GuestOS) -> int:
        """Boot `guest` on a ROS vCPU and run until it finishes; returns its exit status."""
        vcpu = self.add_ros_vcpu(guest)
        guest.boot(vcpu)
        while not guest.finished:
            exit = vcpu.run()
            guest.on_exit(vcpu, exit)
        return guest.exit_status
