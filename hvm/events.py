"""Event channels between HRT threads and their partners in the ROS (DESIGN.md sections 1, 4, 8).

A channel is one `struct hvm_event` record in the partner's memory; both sides reach it at the
same virtual address once the lower half is merged. The record itself carries the request and
the result; the VMM only carries the two notifications (POST_EVENT from the HRT wakes the
partner, COMPLETE_EVENT from the ROS wakes the posting HRT vCPU) and keeps the books: which vCPU
waits on which channel, the trace lines and the `--stats` counters (the paper's Fig. 9 columns).
"""
from __future__ import annotations

import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from . import abi, pagewalk
from .memory import GuestMemory

_THREAD_EXIT = abi.EVENT_KIND["THREAD_EXIT"]
_now_ns = time.perf_counter_ns
_KIND_NAMES = {v: k.lower().replace("_", " ") for k, v in abi.EVENT_KIND.items()}
_FIELD = {name: 8 * i for i, name in enumerate(abi.EVENT_FIELDS)}
_NO_ARGS = {abi.LOCAL_SYSCALLS[n][1] for n in ("getpid", "gettid")}    # traced as name()
_VECTOR_NAMES = {0: "#DE", 1: "#DB", 3: "#BP", 6: "#UD", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 19: "#XM"}


def read_event(mem: GuestMemory, cr3: int, va: int) -> dict[str, int]:
    """The record at `va` (in the merged address space `cr3`), as a dict; raises PageFault."""
    raw = pagewalk.read(mem, cr3, va, 8 * len(abi.EVENT_FIELDS))
    return dict(zip(abi.EVENT_FIELDS, struct.unpack(f"<{len(abi.EVENT_FIELDS)}Q", raw)))


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@dataclass(slots=True)
class Pending:
    cpu: int                      # the HRT vCPU whose thread waits
    posted_ns: int
    record: dict | None           # what was posted (when tracing or counting)


@dataclass
class Stats:
    """What `--stats` prints (the columns of the paper's Fig. 9, plus host time per side)."""
    syscalls: Counter = field(default_factory=Counter)      # forwarded system calls by number
    page_faults: int = 0
    exceptions: int = 0
    thread_exits: int = 0
    merges: int = 0
    remerges: int = 0
    shootdowns: int = 0
    threads_created: int = 0
    nested_threads: int = 0                                  # of those, created from HRT code
    preemptions: int = 0                                     # time-slice interrupts to HRT threads
    served_at_once: int = 0                                  # events the partner completed inside POST_EVENT
    local: Counter = field(default_factory=Counter)         # system calls the AeroKernel served itself
    forward_ns: int = 0                                      # host time from post to completion
    forwarded: int = 0
    ros_ns: int = 0                                          # host time running each side's vCPUs
    hrt_ns: int = 0


