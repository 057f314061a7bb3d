"""A ROS program uses the HVM through /dev/hvm (guest_images/src/hvm_client.c): it installs an
AeroKernel image, boots the HRT, and calls a function on it, getting the result back. Natively (no
HVM) the same program says so. Uses the minimal kernel of tests/hrt (the AeroKernel's own tests are
in test_aerokernel.py)."""
import subprocess
import sys

import pytest

from hvm.hrt import parse_image
from test_hrt_vmm import tiny  # noqa: F401  (the fixture that builds tests/hrt/tiny.S)


@pytest.fixture
def tiny_file(tiny, tmp_path):  # noqa: F811
    path = tmp_path / "tiny.elf"
    path.write_bytes(tiny)
    return path


def mvemu(*args, cwd):
    r = subprocess.run([sys.executable, "-m", "hvm", *args], capture_output=True, cwd=cwd, timeout=120)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_install_boot_call(images, tiny_file, tmp_path, libc):
    add = parse_image(tiny_file.read_bytes()).symbols["add1000"]
    status, out, err = mvemu("run", "--hrt-console", str(images / f"hvm_client.{libc}"), str(tiny_file),
                             "call", hex(add), "5", "call", hex(add), "0x41", cwd=tmp_path)
    assert status == 0, err
    assert out.splitlines() == ["state before: 0", "install: 0", "boot: 0", "state after: 3",
                                f"call {hex(add)}(5): 0, result 0x1005",
                                f"call {hex(add)}(0x41): 0, result 0x1041"]
    assert "tiny kernel up" in err        # with --hrt-console the HRT's console reaches mvemu's stderr
    assert "Traceback" not in err


def test_async_calls_then_a_sync_call(images, tiny_file, tmp_path):
    """INVOKE (asynchronous) queues calls and returns at once; a synchronous call made after them
    gets its own result, not one of theirs (the vCPU runs its calls in order, and their CALL_DONEs
    are not taken for the waiting caller's)."""
    add = parse_image(tiny_file.read_bytes()).symbols["add1000"]
    status, out, err = mvemu("run", "--trace", str(images / "hvm_client.glibc"), str(tiny_file),
                             "bench", "async", "5", hex(add), "call", hex(add), "7", cwd=tmp_path)
    assert status == 0, err
    assert out.splitlines()[-2:] == ["bench async: 5 of 5 ok", f"call {hex(add)}(7): 0, result 0x1007"]
    assert err.count("ROS hypercall INVOKE_FUNC(") == 5 and err.count("ROS hypercall INVOKE_FUNC_SYNC(") == 3
    done = [line.rsplit(" ", 1)[-1] for line in err.splitlines() if "call done, result" in line]
    assert done == ["0x1000", "0x1001", "0x1002", "0x1003", "0x1004", "0x1005", "0x1005", "0x1007"], err


def test_trace_shows_boot_steps(images, tiny_file, tmp_path):
    add = parse_image(tiny_file.read_bytes()).symbols["add1000"]
    status, out, err = mvemu("run", "--trace", str(images / "hvm_client.glibc"), str(tiny_file), "call",
                             hex(add), "1", cwd=tmp_path)
    assert status == 0, err
    for step in ("AeroKernel image installed", "HRT page tables built", "HRT vCPU 0 started",
                 "AeroKernel ready", "ROS hypercall INSTALL_IMAGE", "ROS hypercall BOOT_HRT",
                 "HRT vCPU 0: exception 3", "delivered to", "call done, result 0x1001"):
        assert step in err, f"--trace does not show {step!r}:\n{err}"


def test_no_hrt_partition(images, tiny_file, tmp_path):
    status, out, err = mvemu("run", "--hrt-mem", "0", str(images / "hvm_client.glibc"), str(tiny_file),
                             cwd=tmp_path)
    assert "install: -1" in out and status == 0, (out, err)


def test_native_has_no_hvm(images, tiny_file, tmp_path):
    r = subprocess.run([str(images / "hvm_client.glibc"), str(tiny_file)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout.startswith("no HVM here")


def test_bad_image(images, tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"not an elf at all")
    status, out, err = mvemu("run", str(images / "hvm_client.glibc"), str(bad), cwd=tmp_path)
    assert "install: -1" in out
    assert "not an ELF" in err and "Traceback" not in err
