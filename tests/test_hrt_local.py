"""Subtractive porting (`mvemu run --hrt-local`, docs/split.md): system calls the AeroKernel serves
itself instead of forwarding them to the partner.

The oracle does not move: a hybridized program gives its native output with any choice of local
calls. What changes is where each call is served, which --stats and --trace show. local_calls
(guest_images/src) also drives the cases where the AeroKernel must give up and forward: a result
buffer not mapped yet, one shared copy-on-write (CR0.WP makes the AeroKernel's own copy fault),
a CPU-time clock, a timezone, a write to a pipe or to a file dup2'd onto stdout."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

import harness
from harness import BUILD, Case
from hvm import abi
from test_cli import assert_one_error_line
from test_hybridize import CASES, fat_of, pieces  # noqa: F401  (a fixture)


def _stats(stderr: bytes) -> dict[str, int]:
    """The --stats line 'served in the AeroKernel (--hrt-local): write 3, getpid 2' as a dict."""
    m = re.search(rb"served in the AeroKernel \(--hrt-local\): (.*)", stderr)
    return {} if m is None else {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(1).decode())}


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_local_calls(variant, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(BUILD / f"local_calls.{variant}", pieces, tmp_path / "local_calls")
    case = Case(str(fat))
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0, native
    local = dataclasses.replace(case, mvemu_options=("--hrt-local", "all"))
    assert harness.compare(case, native, harness.run_mvemu(local, tmp_path / "local")) == []

    shown = harness.run_mvemu(dataclasses.replace(case, mvemu_options=("--hrt-local", "all", "--stats",
                                                                       "--trace")), tmp_path / "shown")
    assert shown.stdout == native.stdout
    served = _stats(shown.stderr)
    # Served here: getpid and gettid once each (main), clock_gettime three times (the two
    # monotonic reads on the stack and the second realtime read, once its page exists),
    # gettimeofday without a timezone, both time calls, and the console writes.
    assert served.get("getpid") == 2 and served.get("gettid") == 1, served
    assert served.get("clock_gettime") == 3 and served.get("gettimeofday") == 1 and served.get("time") == 2
    assert served.get("write", 0) >= 3
    forwarded = re.findall(rb"\[hvm\] forwarded syscall (\w+)\(", shown.stderr)
    # Given up and forwarded: the fresh page, the copy-on-write page, the CPU-time clock, the bad
    # clock (-EINVAL comes from the ROS); the timezone; the pipe and the file.
    assert forwarded.count(b"clock_gettime") == 4 and forwarded.count(b"gettimeofday") == 1
    assert forwarded.count(b"write") == 2 and b"getpid" not in forwarded and b"gettid" not in forwarded
    pid = re.search(rb"\[pid (\d+)\]", shown.stderr).group(1).decode()
    assert f"[hvm] local getpid() = {pid}  (served in the AeroKernel".encode() in shown.stderr


@pytest.mark.parametrize("name", ["hello.glibc", "stdio_exit.musl", "getpid_loop.glibc", "threads.glibc",
                                  "signals.musl", "pipeline.glibc", "crasher.glibc"])
def test_images_with_every_local_call(name, pieces, tmp_path, mvemu_importable):  # noqa: F811
    """Other programs, hybridized, with every call the AeroKernel can serve served there."""
    case = dataclasses.replace(CASES[name], prog=str(fat_of(BUILD / name, pieces, tmp_path / name)))
    native = harness.run_native(case, tmp_path / "native")
    mvemu = harness.run_mvemu(dataclasses.replace(case, mvemu_options=("--hrt-local", "all")), tmp_path / "m")
    assert harness.compare(case, native, mvemu) == []


def test_default_is_to_forward(pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(BUILD / "local_calls.glibc", pieces, tmp_path / "local_calls")
    r = harness.run_mvemu(Case(str(fat), mvemu_options=("--stats",)), tmp_path / "w")
    assert re.search(rb"local system calls +0\n", r.stderr), r.stderr.decode()
    assert b"served in the AeroKernel" not in r.stderr


@pytest.mark.parametrize("value, words", [("fork", ("fork", "getpid")), ("getpid,nope", ("nope",)),
                                          ("", ("choose from",))])
def test_bad_hrt_local(value, words, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hvm", "run", "--hrt-local", value, str(BUILD / "hello.glibc")],
                       capture_output=True, text=True)
    assert_one_error_line(r.returncode, r.stderr, mentions=words)


def test_every_local_call_is_in_the_header():
    header = (harness.REPO / "aerokernel" / "include" / "hvm_abi.h").read_text()
    for name, (bit, _nr) in abi.LOCAL_SYSCALLS.items():
        assert f"#define HVM_LOCAL_{name.upper()} (1UL << {bit})" in header


def test_the_partner_serves_during_the_post(pieces, tmp_path, mvemu_importable):  # noqa: F811
    """With the ROS idle, the machine runs the partner's ROS vCPU inside the POST_EVENT hypercall
    (a nested run), and every forwarded getpid is completed before the HRT vCPU would halt:
    --stats counts them as served during the post. The output stays the native one."""
    fat = fat_of(BUILD / "getpid_loop.glibc", pieces, tmp_path / "getpid_loop")
    case = Case(str(fat), ("300",), mvemu_options=("--stats",))
    native = harness.run_native(case, tmp_path / "native")
    r = harness.run_mvemu(case, tmp_path / "mvemu")
    assert (r.status, r.stdout) == (native.status, native.stdout), r.stderr.decode()
    forwarded = int(re.search(rb"forwarded system calls +(\d+)", r.stderr).group(1))
    served = int(re.search(rb"served during the post +(\d+)", r.stderr).group(1))
    assert forwarded >= 301 and served >= 301, r.stderr.decode()
