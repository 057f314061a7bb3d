"""What the protocol layer needs from a debug target, and what it gets back when the target stops.

`protocol.Session` speaks the GDB Remote Serial Protocol against this interface only; the machine
implements it in `target.MachineTarget`, the protocol tests with a fake. Thread ids are gdb's
(positive integers); signal numbers here are Linux's (the protocol translates them to gdb's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Breakpoint kinds as numbered in the Z/z packets.
SW_BREAK, HW_BREAK, WATCH_WRITE, WATCH_READ, WATCH_ACCESS = range(5)
WATCH_REASON = {WATCH_WRITE: "watch", WATCH_READ: "rwatch", WATCH_ACCESS: "awatch"}


class TargetError(Exception):
    """A request the target cannot satisfy; the reply is `Exx` with this errno."""

    def __init__(self, message: str, errno: int = 14):
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class StopEvent:
    """Why the machine stopped. Exactly one of: a signal in a thread (breakpoints, steps and
    watchpoints are SIGTRAP with a `reason`), the debugged program's exit, its death by a signal."""
    thread: int = 0
    signal: int = 5                    # Linux signal number
    reason: str = ""                   # "swbreak", "hwbreak", "watch", "rwatch", "awatch" or ""
    address: int = 0                   # the data address of a watchpoint hit
    exit_code: int | None = None       # W: the program exited with this status
    killed_by: int | None = None       # X: the program was killed by this (Linux) signal


@dataclass(frozen=True)
class ResumeAction:
    """One action of a vCont packet: `kind` is "c" (continue), "s" (step one instruction) or "r"
    (step while the pc stays in [start, end)); thread None applies to every thread not named."""
    kind: str
    thread: int | None = None
    signal: int = 0                    # Linux signal to deliver on resuming (0: none)
    start: int = 0
    end: int = 0


class Target(Protocol):
    # threads
    def threads(self) -> list[int]: ...
    def thread_alive(self, tid: int) -> bool: ...
    def thread_extra_info(self, tid: int) -> str: ...
    def stopped_thread(self) -> int: ...
    # registers: one value per regs.REGISTERS entry (int, or bytes for x87), None if unavailable
    def read_registers(self, tid: int) -> list: ...
    def write_register(self, tid: int, number: int, value) -> None: ...
    # memory (virtual addresses, through the thread's page tables); reads may come back short
    def read_memory(self, tid: int, addr: int, length: int) -> bytes: ...
    def write_memory(self, tid: int, addr: int, data: bytes) -> None: ...
    # breakpoints and watchpoints; False: not supported (the reply is empty)
    def insert_breakpoint(self, tid: int, kind: int, addr: int, length: int) -> bool: ...
    def remove_breakpoint(self, tid: int, kind: int, addr: int, length: int) -> bool: ...
    # execution
    def resume(self, actions: list[ResumeAction]) -> None: ...
    def kill(self) -> None: ...
    def detach(self) -> None: ...
    # information
    def exec_file(self, pid: int | None) -> str: ...
    def auxv(self, tid: int) -> bytes | None: ...
    def signal_info(self, tid: int) -> bytes | None: ...      # siginfo_t of a signal stop
    def monitor(self, tid: int, command: str) -> str: ...
