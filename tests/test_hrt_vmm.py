"""The VMM's HRT side on its own, with a minimal hand-written kernel (tests/hrt/tiny.S): image
install, the higher-half page tables, vCPU boot state, hypercalls and their side checks, exception
delivery through the guest's IDT, SYSCALL-free work loop."""
import errno
import subprocess
import sys

import pytest

from hvm import abi
from hvm.hrt import Hrt, HrtError, parse_image
from hvm.memory import GuestMemory
from hvm.vcpu import Vcpu

HERE = __import__("pathlib").Path(__file__).parent / "hrt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run(["gcc", "-c", str(HERE / "tiny.S"), "-o", str(out / "tiny.o")], check=True)
    subprocess.run(["ld", "-T", str(HERE / "link.ld"), "-z", "max-page-size=4096", str(out / "tiny.o"),
                    "-o", str(out / "tiny.elf")], check=True)
    return (out / "tiny.elf").read_bytes()


def machine(image, ncpus=1):
    mem = GuestMemory(96 << 20)
    ros = mem.add_partition("ros", 0, 32 << 20)
    hp = mem.add_partition("hrt", 32 << 20, 64 << 20)
    lines = []
    hrt = Hrt(mem, hp, [ros, hp], ncpus, lines.append, trace=True)
    hrt.install(image)
    done = []
    hrt.on_call_done = lambda cpu, r: done.append(r)
    hrt.boot(lambda i, h: Vcpu(100 + i, mem, [ros, hp], h))
    return hrt, lines, done


def run_until(hrt, cond, limit=50):
    for _ in range(limit):
        if cond():
            return
        for c in hrt.runnable:
            hrt.on_exit(c, c.vcpu.run())
    assert cond(), "HRT did not reach the expected state"


def test_boot_console_int3_and_calls(tiny):
    hrt, lines, done = machine(tiny)
    add = parse_image(tiny).symbols["add1000"]
    run_until(hrt, lambda: hrt.cpus[0].state == "waiting")
    assert "tiny kernel up" in lines                                     # console reached the log
    assert any("AeroKernel ready" in ln for ln in lines)
    # int3 went through the kernel's IDT gate; the handler reported vector 3 and the pushed RIP,
    # which for a trap is the address after the int3
    assert len(hrt.exceptions) == 1
    cpu, vec, rip, err = hrt.exceptions[0]
    assert (cpu, vec, err) == (0, 3, 0)
    code = parse_image(tiny).segments[0]
    int3_offset = code[2].index(b"\xcc")
    assert rip == abi.KERNEL_VBASE + int3_offset + 1
    for n, arg in enumerate((5, 0x1234), 1):
        hrt.post_work(0, abi.WORK["CALL"], add, arg)
        run_until(hrt, lambda: len(done) == n and hrt.cpus[0].state == "waiting")
    assert done == [0x1005, 0x2234]


def test_boot_state(tiny):
    hrt, lines, done = machine(tiny)
    v = hrt.cpus[0].vcpu
    assert v.reg("cr0") & 0x8001_0001 == 0x8001_0001                      # PG, WP, PE
    assert v.reg("cr3") == hrt.cr3
    assert v.msr(0xC000_0080) & 0xD00 == 0xD00                              # LME, LMA, NXE
    assert v.reg("rip") == parse_image(tiny).entry
    info = hrt.cpus[0].boot_info
    assert v.reg("rdi") == info and hrt.mem.read_u64(info) == abi.BOOT_INFO_MAGIC
    # physical P is visible at HIGH_BASE + P in the HRT's tables
    from hvm import pagewalk
    assert pagewalk.translate(hrt.mem, hrt.cr3, abi.HIGH_BASE + 0x123456) == 0x123456


def test_bad_images():
    with pytest.raises(HrtError, match="not an ELF"):
        parse_image(b"hello")
    with open(sys.executable, "rb") as f:
        with pytest.raises(HrtError):
            parse_image(f.read())


def test_header_matches_abi(tmp_path):
    """The C header the guest includes is generated from hvm/abi.py; a checked-in copy must agree."""
    header = __import__("pathlib").Path(__file__).parent.parent / "aerokernel" / "include" / "hvm_abi.h"
    if header.exists():
        assert header.read_text() == abi.header()
    generated = subprocess.run([sys.executable, "-m", "hvm.abi"], capture_output=True, text=True, check=True)
    assert generated.stdout == abi.header()
    for name, number in abi.HC.items():
        assert f"#define HVM_HC_{name} 0x{number:02x}" in generated.stdout
