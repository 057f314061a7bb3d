"""gdb on a hybridized program (split execution), real gdb in batch mode: main() breaks in the HRT
as HRT thread 1, `info threads` lists it with its partner in the ROS (and the vCPU's idle thread
the AeroKernel switched out), ring 0 with CR0.PG and WP, stepi in ring 0, a breakpoint in an
AeroKernel function (hit on behalf of the HRT thread), a watchpoint on a global written in ring 0,
one forwarded write() followed from the HRT's `syscall` into the AeroKernel, to the partner in
the ROS and back (the walk docs/gdb.md shows), and the same session twice giving the same output.
The fat binaries are made with `mvemu hybridize`, as a user would."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from harness import BASE_ENV, BUILD, REPO
from test_gdb import AEROKERNEL, Session, gdb, lines_after  # noqa: F401 (gdb: the fixture)

RUNTIME = REPO / "toolchain" / "runtime" / "build" / "runtime.elf"


@pytest.fixture(scope="session")
def hybridized(images, tmp_path_factory):
    """`mvemu hybridize` of a guest image into a temporary directory (AeroKernel and runtime built
    by their makefiles first); returns a function of the image's name."""
    for d in ("aerokernel", "toolchain/runtime"):
        r = subprocess.run(["make", "-s", "-C", str(REPO / d)], capture_output=True, text=True)
        assert r.returncode == 0, f"make -C {d} failed:\n{r.stdout}{r.stderr}"
    out_dir = tmp_path_factory.mktemp("fat")
    made = {}

    def fat(name: str):
        if name not in made:
            out = out_dir / f"{name}.hrt"
            r = subprocess.run([sys.executable, "-m", "hvm", "hybridize", str(BUILD / name), "-o", str(out)],
                               capture_output=True, text=True, env=dict(BASE_ENV), cwd=REPO)
            assert r.returncode == 0, r.stderr
            info = subprocess.run([sys.executable, "-m", "hvm", "hybridize", "--info", str(out)],
                                  capture_output=True, text=True, env=dict(BASE_ENV), cwd=REPO).stdout
            entry = int(re.search(r"runtime entry\s+(0x[0-9a-f]+)", info).group(1), 16)
            made[name] = (out, entry)
        return made[name]
    return fat


def table(out: str, marker: str = "  Id   Target Id") -> list[str]:
    """The rows of the first `info threads` after `marker`."""
    rows = []
    for ln in lines_after(out, marker)[1:]:
        if not re.match(r"^[* ] +\d+ +Thread ", ln):
            break
        rows.append(ln)
    return rows


MAIN_SESSION = ["break main", "continue", "info threads", "p $cpl", "p $cs", "p/x $cr0", "p $cr0",
                "x/2i $pc", "stepi", "p/x $pc", "p $cpl", "next", "next", "info locals", "continue"]


def test_main_runs_as_hrt_thread_beside_its_partner(gdb, hybridized):
    fat, _ = hybridized("debugme.glibc")
    s = Session(gdb, fat, commands=MAIN_SESSION, cwd=REPO)
    out = s.out
    assert "[Switching to Thread 1]" in out, s
    assert re.search(r"Thread \d+ hit Breakpoint 1, main \(argc=1, argv=0x[0-9a-f]+\) at src/debugme.c:21", out), s
    rows = table(out)
    assert len(rows) == 3, s
    current = [r for r in rows if r.startswith("*")]
    assert len(current) == 1 and re.search(r"Thread 1 \(HRT thread 1, ring 0, vCPU 0, partner 1000\)\s+main \(",
                                           current[0]), s
    assert any(re.search(r"Thread 1000 \(ROS pid 1000 tid 1000, ring 3, blocked in ioctl, on vCPU 0, "
                         r"partner of HRT thread 1\)", r) for r in rows), s
    assert any("Thread 900 (HRT vCPU 0, ring 0, idle thread switched out for HRT thread 1)" in r for r in rows), s
    assert re.search(r"^\$1 = 0\n\$2 = 8\n\$3 = 0x80010033\n\$4 = \[ PE MP ET NE WP PG \]$", out, re.M), s
    # stepi executes exactly one ring-0 instruction: the pc is then the next one x/2i showed.
    nxt = re.search(r"^=> 0x[0-9a-f]+ <main\+\d+>:.*\n\s+(0x[0-9a-f]+) <main\+\d+>:", out, re.M)
    assert nxt, s
    assert re.search(rf"^\$5 = {nxt.group(1)}\n\$6 = 0$", out, re.M), s
    assert "i = 0\ntotal = 0\nrounds = 3" in out, s
    assert "[Inferior 1 (Remote target) exited with code 044]" in out, s
    assert s.status == 36 and s.stdout == "hello from debugme: total 36 after 3 rounds, counter 3\n", s


