"""`mvemu run --gdb PORT` against a real gdb in batch mode (gdb -batch -nx -ex ...), on the guest
images: breakpoints in main, next/step, locals, registers with the system registers and the ring,
a watchpoint with old and new value, threads, a fault stop with its siginfo, Ctrl-C, kill, detach,
a static-pie program, a breakpoint in ring 0 on an HRT vCPU, the exit status, and the same session
twice giving the same output. gdb comes from Debian's `gdb` package (guest_images installs it)."""
from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import BASE_ENV, REPO

AEROKERNEL = REPO / "aerokernel" / "build" / "aerokernel.elf"
TIMEOUT = 60


@pytest.fixture(scope="session")
def gdb(images) -> str:
    path = shutil.which("gdb")
    if path is None:
        pytest.fail("gdb is not installed (`make -C guest_images` installs Debian's gdb)", pytrace=False)
    return path


class Session:
    """One `mvemu run --gdb 0 PROG ARGS` and one `gdb -batch` attached to it."""

    def __init__(self, gdb: str, prog, args=(), commands=(), *, interrupt_after: float | None = None, cwd=None,
                 options=()):
        self.mvemu = subprocess.Popen([sys.executable, "-m", "hvm", "run", "--gdb", "0", *options, str(prog),
                                       *map(str, args)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=dict(BASE_ENV), cwd=cwd)
        try:
            first = self.mvemu.stderr.readline().decode()
            m = re.search(r"waiting for gdb on localhost:(\d+)", first)
            assert m, f"mvemu did not say where it waits for gdb: {first!r}"
            self.port = int(m.group(1))
            argv = [gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set sysroot /",
                    str(prog), "-ex", f"target remote localhost:{self.port}"]
            for c in commands:
                argv += ["-ex", c]
            env = dict(BASE_ENV, TERM="dumb")
            g = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=env, cwd=cwd)
            if interrupt_after is not None:
                time.sleep(interrupt_after)
                g.send_signal(signal.SIGINT)              # Ctrl-C in gdb: it sends 0x03 to the stub
            out, _ = g.communicate(timeout=TIMEOUT)
            self.gdb_status = g.returncode
            self.out = out.decode(errors="replace")
            mv_out, mv_err = self.mvemu.communicate(timeout=TIMEOUT)
        except BaseException:
            self.mvemu.kill()
            raise
        self.stdout = mv_out.decode(errors="replace")
        self.stderr = first + mv_err.decode(errors="replace")
        self.status = self.mvemu.returncode

    def __repr__(self):
        return f"gdb output:\n{self.out}\nmvemu status {self.status}, stderr:\n{self.stderr}"


def lines_after(text: str, marker: str) -> list[str]:
    return text[text.index(marker):].splitlines()


SESSION = ["break main", "continue", "next", "next", "info locals", "step", "step", "next", "info locals",
           "print result", "print x * factor + 1", "info registers rip", "p $cs", "p $cs & 3", "p $cpl",
           "p/x $cr0", "p $cr0", "p/x $efer", "monitor pt $sp", "finish", "continue"]


