"""Processes and threads of the ROS."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .files import FdTable
from .mm import AddressSpace


@dataclass(eq=False)
class Thread:
    tid: int
    proc: "Process"
    fs_base: int = 0
    clear_child_tid: int = 0
    robust_list: int = 0
    sigmask: int = 0
    context: object = None          # saved vCPU state while not running
    alive: bool = True


@dataclass(eq=False)
class Process:
    pid: int
    ppid: int
    mm: AddressSpace
    fds: FdTable
    cwd_fd: int                     # host directory fd of the working directory
    exe: str = ""
    comm: str = ""
    umask: int = 0o022
    pgid: int = 0
    sid: int = 0
    threads: list[Thread] = field(default_factory=list)
    sigactions: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # sig -> (handler, flags, restorer, mask)
    exit_status: int | None = None      # wait status (Linux encoding) once dead
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def cwd(self) -> str:
        return os.readlink(f"/proc/self/fd/{self.cwd_fd}")