def test_watchpoint_and_an_aerokernel_breakpoint_in_the_hrt(gdb, hybridized):
    fat, _ = hybridized("debugme.glibc")
    s = Session(gdb, fat, cwd=REPO, commands=[
        f"add-symbol-file {AEROKERNEL}", "break main", "continue", "watch counter", "continue", "p $_thread",
        "p $cpl", "delete", "break event_syscall", "continue", "p t->id", "p f->rax", "info threads", "bt 2",
        "delete", "continue"])
    out = s.out
    # the store in scale() runs in ring 0 in the HRT: reported after it, with old and new value
    assert re.search(r"Hardware watchpoint 2: counter\n\nOld value = 0\nNew value = 1\n"
                     r"scale \(x=0, factor=10\) at src/debugme.c:16\n", out), s
    assert re.search(r"^\$1 = 2\n\$2 = 0$", out, re.M), s          # gdb's thread 2 is HRT thread 1; ring 0
    # main's first system call (printf's fstat) enters the AeroKernel on behalf of HRT thread 1:
    # the AeroKernel's own struct thread says so too.
    assert re.search(r"Thread 2 hit Breakpoint 3, event_syscall \(t=(t@entry=)?0x[0-9a-f]+ <threads>, "
                     r"f=(f@entry=)?0x[0-9a-f]+\) "
                     r"at events.c:\d+", out), s
    assert re.search(r"^\$3 = 1\n\$4 = 262$", out, re.M), s        # newfstatat
    assert re.search(r"\* 2 +Thread 1 \(HRT thread 1, ring 0, vCPU 0, partner 1000\) +event_syscall", out), s
    assert re.search(r"#1  0x[0-9a-f]+ in syscall_dispatch \(", out), s
    assert s.status == 36 and "counter 3" in s.stdout, s


def _syscalls_in(gdb: str, prog, function: str) -> list[int]:
    r = subprocess.run([gdb, "-batch", "-nx", str(prog), "-ex", f"disassemble {function}"],
                       capture_output=True, text=True, env=dict(BASE_ENV))
    found = [int(a, 16) for a in re.findall(r"^\s+(0x[0-9a-f]+) <\+\d+>:\tsyscall", r.stdout, re.M)]
    assert found, r.stdout + r.stderr
    return found


def test_a_forwarded_write_from_the_hrt_to_the_partner_and_back(gdb, hybridized):
    """docs/gdb.md's walk: the `syscall` of write() in ring 0, stepi into the AeroKernel's entry,
    the partner's mv_forward_syscall in ring 3 in the ROS, the write done there, back in the HRT
    right after its `syscall` with the result."""
    fat, runtime_entry = hybridized("stdio_exit.glibc")
    sites = _syscalls_in(gdb, fat, "write")
    s = Session(gdb, fat, cwd=REPO, commands=[
        f"add-symbol-file {AEROKERNEL}", f"add-symbol-file {RUNTIME} -o {runtime_entry:#x}",
        *[f"break *{a:#x}" for a in sites], "continue", "p $_thread", "p $rdi", "x/s $rsi", "stepi",
        "p $cpl", "set $hrt_return = $rcx", "p/x $hrt_return", "delete", "break mv_forward_syscall", "continue",
        "info threads", "p $cpl", "p ((struct hvm_event *)$rdi)->nr", "finish", "p $rax", "delete",
        "tbreak *$hrt_return", "continue", "p $_thread", "p $rax", "p $cpl", "continue"])
    out = s.out
    # In the HRT: write(2, "stderr: unbuffered line\n", 24) at its `syscall`, in ring 0.
    assert re.search(r"\[Switching to Thread 1\]\n\nThread 2 hit Breakpoint \d, 0x[0-9a-f]+ in write \(\)\n"
                     r"\$1 = 2\n\$2 = 2\n0x[0-9a-f]+:\t\"stderr: unbuffered line\\n\"\n", out), s
    # stepi: SYSCALL enters the AeroKernel's entry stub (LSTAR), still ring 0, RCX = the return address
    entry = re.search(r"^(syscall_entr\w+) \(\) at syscall.S:\d+\n.*\n\$3 = 0\n\$4 = (0x[0-9a-f]+)$", out, re.M)
    assert entry and int(entry.group(2), 16) in [a + 2 for a in sites], s
    # The partner takes the event in the ROS, in ring 3; the HRT thread waits for it in the AeroKernel.
    assert re.search(r"\[Switching to Thread 1000\]\n\nThread 1 hit Breakpoint \d+, 0x[0-9a-f]+ in ", out), s
    rows = table(out)
    assert any(re.search(r"^\* 1 +Thread 1000 \(ROS pid 1000 tid 1000, ring 3, vCPU 0, partner of HRT thread 1\)", r)
               for r in rows), s
    assert any(re.search(r"Thread 1 \(HRT thread 1, ring 0, vCPU 0, partner 1000, forwarded write\) +"
                         r"0x[0-9a-f]+ in wait_for_interrupt \(\)", r) for r in rows), s
    assert re.search(r"^\$5 = 3\n\$6 = 1$", out, re.M), s          # ring 3; the event is a write (1)
    # finish: mv_forward_syscall issued it in the ROS and returns its result to the partner loop
    assert re.search(r"in partner_loop \(.*\) at split.c:\d+\n\d+\s+ev->result = mv_forward_syscall\(ev\);\n"
                     r"\$7 = 24\n", out), s
    # Back in the HRT right after its `syscall`, with the result, in ring 0.
    back = re.search(r"\[Switching to Thread 1\]\n\nThread 2 hit Temporary breakpoint \d+, "
                     r"(0x[0-9a-f]+) in write \(\)\n\$8 = 2\n\$9 = 24\n\$10 = 0\n", out)
    assert back and int(back.group(1), 16) == int(entry.group(2), 16), s
    assert s.stderr.splitlines()[1] == "stderr: unbuffered line", s
    assert s.status == 3, s


