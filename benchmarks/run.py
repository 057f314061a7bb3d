#!/usr/bin/env python3
"""mvemu benchmarks: the same static guest programs natively, under qemu-user and under mvemu.

`make bench` (or `.venv/bin/python benchmarks/run.py`) runs everything in one go:

  1. compute:   the Benchmarks Game programs from guest_images/build, median wall time of
                --repeat runs per runner; the outputs of all runners must agree with native
                (a disagreement is reported as WRONG and not timed further);
  2. per-event: getpid and mmap+touch+munmap round trips ([syscall]), and pipe ping-pong,
                futex wake round trip and fork+exit+wait of a 10 MB process ([process],
                `pingpong MODE N`), as the difference between a run with a large N and a run
                with a small N (start-up cost cancels);
  3. memory:    peak RSS of each child (os.wait4's rusage), for a tiny program and for
                allocation-heavy ones, to show mvemu's own constant cost;
  4. start-up:  `hello` as its own row;
  5. Multiverse: hybridized vs plain programs under mvemu, forwarded events, and the HVM's
                hypercall, merge, call and boot costs (multiverse.py; --only multiverse).

Options: --quick (tiny N, 1 repeat: a smoke run in well under a minute), --only NAME
(repeatable, substring match), --repeat K, --rev REV (mvemu as committed, not the working tree),
--clock cpu, --json FILE, --markdown FILE, --variant musl, --no-qemu, --timeout S.
The exit status is 1 if any runner FAILED or was WRONG.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import multiverse       # benchmarks/multiverse.py: the Multiverse vs Virtual and HVM rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "guest_images", "build")
RUNNERS = ("native", "qemu", "mvemu")
CLOCK = "wall"      # which time the tables use: "wall" (elapsed) or "cpu" (child user+sys, --clock cpu)

# Targets from the issue.
TARGET_COMPUTE_VS_QEMU = 1.5      # mvemu/qemu for compute programs
TARGET_GETPID_US = 2.0            # getpid round trip under mvemu, microseconds
TARGET_FORK_MS = 2.0              # fork+exit+wait of a process with 10 MB touched, under mvemu, ms

# name, full-run N, quick N, output goes to /dev/null after the checked first run
COMPUTE = [
    ("nbody", "2000000", "20000", False),
    ("spectral_norm", "2000", "150", False),
    ("fannkuch", "10", "8", False),
    ("binary_trees", "16", "10", False),
    ("mandelbrot", "2000", "200", True),
]

@dataclass(frozen=True)
class Event:
    """A per-event benchmark: `prog *args N` run with a small and a large N."""
    name: str                 # key in the JSON and for --only (with the group)
    group: str                # "syscall" or "process": one table each; --only process
    prog: str
    args: tuple[str, ...]     # arguments before N
    small: int                # N for the full run
    large: int
    small_quick: int          # N for --quick
    large_quick: int
    desc: str
    target_s: float | None = None     # upper bound for mvemu's cost per event, if the issue sets one

    def label(self) -> str:
        return " ".join((self.prog,) + self.args)


# Large N is chosen so that mvemu's large run takes at most ~3 s.
EVENTS = [
    Event("getpid_loop", "syscall", "getpid_loop", (), 1000, 1_000_000, 1000, 200_000,
          "getpid round trip", TARGET_GETPID_US * 1e-6),
    Event("mmap_loop", "syscall", "mmap_loop", (), 200, 20_000, 100, 4_000, "mmap+touch+munmap"),
    # Two processes, two pipes: one byte each way per round trip.
    Event("pingpong_pipe", "process", "pingpong", ("pipe",), 200, 20_000, 100, 2_000,
          "pipe ping-pong round trip"),
    # Two threads, one futex word: FUTEX_WAKE + FUTEX_WAIT each way per round trip.
    Event("pingpong_futex", "process", "pingpong", ("futex",), 200, 10_000, 100, 1_000,
          "futex wake round trip"),
    # The parent has 10 MB malloc'd and touched; each iteration forks a child that _exits at once.
    Event("pingpong_fork", "process", "pingpong", ("fork",), 10, 1_000, 5, 50,
          "fork+exit+wait, 10 MB touched", TARGET_FORK_MS * 1e-3),
]
EVENT_GROUPS = {"syscall": "system calls and faults", "process": "processes and threads"}
# Extra memory-only probe (besides hello and binary_trees from the tables above).
MEMORY_EXTRA = [("malloc_stress", "4000", "500")]

# DESIGN.md section 10 (peer figures, same programs, medians): seconds at the peers' N.
PEERS = {
    "nbody": ("4M steps", 0.35, 6.45, 18.3),
    "spectral_norm": ("3000", 0.40, 5.30, 13.5),
    "fannkuch": ("10", 0.19, 0.48, 7.13),
    "binary_trees": ("17", 0.38, 2.37, 41.3),
}
PEER_EVENTS = {"getpid_loop": (85e-9, 260e-9, 36e-6), "mmap_loop": (5.4e-6, 9.3e-6, 420e-6)}


# ----------------------------------------------------------------------------- running


@dataclass
class Run:
    wall: float = 0.0
    rc: int | None = None
    out_hash: str = ""
    out_len: int = 0
    err: str = ""
    maxrss_kb: int = 0
    cpu: float = 0.0
    timed_out: bool = False
    rss_exact: bool = False    # maxrss from GNU time, not inflated by the parent


def gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (it reports the child's peak RSS with -f %M)."""
    path = shutil.which("time", path="/usr/bin:/bin") or ""
    if path:
        p = subprocess.run([path, "--version"], capture_output=True, text=True)
        if "GNU" in p.stdout + p.stderr:
            return path
    return None


