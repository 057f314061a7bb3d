"""The AeroKernel as a debugger sees it: its threads and where their registers are (OS awareness
for the HRT, as ros_shim/debug.py is for the ROS).

The AeroKernel exports `struct hvm_debug_info` (hvm/abi.py, filled in aerokernel/thread.c): where
its per-vCPU `current[]` pointers, idle threads and thread table are, and the layout of `struct
thread`. From that this module reads, through the HRT's page tables, which thread each HRT vCPU
runs and every live program thread (a top-level HRT thread: the VMM's id, its event channel, its
FS base). The thread a vCPU runs has its registers in the vCPU. A thread switched out has only
what `switch_to` saved on its kernel stack (abi.SWITCH_FRAME: the callee-saved registers and the
address it resumes at), so that is all a debugger can honestly show for it; the other registers
are unavailable. This is what the AeroKernel itself knows, read where it keeps it.
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from .. import abi, pagewalk
from .interface import TargetError



@dataclass
class AkThread:
    """One AeroKernel thread as read from its `struct thread`."""
    addr: int                     # the struct's (kernel) virtual address
    id: int
    state: int
    cpu: int
    rsp: int                      # saved RSP (meaningful while switched out)
    channel: int                  # 0: a kernel thread; else a program thread's event record
    fs_base: int
    idle: bool = False            # a vCPU's idle thread (boot context, work loop)

    @property
    def program(self) -> bool:
        return self.channel != 0


@dataclass
class Snapshot:
    current: dict                 # HRT vCPU index -> AkThread it runs
    idle: dict                    # HRT vCPU index -> its idle AkThread
    program: list                 # live program threads, by id
    states: dict                  # state name -> number


class AeroKernelView:
    """Reads the AeroKernel's thread tables of one booted Hrt."""

    def __init__(self, hrt):
        self.hrt = hrt
        self.mem = hrt.mem
        self._info: dict | None = None
        addr = hrt.image.symbols.get(abi.DEBUG_INFO_SYMBOL) if hrt.image is not None else None
        if addr is not None:
            raw = self._read(addr, 8 * len(abi.DEBUG_INFO_FIELDS))
            if raw is not None:
                info = dict(zip(abi.DEBUG_INFO_FIELDS, struct.unpack(f"<{len(abi.DEBUG_INFO_FIELDS)}Q", raw)))
                if info["magic"] == abi.DEBUG_INFO_MAGIC:
                    self._info = info
                    # bytes of struct thread to read: up to the last field used
                    self._span = max(v for k, v in info.items() if k.startswith("off_")) + 8

    @property
    def available(self) -> bool:
        """False for an AeroKernel image without hvm_debug_info: only its vCPUs can be shown."""
        return self._info is not None

    # -- memory of the AeroKernel ------------------------------------------------------------------
    def _pa(self, va: int) -> int | None:
        """The physical address of a kernel virtual address (the image is contiguous in HRT
        memory; anything else through the HRT's page tables)."""
        hrt = self.hrt
        off = va - abi.KERNEL_VBASE
        if 0 <= off < hrt.image.span:
            return hrt.layout["image"] + off
        try:
            return pagewalk.translate(self.mem, hrt.cr3, va)
        except pagewalk.PageFault:
            return None

    def _read(self, va: int, n: int) -> bytes | None:
        off = va - abi.KERNEL_VBASE
        if 0 <= off and off + n <= self.hrt.image.span:
            return self.mem.read(self.hrt.layout["image"] + off, n)
        try:
            return pagewalk.read(self.mem, self.hrt.cr3, va, n)
        except pagewalk.PageFault:
            return None

    def _u64(self, va: int) -> int | None:
        pa = self._pa(va)
        return None if pa is None else self.mem.read_u64(pa)

    def _thread_at(self, addr: int, idle: bool = False) -> AkThread | None:
        i = self._info
        raw = self._read(addr, self._span)
        if raw is None:
            return None

        def u64(off):
            return struct.unpack_from("<Q", raw, off)[0]

        def u32(off):
            return struct.unpack_from("<I", raw, off)[0]
        return AkThread(addr, u32(i["off_id"]), u32(i["off_state"]), u32(i["off_cpu"]), u64(i["off_rsp"]),
                        0 if idle else u64(i["off_channel"]), u64(i["off_fs_base"]), idle)

    # -- what the debugger asks ------------------------------------------------------------------------
    def current(self, cpu: int) -> AkThread | None:
        """The thread HRT vCPU `cpu` runs (cheap: asked before each instruction while stepping)."""
        i = self._info
        if i is None or cpu >= i["max_cpus"]:
            return None
        addr = self._u64(i["current"] + 8 * cpu)
        if not addr:
            return None
        return self._thread_at(addr, idle=addr == i["idle"] + cpu * i["thread_size"])

    def snapshot(self, ncpus: int) -> Snapshot | None:
        i = self._info
        if i is None:
            return None
        size, n = i["thread_size"], i["max_threads"]
        current = {c: t for c in range(min(ncpus, i["max_cpus"])) if (t := self.current(c)) is not None}
        idle = {c: t for c in range(min(ncpus, i["max_cpus"]))
                if (t := self._thread_at(i["idle"] + c * size, idle=True)) is not None}
        states = {k[len("state_"):]: v for k, v in i.items() if k.startswith("state_")}
        table = self._read(i["threads"], size * n)
        program = []
        if table is not None:
            live = (states["runnable"], states["running"], states["blocked"])
            for k in range(n):
                base = k * size
                state = struct.unpack_from("<I", table, base + i["off_state"])[0]
                channel = struct.unpack_from("<Q", table, base + i["off_channel"])[0]
                if state in live and channel:
                    t = self._thread_at(i["threads"] + base)
                    if t is not None:
                        program.append(t)
        program.sort(key=lambda t: t.id)
        return Snapshot(current, idle, program, states)

    def saved_registers(self, t: AkThread, fixed: dict) -> SwitchedOutRegisters:
        return SwitchedOutRegisters(self, t, fixed)