def test_same_split_session_twice_gives_the_same_output(gdb, hybridized):
    fat, _ = hybridized("debugme.glibc")
    commands = [f"add-symbol-file {AEROKERNEL}", *MAIN_SESSION[:-1], "watch counter", "continue", "info threads",
                "thread 3", "bt", "thread 1", "bt", "delete", "continue"]
    first = Session(gdb, fat, commands=commands, cwd=REPO)
    second = Session(gdb, fat, commands=commands, cwd=REPO)
    assert "Hardware watchpoint 2: counter" in first.out and "thread_run_queued" in first.out, first
    assert first.out == second.out, f"first:\n{first.out}\nsecond:\n{second.out}"
    assert first.status == second.status == 36


def test_hvm_debug_info_agrees_with_the_aerokernels_debug_information(gdb, hybridized):
    """What the stub reads from the AeroKernel's hvm_debug_info (in hvm/abi.py's field order) is
    what gdb computes from the image's DWARF: the tables' addresses and struct thread's layout."""
    import struct

    from hvm import abi
    from hvm.hrt import parse_image
    hybridized("debugme.glibc")                    # (builds the AeroKernel)
    image = parse_image(AEROKERNEL.read_bytes())
    addr = image.symbols[abi.DEBUG_INFO_SYMBOL]
    va, _memsz, data, _flags = next(seg for seg in image.segments if seg[0] <= addr < seg[0] + len(seg[2]))
    n = len(abi.DEBUG_INFO_FIELDS)
    info = dict(zip(abi.DEBUG_INFO_FIELDS, struct.unpack_from(f"<{n}Q", data, addr - va)))
    assert info["magic"] == abi.DEBUG_INFO_MAGIC
    exprs = {"current": "(unsigned long)&'thread.c'::current", "idle": "(unsigned long)&'thread.c'::idle_threads",
             "threads": "(unsigned long)&'thread.c'::threads", "thread_size": "sizeof(struct thread)",
             "max_threads": "sizeof('thread.c'::threads) / sizeof(struct thread)",
             "max_cpus": "sizeof('thread.c'::current) / sizeof(void *)",
             **{f"off_{f}": f"(unsigned long)&((struct thread *)0)->{f}"
                for f in ("rsp", "id", "state", "cpu", "channel", "fs_base")},
             **{f"state_{s}": f"(int)TS_{s.upper()}" for s in ("free", "runnable", "running", "blocked", "dead")}}
    argv = [gdb, "-batch", "-nx", str(AEROKERNEL)]
    for e in exprs.values():
        argv += ["-ex", f"p/x {e}"]
    r = subprocess.run(argv, capture_output=True, text=True, env=dict(BASE_ENV))
    values = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", r.stdout, re.M)]
    assert len(values) == len(exprs), r.stdout + r.stderr
    assert {k: info[k] for k in exprs} == dict(zip(exprs, values))