GNU_TIME = gnu_time()


def run_once(cmd: list[str], discard_output: bool, timeout: float, rss: bool = False) -> Run:
    """Run cmd once; wall time, exit status, stdout hash, stderr, and the child's own rusage.

    stdout goes to an unlinked temporary file (or /dev/null), never a pipe, so a large output
    cannot block the child. os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would be
    the maximum over every child so far). But Linux carries ru_maxrss across execve, and the
    child starts as a copy of this Python process (~25 MiB), so for a true peak RSS (rss=True)
    the command runs under GNU time, a small process that forks it afresh and reports %M; that
    adds ~1.5 ms of wall time to the run.
    """
    wrapped = rss and GNU_TIME is not None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r", prefix="bench-rss-") as rssf:
        if wrapped:
            cmd = [GNU_TIME, "-f", "%M", "-o", rssf.name] + cmd
        sink = subprocess.DEVNULL if discard_output else out
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink, stderr=err,
                                start_new_session=True)
        fired = threading.Event()

        def kill():
            fired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            t1 = time.perf_counter()
            timer.cancel()
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        maxrss = ru.ru_maxrss
        if wrapped:
            report = rssf.read()
            words = report.split()
            maxrss = int(words[-1]) if words and words[-1].isdigit() else 0
            if rc > 128 and "terminated by signal" in report:
                rc = -(rc - 128)      # GNU time exits 128+N when the command died by signal N
        out.seek(0)
        data = out.read()
        err.seek(0)
        errtext = err.read().decode(errors="replace")
    return Run(wall=t1 - t0, rc=rc, out_hash=hashlib.sha256(data).hexdigest(),
               out_len=len(data), err=errtext, maxrss_kb=maxrss,
               cpu=ru.ru_utime + ru.ru_stime, timed_out=fired.is_set(), rss_exact=wrapped)


