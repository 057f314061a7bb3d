"""The bare mechanism under a forwarded event, without mvemu: two Unicorn engines (an "HRT" vCPU
that posts events with `out`, a "partner" vCPU that serves each with two `syscall`s) taking turns
the way mvemu's run loop makes them (the HRT stops at each post, then the partner runs, one
`emu_start` after the other), against the partner run *nested* inside the HRT's `out` hook (one
engine's emu_start called from another's hook, which Unicorn 2.1 allows), so that the HRT never
stops. Nothing else is measured: no Python beyond the hooks themselves.

    .venv/bin/python benchmarks/nested_runs.py [N]

It prints both per-round-trip host times and their ratio: the floor that any Python VMM on
Unicorn pays per forwarded event with each design (benchmarks/RESULTS.md discusses it).
"""
from __future__ import annotations

import sys
import time

from keystone import KS_ARCH_X86, KS_MODE_64, Ks
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
from unicorn.x86_const import UC_X86_INS_OUT, UC_X86_INS_SYSCALL, UC_X86_REG_RIP

BASE = 0x1000


def engine(source: str) -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(BASE, 0x1000)
    uc.mem_write(BASE, bytes(Ks(KS_ARCH_X86, KS_MODE_64).asm(source)[0]))
    uc.ctl_exits_enabled(True)               # no `until` address, as mvemu runs its vCPUs
    uc.reg_write(UC_X86_REG_RIP, BASE)
    return uc


def pair(n: int):
    hrt = engine(f"mov rcx, {n}; mov dx, 0xf00d; l: out dx, eax; dec rcx; jnz l; hlt")
    partner = engine("l: syscall; syscall; jmp l")     # the forwarded call, then COMPLETE_WAIT
    served = [0]

    def on_syscall(uc, _user):
        served[0] += 1
        if served[0] % 2 == 0:
            uc.emu_stop()                             # blocked again: the event is complete
    partner.hook_add(UC_HOOK_INSN, on_syscall, None, 1, 0, UC_X86_INS_SYSCALL)
    return hrt, partner, served


def sequential(n: int) -> float:
    hrt, partner, served = pair(n)
    rip = [BASE, BASE]

    def on_out(uc, *_):
        uc.emu_stop()
    hrt.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, UC_X86_INS_OUT)
    t = time.perf_counter()
    for _ in range(n):
        hrt.emu_start(rip[0], 0)
        rip[0] = hrt.reg_read(UC_X86_REG_RIP)
        partner.emu_start(rip[1], 0)
        rip[1] = partner.reg_read(UC_X86_REG_RIP)
    dt = time.perf_counter() - t
    assert served[0] == 2 * n
    return dt / n


def nested(n: int) -> float:
    hrt, partner, served = pair(n)

    def on_out(uc, *_):
        partner.emu_start(partner.reg_read(UC_X86_REG_RIP), 0)
    hrt.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, UC_X86_INS_OUT)
    t = time.perf_counter()
    hrt.emu_start(BASE, 0)
    dt = time.perf_counter() - t
    assert served[0] == 2 * n
    return dt / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seq = min(sequential(n) for _ in range(3))
    nest = min(nested(n) for _ in range(3))
    print(f"sequential emu_starts: {seq * 1e6:.2f} us per round trip")
    print(f"partner nested in the HRT's hook: {nest * 1e6:.2f} us per round trip")
    print(f"nested / sequential: {nest / seq:.2f}x")


if __name__ == "__main__":
    main()