def test_break_step_locals_registers_and_exit_status(gdb):
    s = Session(gdb, "guest_images/build/debugme.glibc", commands=SESSION, cwd=REPO)
    out = s.out
    assert "Breakpoint 1, main (argc=1, argv=" in out, s
    assert "at src/debugme.c:21" in out, s
    # next, next: from line 21 to 23; step into scale(); info locals there.
    assert re.search(r"^22\s+int rounds = ", out, re.M), s
    assert re.search(r"^23\s+for \(int i = 0; i < rounds; i\+\+\)", out, re.M), s
    assert "i = 0\ntotal = 0\nrounds = 3" in out, s
    assert re.search(r"^24\s+total \+= scale\(i, 10\);\nscale \(x=0, factor=10\) at src/debugme.c:14", out, re.M), s
    assert re.search(r"^15\s+counter \+= 1;\nresult = 0\n", out, re.M), s  # next, info locals in scale
    assert re.search(r"^\$1 = 0\n\$2 = 1$", out, re.M), s                  # print result, an expression
    assert re.search(r"^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <scale\+\d+>", out, re.M), s
    assert re.search(r"^\$3 = 51$", out, re.M), s                           # $cs = 0x33: the user code segment
    assert re.search(r"^\$4 = 3$", out, re.M), s                            # ring 3 from the selector
    assert re.search(r"^\$5 = 3$", out, re.M), s                            # and from the cpl register
    assert re.search(r"^\$6 = 0x80050033$", out, re.M), s                   # PG AM WP NE ET MP PE
    assert re.search(r"^\$7 = \[ PE MP ET NE WP AM PG \]$", out, re.M), s
    assert re.search(r"^\$8 = 0xd01$", out, re.M), s                        # EFER: SCE LME LMA NXE
    walk = lines_after(out, "page walk of 0x7fff")
    assert walk[1].startswith("CR3 0x"), s
    assert [w.split()[0] for w in walk[2:6]] == ["PML4", "PDPT", "PD", "PT"], s
    assert " U " in walk[5] and "NX" in walk[5], s                          # a user stack page, not executable
    assert walk[6].startswith("  physical address 0x"), s
    assert "Value returned is $9 = 1" in out, s
    assert "[Inferior 1 (Remote target) exited with code 044]" in out, s   # gdb prints it in octal: 36
    assert s.status == 36, s
    assert s.stdout == "hello from debugme: total 36 after 3 rounds, counter 3\n", s


def test_same_session_twice_gives_the_same_output(gdb):
    first = Session(gdb, "guest_images/build/debugme.glibc", commands=SESSION + ["info threads"], cwd=REPO)
    second = Session(gdb, "guest_images/build/debugme.glibc", commands=SESSION + ["info threads"], cwd=REPO)
    assert first.out == second.out, f"first:\n{first.out}\nsecond:\n{second.out}"
    assert first.status == second.status == 36


def test_watchpoints_on_a_global(gdb):
    s = Session(gdb, "guest_images/build/debugme.glibc", cwd=REPO, commands=[
        "break scale", "continue", "watch counter", "continue", "continue", "continue", "delete",
        "rwatch counter", "continue", "delete", "continue"])
    out = s.out
    assert "Hardware watchpoint 2: counter\n\nOld value = 0\nNew value = 1\n" in out, s
    # reported after the store, on the next line of the source
    assert re.search(r"Old value = 0\nNew value = 1\nscale \(x=0, factor=10\) at src/debugme.c:16", out), s
    assert "Breakpoint 1, scale (x=1, factor=10)" in out, s
    assert "Old value = 1\nNew value = 2\n" in out, s
    # the read in `return result + counter` on line 16, reported after the load (still line 16)
    assert re.search(r"Hardware read watchpoint 3: counter\n\nValue = 2\n0x[0-9a-f]+ in scale \(x=1, factor=10\) "
                     r"at src/debugme.c:16", out), s
    assert s.status == 36 and "counter 3" in s.stdout, s


def test_watchpoint_follows_the_page_through_fork_and_copy_on_write(gdb, tmp_path):
    """The watch hook is on a physical frame: after fork the parent's write breaks copy-on-write
    (or takes the page back) and the frame changes; the child writes its own copy. Every write is
    seen, in the thread that made it."""
    prog = tmp_path / "cow_watch"
    subprocess.run(["gcc", "-static", "-g", "-O0", "-o", str(prog), str(REPO / "tests" / "c" / "cow_watch.c")],
                   check=True)
    s = Session(gdb, prog, cwd=tmp_path, commands=["break main", "continue", "watch value"] + ["continue"] * 5)
    changes = re.findall(r"Old value = (\d+)\nNew value = (\d+)", s.out)
    # gdb sees one address space: the child's copy and the parent's are the same variable to it.
    assert changes == [("1", "2"), ("2", "100"), ("100", "3"), ("3", "4")], s
    assert re.search(r"\[Switching to Thread 1001\]\n\nThread 2 hit Hardware watchpoint 2: value\n\n"
                     r"Old value = 2\nNew value = 100", s.out), s
    assert s.status == 0 and s.stdout == "value 4\n", s


