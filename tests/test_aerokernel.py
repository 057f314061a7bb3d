"""The AeroKernel (aerokernel/) booted by the VMM: its ring-0 self-tests on the HRT vCPU (a page
fault handled by its own IDT handler, CR0.WP making a ring-0 write to a read-only page fault with
error code 0x3, #DE and int3 reported to the VMM with the right vector and RIP, a ring-0 SYSCALL,
its console reaching mvemu's stderr, a nested page fault, HRT threads created, yielding and
joined across vCPUs), on one and two HRT vCPUs, standalone and driven by a ROS program through
/dev/hvm."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hvm.hrt import parse_image

ROOT = Path(__file__).parent.parent
KERNEL = ROOT / "aerokernel" / "build" / "aerokernel.elf"


@pytest.fixture(scope="session")
def aerokernel():
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "aerokernel")], capture_output=True, text=True)
    assert r.returncode == 0, f"building the AeroKernel failed:\n{r.stdout}{r.stderr}"
    return KERNEL


@pytest.mark.parametrize("cpus", [1, 2])
def test_selftests_standalone(aerokernel, cpus):
    r = subprocess.run([sys.executable, "-m", "hvm.hrt", "selftest", str(aerokernel), "--cpus", str(cpus)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    for cpu in range(cpus):
        assert f"aerokernel: cpu {cpu} of {cpus} up" in err              # console -> stderr
    # #DE and int3 were delivered through the AeroKernel's IDT and reported with vector and RIP
    assert re.search(r"HRT vCPU 0: exception 0 at rip 0xffffffff8\w+", err), err
    assert re.search(r"HRT vCPU 0: exception 3 at rip 0xffffffff8\w+", err), err
    assert re.search(r"exception 14 at 0x\w+ \(error 0x3, cr2 0x\w+\) delivered", err), \
        "CR0.WP: a ring-0 write to a read-only page must fault with error code 0x3\n" + err
    assert "FAILED" not in err
    # thread create / yield / join: each vCPU joins a thread of its own and one on the next vCPU
    for cpu in range(cpus):
        other = (cpu + 1) % cpus
        assert f"selftest threads ok (cpu {cpu}: joined a thread on cpu {cpu} and one on cpu {other})" in err
    m = re.search(r"selftests: (\d+) reported, (\d+) failed", err)
    assert m and int(m.group(1)) == 8 * cpus and m.group(2) == "0", err


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_ros_program_boots_and_calls_the_aerokernel(aerokernel, images, tmp_path, libc):
    syms = parse_image(aerokernel.read_bytes()).symbols
    add, cr0 = hex(syms["aerokernel_add"]), hex(syms["aerokernel_read_cr0"])
    r = subprocess.run([sys.executable, "-m", "hvm", "run", "--hrt-console", str(images / f"hvm_client.{libc}"), str(aerokernel),
                        "selftest", "call", add, "5", "call", cr0, "0"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["state before: 0", "install: 0", "boot: 0", "state after: 3"]
    assert "selftest failures: 0" in lines
    assert f"call {add}(5): 0, result 0x1005" in lines
    cr0_value = int(lines[-1].rsplit(" ", 1)[1], 16)
    assert cr0_value & 0x8001_0001 == 0x8001_0001          # PG, WP and PE, read in ring 0 on the HRT
    assert "aerokernel: cpu 0 of 1 up" in r.stderr
