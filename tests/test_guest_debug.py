"""Vcpu.set_guest_debug on the tiny hand-built machine of test_vcpu: breakpoints stop before the
instruction (also in code translated before they were set), a step executes exactly one instruction,
a watched store stops at the storing instruction with memory as before it (so a read-modify-write is
applied exactly once when the vCPU goes on), a watched load stops before its effect, an asynchronous
debug stop, and nothing stays armed after disarming."""
from __future__ import annotations

import struct

import pytest

from hvm.vcpu import ExitKind
from test_vcpu import HLT, KCODE, KDATA, Machine, mov_rbx

INC_RCX = b"\x48\xff\xc1"                        # inc rcx
ADD_MEM_1 = b"\x48\x83\x03\x01"                  # add qword [rbx], 1
LOAD_RDX = b"\x48\x8b\x13"                       # mov rdx, [rbx]


class Debugger:
    def __init__(self, code_reason="breakpoint", watch=True):
        self.code, self.watch = [], []
        self.code_reason = code_reason
        self.watch_answer = watch
        self.steps = None                        # stop at the N-th instruction seen

    def on_code(self, vcpu, addr):
        self.code.append(addr)
        if self.steps is not None:
            return "step" if len(self.code) == self.steps else None
        return self.code_reason

    def on_watch(self, vcpu, pa, size, write):
        """Called for accesses that may overlap a watched range (hooks start 15 bytes early)."""
        self.watch.append((pa, size, write, vcpu.reg("rip")))
        return self.watch_answer

    def on_mappings(self, vcpu):
        pass


@pytest.fixture
def m():
    return Machine()


def test_breakpoint_stops_before_the_instruction(m):
    code = INC_RCX * 3 + HLT
    m.ring0(code)
    d = Debugger()
    m.vcpu.set_guest_debug(d, {KCODE + 6})
    exit = m.run()
    assert exit.kind is ExitKind.DEBUG and exit.detail == "breakpoint"
    assert exit.rip == KCODE + 6 == m.vcpu.reg("rip")
    assert m.vcpu.reg("rcx") == 2                       # the third inc has not run
    assert d.code == [KCODE + 6]                         # hooked there only
    m.vcpu.set_guest_debug(None)
    assert m.run().kind is ExitKind.HALT and m.vcpu.reg("rcx") == 3
    assert m.vcpu._debug is None and m.vcpu._debug_hooks == ([], [])


def test_breakpoint_in_code_translated_before(m):
    m.ring0(INC_RCX * 3 + HLT)
    assert m.run().kind is ExitKind.HALT                 # translated and cached
    m.vcpu.set_reg("rip", KCODE)
    m.vcpu.set_reg("rcx", 0)
    m.vcpu.set_guest_debug(Debugger(), {KCODE + 3})
    exit = m.run()
    assert (exit.kind, exit.rip, m.vcpu.reg("rcx")) == (ExitKind.DEBUG, KCODE + 3, 1)


def test_step_executes_one_instruction(m):
    m.ring0(INC_RCX * 4 + HLT)
    d = Debugger()
    d.steps = 2                                          # the first is executed, stop before the second
    m.vcpu.set_guest_debug(d, step=True)
    exit = m.run()
    assert (exit.kind, exit.detail, exit.rip) == (ExitKind.DEBUG, "step", KCODE + 3)
    assert m.vcpu.reg("rcx") == 1


@pytest.mark.parametrize("repeat", [1, 3])
def test_watched_read_modify_write_is_applied_once(m, repeat):
    """The store of `add [rbx], 1` is seen before it is made; stopping there leaves memory as before
    the instruction (run() puts the old bytes back), and going on applies it once."""
    m.mem.write_u64(KDATA, 41)
    m.ring0(mov_rbx(KDATA) + ADD_MEM_1 * repeat + HLT)
    d = Debugger()
    m.vcpu.set_guest_debug(d, watch=((KDATA, KDATA + 7, "w"),))
    exit = m.run()
    assert (exit.kind, exit.detail) == (ExitKind.DEBUG, "watch")
    assert exit.rip == KCODE + 10 == m.vcpu.reg("rip")   # at the add, not yet executed
    assert m.mem.read_u64(KDATA) == 41
    assert d.watch == [(KDATA, 8, True, KCODE + 10)]
    m.vcpu.set_guest_debug(None)
    assert m.run().kind is ExitKind.HALT
    assert m.mem.read_u64(KDATA) == 41 + repeat