def test_threads_on_two_ros_vcpus(gdb):
    """With --ros-cpus 2 a stop on either vCPU stops the machine (all-stop): gdb steps the thread
    that hit the breakpoint, lists every thread with the vCPU that holds it, and the run ends as
    it would without gdb."""
    s = Session(gdb, "guest_images/build/threads.glibc", cwd=REPO, options=("--ros-cpus", "2"), commands=[
        "break barrier_sum", "continue", "next", "next", "info threads", "delete", "continue"])
    out = s.out
    assert re.search(r"Thread \d+ hit Breakpoint 1, barrier_sum \(arg=0x[0-3]\)", out), s
    table = [ln for ln in lines_after(out, "  Id   Target Id")[1:] if re.match(r"^[* ] +\d+ +Thread ", ln)]
    current = [ln for ln in table if ln.startswith("*")]
    assert len(current) == 1 and re.search(r"Thread (\d+) \(ROS pid 1000 tid \1, ring 3, vCPU [01]\)\s+barrier_sum",
                                           current[0]), s
    assert s.status == 0 and "parallel sum 19999900000, tls ok" in s.stdout, s


def test_info_threads_lists_every_ros_thread(gdb):
    s = Session(gdb, "guest_images/build/threads.glibc", cwd=REPO, commands=[
        "break barrier_sum", "continue", "info threads", "p $_thread", "delete", "continue"])
    out = s.out
    assert re.search(r"Thread \d+ hit Breakpoint 1, barrier_sum \(arg=0x0\)", out), s
    table = [ln for ln in lines_after(out, "  Id   Target Id")[1:] if re.match(r"^[* ] +\d+ +Thread ", ln)]
    assert len(table) >= 2, s
    assert re.search(r"Thread 1000 \(ROS pid 1000 tid 1000, ring 3, blocked in futex\)", out), s
    current = [ln for ln in table if ln.startswith("*")]
    assert len(current) == 1 and re.search(r"Thread (\d+) \(ROS pid 1000 tid \1, ring 3, vCPU 0\)\s+barrier_sum",
                                           current[0]), s
    assert s.status == 0 and "parallel sum 19999900000, tls ok" in s.stdout, s


def test_kill(gdb):
    s = Session(gdb, "guest_images/build/debugme.glibc", cwd=REPO, commands=["break scale", "continue", "kill"])
    assert "[Inferior 1 (Remote target) killed]" in s.out, s
    assert s.status == 137, s
    assert s.stdout == "", s
    assert "killed by SIGKILL" in s.stderr and "Traceback" not in s.stderr, s


def test_segfault_stops_with_siginfo_then_kills_the_program(gdb):
    s = Session(gdb, "guest_images/build/crasher.glibc", ["segv"], cwd=REPO, commands=[
        "continue", "p $_siginfo.si_signo", "p $_siginfo._sifields._sigfault.si_addr", "signal 0", "continue"])
    out = s.out
    # `signal 0` suppresses the signal: the store runs again and faults again
    assert out.count("Program received signal SIGSEGV, Segmentation fault.") == 2, s
    assert re.search(r"in main .* at src/crasher.c:\d+\n\d+\s+\*\(volatile int \*\)bad_write_addr = 1;", out), s
    assert "$1 = 11\n$2 = (void *) 0x10\n" in out, s
    assert "Program terminated with signal SIGSEGV, Segmentation fault." in out, s
    assert s.status == 139, s


def test_gdb_can_deliver_another_signal_instead(gdb):
    s = Session(gdb, "guest_images/build/crasher.glibc", ["segv"], cwd=REPO, commands=["continue", "signal SIGUSR1"])
    assert "Program received signal SIGSEGV" in s.out, s
    assert "Program terminated with signal SIGUSR1, User defined signal 1." in s.out, s
    assert s.status == 128 + 10, s


