"""Processes and threads of the ROS."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .files import FdTable
from .mm import AddressSpace

RUNNABLE, BLOCKED, STOPPED, DEAD = "runnable", "blocked", "stopped", "dead"


@dataclass(eq=False, slots=True)
class Wait:
    """Why a thread is blocked. The syscall that blocked re-runs when the thread wakes (restart
    style, like Linux's -ERESTARTSYS path) and reads the outcome from here."""
    kind: str                          # "fd", "futex", "child", "sleep", "signal", "vfork", "forever"
    nr: int = -1                       # the blocked syscall
    fds: list | tuple = ()             # kind "fd": [(host fd, poll events)] awaited
    internal: bool = False             # kind "fd": only guest pipes, woken directly (no polling)
    deadline: int | None = None        # CLOCK_MONOTONIC ns, or None
    key: tuple | None = None           # kind "futex": (address space, address)
    bitset: int = 0xFFFF_FFFF
    woken: bool = False
    timed_out: bool = False
    interrupted: bool = False
    data: object = None
    result: int | None = None          # the call's return value when its waker completed it: no re-run
    args: tuple = ()                   # the blocked call's arguments (kept for --trace only)


@dataclass(eq=False)
class SigActions:
    """Signal dispositions: shared by the threads of a process (and by CLONE_SIGHAND children)."""
    table: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)   # sig -> (handler, flags, restorer, mask)

    def get(self, sig: int) -> tuple[int, int, int, int]:
        return self.table.get(sig, (0, 0, 0, 0))

    def copy(self) -> "SigActions":
        return SigActions(dict(self.table))


@dataclass(eq=False, repr=False)
class Thread:
    tid: int
    proc: "Process"
    state: str = RUNNABLE
    ctx: object = None                  # saved vCPU state while off-CPU (a Unicorn context)
    on_cpu: object = None               # the RosCpu whose vCPU holds its registers (then ctx is stale)
    entry: tuple[int, int] | None = None   # (rip, rsp): enter ring 3 fresh (after exec)
    wait: Wait | None = None
    sigmask: int = 0
    saved_sigmask: int | None = None    # restored after a handler run from sigsuspend/ppoll
    pending: int = 0                    # thread-directed pending signals (bitmask)
    siginfo: dict = field(default_factory=dict)
    altstack: tuple[int, int, int] = (0, 2, 0)   # ss_sp, ss_flags (SS_DISABLE), ss_size
    clear_child_tid: int = 0
    robust_list: int = 0
    restart_nr: int | None = None       # syscall to restart if a signal interrupted it
    restart_deadline: int | None = None # nanosleep resumed after a stop, keeps its deadline
    deferred: str | None = None         # work for the stopped vCPU after this syscall (sigreturn)
    fault_text: str = ""                # why the last CPU fault happened (for mvemu's death line)
    affinity: int | None = None         # sched_setaffinity's CPU mask (bit i: ROS vCPU i); None: all

    def allowed_on(self, cpu: int) -> bool:
        return self.affinity is None or bool(self.affinity >> cpu & 1)

    @property
    def alive(self) -> bool:
        return self.state != DEAD

    def __repr__(self) -> str:
        return f"<Thread {self.tid} of pid {self.proc.pid} {self.state}>"


@dataclass(eq=False, repr=False)
class Process:
    pid: int
    ppid: int
    mm: AddressSpace
    fds: FdTable
    cwd_fd: int                          # host directory fd of the working directory
    exe: str = ""
    comm: str = ""
    auxv: bytes = b""                    # the auxiliary vector of the last exec (for debuggers)
    umask: int = 0o022
    pgid: int = 0
    sid: int = 0
    threads: list[Thread] = field(default_factory=list)
    sig: SigActions = field(default_factory=SigActions)
    pending: int = 0                     # process-directed pending signals
    siginfo: dict = field(default_factory=dict)
    exit_status: int | None = None       # wait status (Linux encoding) once a zombie
    exit_signal: int = 17                # signal sent to the parent at exit (SIGCHLD)
    children: list["Process"] = field(default_factory=list)
    parent: "Process | None" = None
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    itimer: tuple[int, int] | None = None   # ITIMER_REAL: (next expiry ns monotonic, interval ns)
    vfork_parent: "Thread | None" = None
    stopped: bool = False
    reported_stop: bool = False
    continued: bool = False

    @property
    def cwd(self) -> str:
        return os.readlink(f"/proc/self/fd/{self.cwd_fd}")

    @property
    def live_threads(self) -> list[Thread]:
        return [t for t in self.threads if t.state != DEAD]

    @property
    def zombie(self) -> bool:
        return self.exit_status is not None

    def __repr__(self) -> str:
        return f"<Process {self.pid} {self.comm!r}{' zombie' if self.zombie else ''}>"