def test_watched_store_that_is_not_a_hit_goes_on(m):
    m.mem.write_u64(KDATA, 1)
    m.ring0(mov_rbx(KDATA) + ADD_MEM_1 * 2 + HLT)
    d = Debugger(watch=False)
    m.vcpu.set_guest_debug(d, watch=((KDATA, KDATA + 7, "w"),))
    assert m.run().kind is ExitKind.HALT
    assert m.mem.read_u64(KDATA) == 3 and len(d.watch) == 2


def test_watched_load_stops_before_its_effect(m):
    m.mem.write_u64(KDATA, 0x1234)
    m.ring0(mov_rbx(KDATA) + b"\x48\x31\xd2" + LOAD_RDX + HLT)       # xor rdx, rdx; mov rdx, [rbx]
    m.vcpu.set_guest_debug(Debugger(), watch=((KDATA + 4, KDATA + 4, "r"),))
    exit = m.run()
    assert (exit.kind, exit.detail, exit.rip) == (ExitKind.DEBUG, "watch", KCODE + 13)
    assert exit.port == 0                                 # a read
    assert m.vcpu.reg("rdx") == 0
    m.vcpu.set_guest_debug(None)
    assert m.run().kind is ExitKind.HALT and m.vcpu.reg("rdx") == 0x1234


def test_an_access_that_starts_before_the_range_is_seen(m):
    m.ring0(mov_rbx(KDATA) + ADD_MEM_1 + HLT)
    d = Debugger()
    m.vcpu.set_guest_debug(d, watch=((KDATA + 7, KDATA + 7, "w"),))      # the last byte of the qword
    exit = m.run()
    assert (exit.kind, exit.detail) == (ExitKind.DEBUG, "watch") and d.watch == [(KDATA, 8, True, KCODE + 10)]


def test_unwatched_addresses_do_not_call_back(m):
    m.ring0(mov_rbx(KDATA + 64) + ADD_MEM_1 + HLT)
    d = Debugger()
    m.vcpu.set_guest_debug(d, watch=((KDATA, KDATA + 7, "rw"),))
    assert m.run().kind is ExitKind.HALT and d.watch == []


def test_debug_stop_request_ends_the_next_run(m):
    m.ring0(INC_RCX + HLT)
    m.vcpu.request_debug_stop()
    exit = m.run()
    assert (exit.kind, exit.detail, exit.rip) == (ExitKind.DEBUG, "interrupt", KCODE)
    assert m.vcpu.reg("rcx") == 0
    assert m.run().kind is ExitKind.HALT


def test_rearming_the_same_thing_keeps_translated_code(m, monkeypatch):
    d = Debugger()
    m.vcpu.set_guest_debug(d, {KCODE})
    flushes = []
    monkeypatch.setattr(m.vcpu, "flush_code", lambda: flushes.append(1))
    m.vcpu.set_guest_debug(d, {KCODE})
    assert flushes == []
    m.vcpu.set_guest_debug(d, {KCODE}, watch=((KDATA, KDATA, "w"),))
    m.vcpu.set_guest_debug(d, {KCODE}, watch=((KDATA + 8, KDATA + 8, "w"),))   # a watch that moved
    assert flushes == [1]


# Unicorn 2.1.4 checks for a stop request after every load and store and restarts the
# instruction (a read-modify-write ran twice); vcpu.py turns that check off (unicorn_quirks).
def test_async_stop_never_repeats_a_read_modify_write(m):
    import threading
    import time
    n = 5_000_000
    m.mem.write_u64(KDATA, 0)
    # mov rbx, KDATA; mov ecx, n; loop: add qword [rbx], 1; dec ecx; jnz loop; hlt
    body = ADD_MEM_1 + b"\xff\xc9"
    m.ring0(mov_rbx(KDATA) + b"\xb9" + struct.pack("<I", n) + body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF]) + HLT)
    done = threading.Event()

    def stopper():
        while not done.is_set():
            time.sleep(0.0005)
            m.vcpu.request_preempt()

    t = threading.Thread(target=stopper, daemon=True)
    t.start()
    stops = 0
    try:
        while m.run().kind is ExitKind.BUDGET:
            stops += 1
    finally:
        done.set()
        t.join()
    assert stops > 10, "the loop ended before it was preempted often enough to tell"
    assert m.mem.read_u64(KDATA) == n