class Channels:
    def __init__(self, mem: GuestMemory, log, trace: bool, stats: bool):
        self.mem = mem
        self.log = log
        self.trace = trace
        self.keep_books = trace or stats
        self.stats = Stats()
        # channel VA -> the waiting HRT vCPU: its index, or with books to keep (--trace, --stats) a
        # Pending with the post's time and record
        self.pending: dict[int, int | Pending] = {}
        self.notify_ros = lambda channel: None       # set by the machine: wake the partner

    def posted(self, cpu: int, channel: int, cr3: int) -> None:
        """POST_EVENT from HRT vCPU `cpu`."""
        if not self.keep_books:                      # (once per forwarded event: the short way)
            self.pending[channel] = cpu
            self.notify_ros(channel)
            return
        try:
            record = read_event(self.mem, cr3, channel)
        except pagewalk.PageFault:
            record = None
        if record is not None:
            self._count(record)
        if record is None or record["kind"] != _THREAD_EXIT:
            self.pending[channel] = Pending(cpu, _now_ns(), record)
        elif self.trace:
            how = "exit system call" if record["a0"] else "returned"
            self.log(f"[hvm] HRT thread {record['thread']} exits ({how}, {_signed(record['result'])}) "
                     f"-> partner (channel {channel:#x})")
        self.notify_ros(channel)

    def completed(self, channel: int, cr3: int) -> int | None:
        """COMPLETE_EVENT from the partner: the vCPU to wake, or None if nothing waits there."""
        p = self.pending.pop(channel, None)
        if p is None or not self.keep_books:
            return p
        cost = _now_ns() - p.posted_ns
        self.stats.forward_ns += cost
        self.stats.forwarded += 1
        if self.trace and p.record is not None:
            try:
                result = _signed(read_event(self.mem, cr3, channel)["result"])
            except pagewalk.PageFault:
                result = None
            self.log(f"[hvm] forwarded {self.describe(p.record)} = "
                     f"{'?' if result is None else result}  (HRT vCPU {p.cpu}, thread {p.record['thread']}, "
                     f"{cost / 1000:.1f} us)")
        return p.cpu

    def local(self, cpu: int, nr: int, result: int, thread: int, arg0: int) -> None:
        """LOCAL_SYSCALL: the AeroKernel served system call `nr` itself (`--hrt-local`)."""
        self.stats.local[nr] += 1
        if self.trace:
            from ros_shim.syscalls.names import NAMES
            args = "" if nr in _NO_ARGS else f"{arg0:#x}, ..."
            self.log(f"[hvm] local {NAMES.get(nr, nr)}({args}) = {_signed(result)}  (served in the AeroKernel, "
                     f"not forwarded: HRT vCPU {cpu}, thread {thread})")

    def _count(self, r: dict) -> None:
        kind = r["kind"]
        s = self.stats
        if kind == abi.EVENT_KIND["SYSCALL"]:
            s.syscalls[r["nr"]] += 1
        elif kind == abi.EVENT_KIND["PAGE_FAULT"]:
            s.page_faults += 1
        elif kind == abi.EVENT_KIND["EXCEPTION"]:
            s.exceptions += 1
        elif kind == abi.EVENT_KIND["THREAD_EXIT"]:
            s.thread_exits += 1

    @staticmethod
    def describe(r: dict) -> str:
        kind = r["kind"]
        if kind == abi.EVENT_KIND["SYSCALL"]:
            from ros_shim.syscalls.names import NAMES
            args = ", ".join(f"{r[a]:#x}" for a in ("a0", "a1", "a2"))
            return f"syscall {NAMES.get(r['nr'], r['nr'])}({args}, ...)"
        if kind == abi.EVENT_KIND["PAGE_FAULT"]:
            access = "write" if r["error"] & 2 else "fetch" if r["error"] & 0x10 else "read"
            return f"page fault {access} {r['addr']:#x} at rip {r['rip']:#x} (error {r['error']:#x})"
        if kind == abi.EVENT_KIND["EXCEPTION"]:
            name = _VECTOR_NAMES.get(r["vector"], f"vector {r['vector']}")
            return f"exception {name} at rip {r['rip']:#x}" + (f" (cr2 {r['addr']:#x})" if r["vector"] == 14 else "")
        return _KIND_NAMES.get(kind, f"event {kind}")

    def report(self) -> str:
        """The `--stats` table."""
        from ros_shim.syscalls.names import NAMES
        s = self.stats
        total_sys = sum(s.syscalls.values())
        lines = ["mvemu: Multiverse statistics",
                 f"  forwarded system calls   {total_sys:>10}",
                 f"  local system calls       {sum(s.local.values()):>10}",
                 f"  forwarded page faults    {s.page_faults:>10}",
                 f"  forwarded exceptions     {s.exceptions:>10}",
                 f"  merges / re-merges       {s.merges:>6} / {s.remerges}",
                 f"  TLB shootdowns           {s.shootdowns:>10}",
                 f"  HRT threads created      {s.threads_created:>10}"
                 + (f" ({s.nested_threads} nested)" if s.nested_threads else ""),
                 f"  HRT thread preemptions   {s.preemptions:>10}",
                 f"  host time, ROS vCPU      {s.ros_ns / 1e6:>10.1f} ms",
                 f"  host time, HRT vCPUs     {s.hrt_ns / 1e6:>10.1f} ms"]
        if s.forwarded:
            lines.append(f"  mean forwarding cost     {s.forward_ns / s.forwarded / 1000:>10.1f} us (post to completion)")
            lines.append(f"  served during the post   {s.served_at_once:>10} (the HRT vCPU did not halt)")
        if s.syscalls:
            top = ", ".join(f"{NAMES.get(nr, nr)} {n}" for nr, n in s.syscalls.most_common(8))
            lines.append(f"  most forwarded: {top}")
        if s.local:
            top = ", ".join(f"{NAMES.get(nr, nr)} {n}" for nr, n in s.local.most_common(8))
            lines.append(f"  served in the AeroKernel (--hrt-local): {top}")
        return "\n".join(lines)