def test_ctrl_c_stops_a_computing_program(gdb):
    s = Session(gdb, "guest_images/build/nbody.glibc", ["100000000"], cwd=REPO, interrupt_after=3.0,
                commands=["continue", "info threads", "kill"])
    out = s.out
    assert "Program received signal SIGINT, Interrupt." in out, s
    assert re.search(r"\* 1 +Thread 1000 \(ROS pid 1000 tid 1000, ring 3, vCPU 0\) ", out), s
    assert s.status == 137, s


def test_detach_lets_a_static_pie_program_run_on(gdb):
    s = Session(gdb, "guest_images/build/hello.pie", ["from", "gdb"], cwd=REPO,
                commands=["break main", "continue", "p/x $pc", "detach"])
    assert re.search(r"Breakpoint 1, main \(argc=3, argv=0x[0-9a-f]+\) at src/hello.c", s.out), s
    assert re.search(r"\$1 = 0x5555", s.out), s                          # relocated (from the auxv)
    assert "[Inferior 1 (Remote target) detached]" in s.out, s
    assert s.status == 0 and s.stdout == "Hello from mvemu guest\nfrom\ngdb\n", s


def test_ring0_breakpoint_on_an_hrt_vcpu(gdb):
    assert AEROKERNEL.is_file(), "make images builds aerokernel/build/aerokernel.elf"
    from hvm.hrt import parse_image
    add = parse_image(AEROKERNEL.read_bytes()).symbols["aerokernel_add"]
    s = Session(gdb, "guest_images/build/hvm_client.glibc", [AEROKERNEL, "call", hex(add), "5"], cwd=REPO,
                commands=[f"add-symbol-file {AEROKERNEL}", "break aerokernel_add", "continue", "info threads",
                          "p $cpl", "p $cs", "stepi", "p $_thread", "continue"])
    out = s.out
    assert re.search(r"Thread \d+ hit Breakpoint 1, aerokernel_add \(x=5\) at exports.c", out), s
    assert re.search(r"\* 2 +Thread 900 \(HRT vCPU 0, ring 0, running\) +aerokernel_add", out), s
    assert re.search(r"Thread 1000 \(ROS pid 1000 tid 1000, ring 3, blocked in ioctl, on vCPU 0\)", out), s
    assert "$1 = 0\n$2 = 8\n" in out, s                                    # ring 0, the AeroKernel's CS
    assert "[Inferior 1 (Remote target) exited normally]" in out, s
    assert f"call {hex(add)}(5): 0, result 0x1005" in s.stdout, s


# -- the command line, without gdb ------------------------------------------------------------------
def _mvemu(*argv, timeout=30):
    return subprocess.run([sys.executable, "-m", "hvm", *argv], stdin=subprocess.DEVNULL, capture_output=True,
                          env=dict(BASE_ENV), cwd=REPO, timeout=timeout)


def test_port_in_use_is_one_error_line(images):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = _mvemu("run", "--gdb", str(port), "guest_images/build/hello.glibc")
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"mvemu: --gdb {port}: cannot listen on localhost:{port}:"), err
    assert len([ln for ln in err.splitlines() if ln.startswith("mvemu:")]) == 1, err


@pytest.mark.parametrize("argv, words", [(("--gdb", "http"), "invalid port"), (("--gdb", "70000"), "out of range"),
                                        (("--gdb-wait",), "--gdb-wait needs --gdb")])
def test_bad_gdb_options(images, argv, words):
    r = _mvemu("run", *argv, "guest_images/build/hello.glibc")
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err and words in err.splitlines()[-1], err


def test_help_teaches_the_gdb_options():
    out = _mvemu("run", "--help").stdout.decode()
    assert "--gdb PORT" in out and "target remote localhost:1234" in out and "--gdb-wait" in out