class SwitchedOutRegisters:
    """A thread the AeroKernel switched out: what switch_to saved at its RSP (callee-saved
    registers and the resume address), its stack pointer, the kernel's segments, its FS base; the
    vCPU's system registers in `fixed`. Everything else is unavailable. The saved slots can be
    written (they are memory on its kernel stack)."""

    def __init__(self, view: AeroKernelView, t: AkThread, fixed: dict):
        self.view = view
        self.rsp = t.rsp
        raw = view._read(t.rsp, 8 * len(abi.SWITCH_FRAME))
        self.values = dict(fixed)
        self.slots = {}
        if raw is not None:
            for k, (name, value) in enumerate(zip(abi.SWITCH_FRAME, struct.unpack(f"<{len(abi.SWITCH_FRAME)}Q", raw))):
                self.values[name] = value
                self.slots[name] = t.rsp + 8 * k
            self.values["rsp"] = t.rsp + 8 * len(abi.SWITCH_FRAME)      # after switch_to's ret
        self.values.update({"cs": abi.HRT_KERNEL_CS, "ss": abi.HRT_KERNEL_DS, "ds": abi.HRT_KERNEL_DS,
                            "es": abi.HRT_KERNEL_DS, "fs": 0, "gs": 0, "fs_base": t.fs_base})

    def read(self, names) -> dict:
        return {n: self.values.get(n) for n in names}

    def write(self, name: str, value) -> None:
        slot = self.slots.get(name)
        pa = self.view._pa(slot) if slot is not None else None
        if pa is None:
            raise TargetError(f"{name} of an HRT thread that is switched out is not saved anywhere", errno.EPERM)
        self.view.mem.write(pa, struct.pack("<Q", value & 0xFFFF_FFFF_FFFF_FFFF))
        self.values[name] = value