def error_line(r: Run) -> str:
    """One line saying why a run failed: a traceback's last line, else the first stderr line."""
    if r.timed_out:
        return f"timeout after {r.wall:.0f} s"
    lines = [ln.strip() for ln in r.err.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        msg = lines[-1]
    else:
        msg = lines[0] if lines else ""
    what = f"exit {r.rc}" if r.rc is not None and r.rc >= 0 else f"signal {-(r.rc or 0)}"
    return f"{what}: {msg}" if msg else what


@dataclass
class Cell:
    """One program under one runner: status and the runs that were timed."""
    status: str = "ok"          # ok | WRONG | FAILED | skipped
    detail: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def median(self) -> float | None:
        """Median of the runs' wall time, or of their CPU time with --clock cpu."""
        if not (self.ok and self.runs):
            return None
        return statistics.median(r.cpu if CLOCK == "cpu" else r.wall for r in self.runs)

    @property
    def maxrss_kb(self) -> int | None:
        """Peak RSS in KiB: from the GNU-time run if there was one (exact), else from wait4."""
        exact = [r.maxrss_kb for r in self.runs if r.rss_exact]
        return max(exact or [r.maxrss_kb for r in self.runs]) if self.runs else None

    @property
    def rss_exact(self) -> bool:
        return any(r.rss_exact for r in self.runs)

    def to_json(self):
        return {"status": self.status, "detail": self.detail, "median_s": self.median, "clock": CLOCK,
                "times_s": [r.wall for r in self.runs], "cpu_s": [r.cpu for r in self.runs],
                "maxrss_kb": self.maxrss_kb, "maxrss_exact": self.rss_exact}


class Bench:
    def __init__(self, opts):
        self.opts = opts
        # "virtual" (a plain program) and "multiverse" (its fat binary) are mvemu too: the
        # Multiverse rows (multiverse.py) name them apart.
        self.cmds = {"native": [], "qemu": [opts.qemu] if opts.qemu else None,
                     "mvemu": opts.mvemu_cmd + ["run"], "virtual": opts.mvemu_cmd + ["run"],
                     "multiverse": opts.mvemu_cmd + ["run"]}

    def prog(self, name: str) -> str:
        path = os.path.join(BUILD, f"{name}.{self.opts.variant}")
        if not os.path.exists(path):
            path = os.path.join(BUILD, f"{name}.glibc")
        return path

    def measure(self, name: str, args: list[str], discard_after_check: bool = False,
                repeat: int | None = None, runners: tuple[str, ...] = RUNNERS,
                progs: dict[str, str] | None = None, flags: dict[str, list[str]] | None = None
                ) -> dict[str, Cell]:
        """Run one program under every runner, `repeat` times, interleaving the runners.

        The first runner (native, unless told otherwise) is the reference: the first run of each
        other runner is checked against it, exit status and stdout must be equal. A runner that
        fails or disagrees gets no further (timed) runs. `progs` gives a runner another program
        (the Multiverse rows run a hybridized fat binary), `flags` options before the program.
        """
        repeat = repeat or self.opts.repeat
        prog = self.prog(name)
        progs, flags = progs or {}, flags or {}
        ref_runner = runners[0]
        cells = {r: Cell() for r in runners}
        if "qemu" in cells and self.cmds["qemu"] is None:
            cells["qemu"] = Cell(status="skipped", detail="qemu-x86_64 not available")
        ref: Run | None = None
        for i in range(repeat):
            for runner in runners:
                cell = cells[runner]
                if not cell.ok or (runner != ref_runner and ref is None):
                    continue
                discard = discard_after_check and i > 0
                cmd = self.cmds[runner] + flags.get(runner, []) + [progs.get(runner, prog)] + args
                r = run_once(cmd, discard, self.opts.timeout, rss=(i == 0))
                if r.timed_out or (r.rc != 0 and (runner == ref_runner or r.rc != ref.rc)):
                    cell.status, cell.detail = "FAILED", error_line(r)
                    cell.runs.append(r)
                    continue
                if i == 0:
                    if runner == ref_runner:
                        ref = r
                    elif (r.rc, r.out_hash) != (ref.rc, ref.out_hash):
                        cell.status = "WRONG"
                        cell.detail = (f"output differs from {ref_runner} ({r.out_len} vs {ref.out_len} "
                                       f"bytes, exit {r.rc} vs {ref.rc})")
                        cell.runs.append(r)
                        continue
                elif not discard and r.out_hash != ref.out_hash:
                    cell.status, cell.detail = "WRONG", f"run {i + 1} output differs from {ref_runner}"
                cell.runs.append(r)
        if cells[ref_runner].status != "ok":   # nothing to compare against
            for runner in runners[1:]:
                if cells[runner].ok:
                    cells[runner] = Cell(status="skipped", detail=f"{ref_runner} run failed")
        return cells


# ----------------------------------------------------------------------------- setup


def ensure_qemu(opts) -> str | None:
    """Path of qemu-x86_64, installing Debian's qemu-user if it is missing (root or sudo -n)."""
    found = shutil.which("qemu-x86_64")
    if found or opts.no_qemu:
        return None if opts.no_qemu else found
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        print("qemu-x86_64 not found and not root (no passwordless sudo): the qemu column is skipped."
              " Install it with: sudo apt-get install qemu-user", file=sys.stderr)
        return None
    print("installing qemu-user (apt-get update && apt-get install -y qemu-user) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "qemu-user"]):
        p = subprocess.run(prefix + step, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  {' '.join(step)} failed ({last}): the qemu column is skipped.", file=sys.stderr)
            return None
    return shutil.which("qemu-x86_64")


def git(*args: str) -> str:
    p = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ""


def mvemu_at_rev(rev: str, tmp: str) -> tuple[list[str], str]:
    """A command running mvemu as committed at `rev`: `git archive` into tmp, PYTHONPATH first.

    The working tree may be mid-edit by others; a commit gives numbers someone can reproduce.
    PYTHONPATH is searched before the venv's editable-install finder, so the copy wins.
    """
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not commit:
        raise SystemExit(f"--rev {rev}: not a commit of {ROOT}")
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    # Byte-compile now: with PYTHONDONTWRITEBYTECODE set, every run would compile the sources.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", tmp], check=True)
    # -P: do not put the current directory (maybe this checkout) ahead of PYTHONPATH.
    return ["env", f"PYTHONPATH={tmp}", sys.executable, "-P", "-m", "hvm"], commit


def find_mvemu() -> str:
    for cand in (os.path.join(os.path.dirname(sys.executable), "mvemu"),
                 os.path.join(ROOT, ".venv", "bin", "mvemu")):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("mvemu") or "mvemu"


def loadavg() -> str:
    """The 1-minute load average: other work on the machine inflates every wall time here."""
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def machine_info() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    qemu_version = ""
    q = shutil.which("qemu-x86_64")
    if q:
        p = subprocess.run([q, "--version"], capture_output=True, text=True)
        qemu_version = (p.stdout.splitlines() or [""])[0]
    try:
        import unicorn
        uc_version = unicorn.__version__
    except Exception:          # the harness itself does not need unicorn
        uc_version = "?"
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "unicorn": uc_version, "qemu": qemu_version}


# ----------------------------------------------------------------------------- formatting


def fmt_s(cell: Cell) -> str:
    if cell.ok:
        return f"{cell.median:.3f}"
    return cell.status


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def fmt_event(sec: float | None) -> str:
    if sec is None:
        return "-"
    if sec < 1e-6:
        return f"{sec * 1e9:.0f} ns"
    if sec >= 1e-3:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec * 1e6:.2f} us"


def fmt_target(sec: float) -> str:
    """A target as the issue states it: `2 us`, `2 ms`."""
    return f"{sec * 1e3:g} ms" if sec >= 1e-3 else f"{sec * 1e6:g} us"


def table(headers: list[str], rows: list[list[str]], md: bool) -> str:
    if md:
        out = ["| " + " | ".join(headers) + " |",
               "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def notes_for(cells_by_name: dict[str, dict[str, Cell]]) -> list[str]:
    notes = []
    for name, cells in cells_by_name.items():
        for runner, c in cells.items():
            if c.status in ("WRONG", "FAILED"):
                notes.append(f"{name} under {runner}: {c.status}: {c.detail}")
    return notes


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny N and 1 repeat: a smoke run")
    ap.add_argument("--repeat", type=int, default=None, metavar="K", help="runs per measurement (default 3, --quick 1)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only benchmarks whose name contains NAME (repeatable): e.g. nbody, getpid, startup, "
                         "memory, process (pipe, futex, fork), syscall (getpid, mmap)")
    ap.add_argument("--variant", default="glibc", choices=["glibc", "musl"], help="guest build variant")
    ap.add_argument("--json", metavar="FILE", help="save all results as JSON")
    ap.add_argument("--markdown", metavar="FILE", help="save the tables as Markdown")
    ap.add_argument("--no-qemu", action="store_true", help="skip the qemu-user column")
    ap.add_argument("--mvemu", default=None, metavar="CMD",
                    help="mvemu command, split like a shell would (default: the venv's mvemu, i.e. the working tree)")
    ap.add_argument("--rev", default=None, metavar="REV",
                    help="benchmark mvemu as committed at git revision REV instead of the working tree")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time the tables report: wall (default) or cpu = the child's user+sys time, "
                         "steadier when other work shares the machine")
    ap.add_argument("--timeout", type=float, default=300.0, metavar="S", help="kill a run after S seconds (default 300)")
    opts = ap.parse_args(argv)
    opts.repeat = opts.repeat or (1 if opts.quick else 3)
    global CLOCK
    CLOCK = opts.clock
    tmpdir = tempfile.TemporaryDirectory(prefix="mvemu-rev-")
    if opts.rev:
        opts.mvemu_cmd, mvemu_source = mvemu_at_rev(opts.rev, tmpdir.name)
        opts.mvemu_root = tmpdir.name
        mvemu_source = f"commit {mvemu_source[:12]} ({opts.rev})"
    else:
        opts.mvemu_cmd = shlex.split(opts.mvemu) if opts.mvemu else [find_mvemu()]
        opts.mvemu_root = ROOT
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "hvm", "ros_shim", "toolchain")
        mvemu_source = f"working tree at {head or '?'}" + (" with uncommitted changes" if dirty else "")
    opts.qemu = ensure_qemu(opts)

    if not os.path.isdir(BUILD):
        print(f"{BUILD} is missing: run `make images` first", file=sys.stderr)
        return 2

    memory_set = ("startup", "hello", "binary_trees", "malloc_stress")

    def wanted(name: str) -> bool:
        if not opts.only:
            return True
        return (any(o in name for o in opts.only) or ("memory" in opts.only and name in memory_set)
                or ("multiverse" in opts.only and name.startswith(("mv_", "hvm_"))))

    bench = Bench(opts)
    started = time.time()
    t_start = time.perf_counter()
    mode = "quick" if opts.quick else "full"
    command = " ".join(["benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:]))
    load_before = loadavg()
    print(f"mvemu benchmarks ({mode}, {CLOCK} time, median of {opts.repeat}, {opts.variant}); "
          f"qemu: {opts.qemu or 'skipped'}; mvemu: {' '.join(opts.mvemu_cmd)} [{mvemu_source}]", flush=True)

    results = {"command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "mvemu": {"command": opts.mvemu_cmd, "source": mvemu_source},
               "mode": mode, "clock": CLOCK, "repeat": opts.repeat, "variant": opts.variant, "machine": machine_info(),
               "compute": {}, "events": {}, "memory": {}}
    all_cells: dict[str, dict[str, Cell]] = {}
    md_parts: list[str] = []

    # 1. compute + start-up -------------------------------------------------------------
    rows: list[tuple[str, str, dict[str, Cell]]] = []
    jobs = [("startup", "hello", [], False)] if wanted("startup") or wanted("hello") else []
    jobs += [(name, name, [nq if opts.quick else nf], dn) for name, nf, nq, dn in COMPUTE if wanted(name)]
    for label, prog, args, discard in jobs:
        print(f"  {label} {' '.join(args)} ...", end="", flush=True)
        # start-up is short and noisy: take more samples (the first, RSS-measuring run
        # under GNU time is ~1.5 ms slower).
        reps = max(opts.repeat, 11) if label == "startup" and not opts.quick else None
        cells = bench.measure(prog, args, discard, repeat=reps)
        all_cells[label] = cells
        rows.append((label, " ".join(args) or "-", cells))
        print(" " + "  ".join(f"{r}={fmt_s(cells[r])}" for r in RUNNERS), flush=True)
        results["compute"][label] = {"program": prog, "args": args,
                                     **{r: cells[r].to_json() for r in RUNNERS}}
    if rows:
        headers = ["benchmark", "N", "native s", "qemu s", "mvemu s",
                   "mvemu/native", "qemu/native", "mvemu/qemu", "target"]
        body = []
        for label, n, c in rows:
            nat, qem, mve = (c[r].median for r in RUNNERS)
            mq = ratio(mve, qem)
            if label == "startup":
                tgt = "-"
            elif mve and qem:
                tgt = "met" if mve / qem <= TARGET_COMPUTE_VS_QEMU else f"MISSED (<= {TARGET_COMPUTE_VS_QEMU}x)"
            else:
                tgt = "-"
            name = "startup (hello)" if label == "startup" else label
            body.append([name, n, fmt_s(c["native"]), fmt_s(c["qemu"]), fmt_s(c["mvemu"]),
                         ratio(mve, nat), ratio(qem, nat), mq, tgt])
        print("\nCompute (%s seconds, median of %d; target mvemu/qemu <= %.1fx)" % (CLOCK, opts.repeat, TARGET_COMPUTE_VS_QEMU))
        print(table(headers, body, md=False))
        md_parts.append("### Compute (%s seconds, median of %d)\n\n%s" % (CLOCK, opts.repeat, table(headers, body, md=True)))

    # 2. per-event costs --------------------------------------------------------------
    ev_rows: dict[str, list[list[str]]] = {g: [] for g in EVENT_GROUPS}
    for ev in EVENTS:
        if not (wanted(ev.name) or (opts.only and ev.group in opts.only)):
            continue
        small, large = (ev.small_quick, ev.large_quick) if opts.quick else (ev.small, ev.large)
        print(f"  {ev.label()} {small} / {large} ...", end="", flush=True)
        cs = bench.measure(ev.prog, [*ev.args, str(small)])
        cl = bench.measure(ev.prog, [*ev.args, str(large)])
        all_cells[f"{ev.label()} {small}"], all_cells[f"{ev.label()} {large}"] = cs, cl
        per, noisy = {}, set()
        for r in RUNNERS:
            per[r] = None
            if cs[r].ok and cl[r].ok:
                diff = cl[r].median - cs[r].median
                if diff > 0:
                    per[r] = diff / (large - small)
                else:                    # start-up noise swamped the events: no estimate
                    noisy.add(r)
        print(" " + "  ".join(f"{r}={fmt_event(per[r])}" for r in RUNNERS), flush=True)
        results["events"][ev.name] = {"desc": ev.desc, "group": ev.group, "program": ev.prog,
                                      "args": list(ev.args), "n_small": small, "n_large": large,
                                      "per_event_s": per, "target_s": ev.target_s,
                                      "small": {r: cs[r].to_json() for r in RUNNERS},
                                      "large": {r: cl[r].to_json() for r in RUNNERS}}
        if ev.target_s is not None and per["mvemu"] is not None:
            tgt = "met" if per["mvemu"] <= ev.target_s else f"MISSED (<= {fmt_target(ev.target_s)})"
        else:
            tgt = "-"
        statuses = ["noise" if r in noisy else cl[r].status if not cl[r].ok else cs[r].status for r in RUNNERS]
        cols = [fmt_event(per[r]) if per[r] is not None else statuses[i] for i, r in enumerate(RUNNERS)]
        ev_rows[ev.group].append([f"{ev.desc} ({ev.label()})", f"{small}->{large}", *cols,
                                  ratio(per["mvemu"], per["native"]), ratio(per["qemu"], per["native"]),
                                  ratio(per["mvemu"], per["qemu"]), tgt])
    headers = ["event", "N", "native", "qemu", "mvemu", "mvemu/native", "qemu/native", "mvemu/qemu", "target"]
    targets = {"syscall": f"target getpid <= {TARGET_GETPID_US:g} us under mvemu",
               "process": f"target fork+exit+wait <= {TARGET_FORK_MS:g} ms under mvemu; pipe and futex reported"}
    for group, grows in ev_rows.items():
        if not grows:
            continue
        print(f"\nPer-event host {CLOCK} time, {EVENT_GROUPS[group]} ((t(large N) - t(small N)) / (large - small); "
              f"{targets[group]})")
        print(table(headers, grows, md=False))
        md_parts.append(f"### Per-event cost, {EVENT_GROUPS[group]} (host {CLOCK} time per event)\n\n"
                        + table(headers, grows, md=True))

    # 3. Multiverse vs Virtual, and the HVM's own costs (multiverse.py) ----------------------
    with tempfile.TemporaryDirectory(prefix="mvemu-fat-") as fat_dir:
        multiverse.section(bench, opts, wanted, sys.modules[__name__], results, all_cells, md_parts, fat_dir)

    # 4. memory -----------------------------------------------------------------------
    for name, nf, nq in MEMORY_EXTRA:
        if wanted(name):
            args = [nq if opts.quick else nf]
            print(f"  {name} {args[0]} (memory) ...", end="", flush=True)
            cells = bench.measure(name, args, repeat=1)
            all_cells[name] = cells
            print(" " + "  ".join(f"{r}={fmt_s(cells[r])}" for r in RUNNERS), flush=True)
            rows.append((name, args[0], cells))
            results["compute"][name] = {"program": name, "args": args, "memory_only": True,
                                        **{r: cells[r].to_json() for r in RUNNERS}}
    mem_rows = []
    for label, n, c in rows:
        rss = {r: c[r].maxrss_kb if c[r].runs and c[r].status != "skipped" else None for r in RUNNERS}
        fmt = lambda kb: f"{kb / 1024:.1f}" if kb else "-"
        over = (rss["mvemu"] - rss["native"]) if rss["mvemu"] and rss["native"] else None
        qover = (rss["qemu"] - rss["native"]) if rss["qemu"] and rss["native"] else None
        name = "startup (hello)" if label == "startup" else label
        mem_rows.append([name, n, fmt(rss["native"]), fmt(rss["qemu"]), fmt(rss["mvemu"]), fmt(qover), fmt(over)])
        results["memory"][label] = {"maxrss_kb": rss, "mvemu_minus_native_kb": over}
    if mem_rows:
        headers = ["program", "N", "native MiB", "qemu MiB", "mvemu MiB", "qemu-native", "mvemu-native"]
        how = ("GNU time %M of the first run" if GNU_TIME else
               "wait4 ru_maxrss, which includes the ~25 MiB harness image the child was forked from")
        print(f"\nPeak RSS (MiB, {how}; native = the guest's own footprint)")
        print(table(headers, mem_rows, md=False))
        md_parts.append(f"### Peak RSS (MiB, {how})\n\n" + table(headers, mem_rows, md=True))

    notes = notes_for(all_cells)
    if notes:
        print("\nProblems:")
        for n in notes:
            print("  " + n)
        md_parts.append("### Problems\n\n" + "\n".join(f"- {n}" for n in notes))
    elapsed = time.perf_counter() - t_start
    results["elapsed_s"] = elapsed
    results["loadavg_1min"] = {"before": load_before, "after": loadavg()}
    results["problems"] = notes
    print(f"\ntotal {elapsed:.1f} s; 1-minute load average {load_before} before, {loadavg()} after "
          f"({os.cpu_count()} cores; the harness itself accounts for about 1)")

    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    if opts.markdown:
        m = results["machine"]
        head = (f"Command: `{command}` (mode {mode}, {CLOCK} time, median of {opts.repeat} runs, {opts.variant} builds)  \n"
                f"Date: {results['date']}  \n"
                f"mvemu: {mvemu_source}  \n"
                f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
                f"unicorn {m['unicorn']}, {m['qemu'] or 'no qemu'}  \n"
                f"Total harness time: {elapsed:.0f} s; 1-minute load average {load_before} before, "
                f"{results['loadavg_1min']['after']} after\n")
        with open(opts.markdown, "w") as f:
            f.write(head + "\n" + "\n\n".join(md_parts) + "\n")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
