"""The Multiverse rows of run.py: a program hybridized (`mvemu hybridize`) against the same program
un-hybridized, both under `mvemu run` (the paper's "Multiverse" and "Virtual"), and the HVM's own
costs (hypercall, merge, function invocation, HRT boot).

run.py calls `section(bench, opts, wanted, h)`, `h` being run.py itself (its Cell, table and
formatting helpers; this module does not import it, run.py runs as __main__). Three tables:

  1. compute:  the Benchmarks Game programs and a threaded mandelbrot, Virtual vs Multiverse
               seconds, both runs with --stats (the fat binary's forwarded events and host time
               per side go into a Fig. 9-like table);
  2. events:   per-event costs with the small-N/large-N method, native / Virtual / Multiverse:
               a forwarded system call (getpid_loop), a forwarded page fault (touch_pages),
               mmap+touch+munmap (mmap_loop), thread create+join (thread_loop), and the bare
               hypercall from HRT code (hypercall_loop, Multiverse only);
  3. hvm:      hvm_client (a ROS program using /dev/hvm) repeating one request: a null hypercall
               through the STATE ioctl, MERGE, a synchronous call, RESET, and RESET + install +
               boot + first call.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

# The issues' targets.
TARGET_RATIO = 1.05                  # Multiverse time / Virtual time
TARGET_FORWARD_US = 10.0             # a forwarded system call or page fault round trip, host time
TARGET_HYPERCALL_US = 2.0            # a null hypercall round trip, host time

# name, args before N, full-run N, quick N (None: not in --quick, which keeps one serial and the
# threaded program), output discarded after the check
COMPUTE = [
    ("nbody", (), "2000000", "20000", False),
    ("spectral_norm", (), "2000", None, False),
    ("fannkuch", (), "10", None, False),
    ("binary_trees", (), "16", None, False),
    ("mandelbrot", (), "2000", None, True),
    # [threads]: the same mandelbrot on two pthreads (HRT threads once hybridized).
    ("par_mandelbrot", ("2",), "2000", "200", False),
]


@dataclass(frozen=True)
class Ev:
    name: str
    prog: str
    args: tuple[str, ...]
    small: int
    large: int
    small_quick: int
    large_quick: int
    desc: str
    target_s: float | None = None
    runners: tuple[str, ...] = ("native", "virtual", "multiverse")


# Large N keeps the slowest side's large run near 1-2 s (and the fastest side's well above the noise).
EVENTS = [
    Ev("mv_getpid", "getpid_loop", (), 200, 100_000, 50, 500,
       "forwarded system call (getpid)", TARGET_FORWARD_US * 1e-6),
    Ev("mv_fault", "touch_pages", (), 200, 5000, 50, 500,
       "forwarded page fault (first touch)", TARGET_FORWARD_US * 1e-6),
    Ev("mv_mmap", "mmap_loop", (), 100, 2000, 20, 200, "mmap+touch+munmap (2 syscalls + 1 fault)"),
    Ev("mv_thread", "thread_loop", (), 10, 200, 5, 30, "thread create+join"),
    Ev("mv_hypercall", "hypercall_loop", (), 1000, 200_000, 1000, 20_000,
       "hypercall from HRT code (GET_STATE, `out`)", TARGET_HYPERCALL_US * 1e-6,
       runners=("native", "multiverse")),
]

# hvm_client IMAGE bench WHAT N [ADDR]: (name, what, small, large, small quick, large quick, desc, target)
HVM = [
    ("hvm_state", "state", 1000, 20000, 100, 2000, "null hypercall: STATE ioctl (GET_STATE)",
     TARGET_HYPERCALL_US * 1e-6),
    ("hvm_merge", "merge", 1000, 10000, 100, 1000, "merge: MERGE ioctl (2 KiB PML4 copy + TLB flush)", None),
    ("hvm_call", "call", 100, 2000, 20, 200, "synchronous call: INVOKE_SYNC ioctl, add(i)", None),
    ("hvm_async", "async", 100, 2000, 20, 200,
     "asynchronous call: INVOKE ioctl, add(i) (all waited for once at the end)", None),
    ("hvm_reset", "reset", 5, 40, 1, 2, "RESET ioctl (stop the HRT, clear its 64 MiB)", None),
    ("hvm_boot", "reboot", 5, 40, 1, 2, "RESET + install + boot + first synchronous call", None),
]
NULL_FUNCTION = "aerokernel_add"      # the AeroKernel export the call rows invoke

# The paper's Fig. 2 (cycles on its hardware) and Fig. 11, shown beside ours.
PAPER = {
    "hvm_merge": "~33K cycles (15 us)",
    "hvm_call": "sync ~790-1060 cycles",
    "hvm_async": "async ~25K cycles (11 us)",
    "mv_thread": "async call ~25K cycles (11 us)",
    "mv_getpid": "~1,500 cycles added per event",
    "mv_fault": "~1,500 cycles added per event",
    "mv_mmap": "~1,500 cycles added per event",
}

STATS = {   # --stats line -> key
    "forwarded system calls": "syscalls", "forwarded page faults": "faults",
    "forwarded exceptions": "exceptions", "HRT threads created": "threads",
    "host time, ROS vCPU": "ros_ms", "host time, HRT vCPUs": "hrt_ms", "mean forwarding cost": "forward_us",
}


def parse_stats(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        for label, key in STATS.items():
            if line.strip().startswith(label):
                m = re.search(r"([\d.]+)", line.strip()[len(label):])
                if m:
                    out[key] = float(m.group(1))
    return out


def cpu_ghz() -> float | None:
    """This machine's clock as the kernel reports it (cpu MHz of the first CPU), for the cycle columns."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def build_pieces(root: str) -> None:
    """A --rev tree (git archive) has no built AeroKernel, runtime or native VMM helpers
    (hvm/native, where the revision has them): build them as `make images` does."""
    for d in ("hvm/native", "aerokernel", "toolchain/runtime"):
        if not os.path.isdir(os.path.join(root, d)):
            continue
        p = subprocess.run(["make", "-s", "-C", os.path.join(root, d)], capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"make -C {d} in {root} failed:\n{p.stdout}{p.stderr}")


def hybridize(opts, src: str, dst: str) -> str | None:
    """`mvemu hybridize src -o dst` (default overrides); None, or the error line."""
    p = subprocess.run(opts.mvemu_cmd + ["hybridize", src, "-o", dst], capture_output=True, text=True)
    if p.returncode != 0:
        lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit {p.returncode}"
    return None


def symbol(elf: str, name: str) -> str | None:
    p = subprocess.run(["nm", elf], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        w = line.split()
        if len(w) == 3 and w[2] == name:
            return "0x" + w[0]
    return None


def per_event(cs, cl, small: int, large: int) -> dict[str, float | None]:
    per = {}
    for r in cs:
        per[r] = None
        if cs[r].ok and cl[r].ok:
            diff = cl[r].median - cs[r].median
            per[r] = diff / (large - small) if diff > 0 else None
    return per


def cycles(sec: float | None, ghz: float | None) -> str:
    if sec is None or not ghz:
        return "-"
    c = sec * ghz * 1e9
    return f"{c / 1e3:.0f}K" if c >= 1e4 else f"{c:.0f}"


def section(bench, opts, wanted, h, results: dict, all_cells: dict, md_parts: list[str], tmp: str) -> None:
    root = opts.mvemu_root
    if opts.rev:
        build_pieces(root)
    ghz = cpu_ghz()
    ghz_text = f"{ghz:.2f}" if ghz else "?"
    results["multiverse"] = {"cpu_ghz": ghz, "compute": {}, "events": {}, "hvm": {}}
    res = results["multiverse"]
    fats: dict[str, str | None] = {}

    def fat(prog: str) -> str | None:
        """The hybridized fat binary of a guest image (made once); None if hybridize failed."""
        if prog not in fats:
            src = bench.prog(prog)
            dst = os.path.join(tmp, os.path.basename(src) + ".hrt")
            err = hybridize(opts, src, dst)
            if err:
                print(f"  hybridize {prog}: FAILED: {err}", flush=True)
                res.setdefault("hybridize_failed", {})[prog] = err
            fats[prog] = None if err else dst
        return fats[prog]

    def mv_cells(prog, args, discard=False, runners=("native", "virtual", "multiverse"), flags=None):
        path = fat(prog)
        if path is None:
            runners = tuple(r for r in runners if r != "multiverse")
        cells = bench.measure(prog, args, discard, runners=runners, progs={"multiverse": path} if path else None,
                              flags=flags)
        if path is None:
            cells["multiverse"] = h.Cell(status="FAILED", detail="mvemu hybridize failed")
        return cells

    # 1. compute -------------------------------------------------------------------------------
    rows, frows = [], []
    stats_flags = {"virtual": ["--stats"], "multiverse": ["--stats"]}
    for name, pre, nf, nq, discard in COMPUTE:
        if not wanted("mv_" + name) or (opts.quick and nq is None):
            continue
        args = [*pre, nq if opts.quick else nf]
        print(f"  multiverse {name} {' '.join(args)} ...", end="", flush=True)
        cells = mv_cells(name, args, discard, flags=stats_flags)
        all_cells[f"multiverse {name}"] = cells
        v, m = cells["virtual"].median, cells["multiverse"].median
        print(f" virtual={h.fmt_s(cells['virtual'])}  multiverse={h.fmt_s(cells['multiverse'])}", flush=True)
        st = parse_stats(cells["multiverse"].runs[0].err) if cells["multiverse"].runs else {}
        tgt = "-" if not (v and m) else "met" if m / v <= TARGET_RATIO else f"MISSED (<= {TARGET_RATIO})"
        rows.append([name, " ".join(args), h.fmt_s(cells["native"]), h.fmt_s(cells["virtual"]),
                     h.fmt_s(cells["multiverse"]), f"{m - v:+.3f}" if v and m else "-", h.ratio(m, v), tgt])
        if st:
            fwd = st.get("syscalls", 0) + st.get("faults", 0) + st.get("exceptions", 0)
            est = fwd * st.get("forward_us", 0) / 1e6
            frows.append([name, f"{st.get('syscalls', 0):.0f}", f"{st.get('faults', 0):.0f}",
                          f"{st.get('threads', 0):.0f}", f"{st.get('ros_ms', 0):.0f}", f"{st.get('hrt_ms', 0):.0f}",
                          f"{st.get('forward_us', 0):.0f} us" if fwd else "-", f"{est:.3f}"])
        res["compute"][name] = {"args": args, "stats": st,
                                **{r: c.to_json() for r, c in cells.items()}}
    if rows:
        headers = ["benchmark", "N", "native s", "virtual s", "multiverse s", "multiverse-virtual s",
                   "multiverse/virtual", "target"]
        title = (f"Multiverse vs Virtual, compute ({h.CLOCK} seconds, median of {opts.repeat}; "
                 f"target multiverse/virtual <= {TARGET_RATIO})")
        print(f"\n{title}\n" + h.table(headers, rows, md=False))
        md_parts.append(f"### {title}\n\n" + h.table(headers, rows, md=True))
    if frows:
        headers = ["benchmark", "fwd syscalls", "fwd faults", "HRT threads", "ROS vCPU ms", "HRT vCPU ms",
                   "mean forwarding", "fwd events x mean, s"]
        title = "Multiverse --stats of the first hybridized run (the paper's Fig. 9 columns; host wall time)"
        print(f"\n{title}\n" + h.table(headers, frows, md=False))
        md_parts.append(f"### {title}\n\n" + h.table(headers, frows, md=True))

    # 2. per-event ------------------------------------------------------------------------------
    erows = []
    for ev in EVENTS:
        if not wanted(ev.name):
            continue
        small, large = (ev.small_quick, ev.large_quick) if opts.quick else (ev.small, ev.large)
        print(f"  multiverse {ev.prog} {small} / {large} ...", end="", flush=True)
        cs = mv_cells(ev.prog, [*ev.args, str(small)], runners=ev.runners)
        cl = mv_cells(ev.prog, [*ev.args, str(large)], runners=ev.runners)
        all_cells[f"multiverse {ev.prog} {small}"], all_cells[f"multiverse {ev.prog} {large}"] = cs, cl
        per = per_event(cs, cl, small, large)
        print(" " + "  ".join(f"{r}={h.fmt_event(per[r])}" for r in per), flush=True)
        v, m = per.get("virtual"), per.get("multiverse")
        if ev.target_s is not None and m is not None:
            tgt = "met" if m <= ev.target_s else f"MISSED (<= {h.fmt_target(ev.target_s)})"
        else:
            tgt = "-"
        status = lambda r: (h.fmt_event(per[r]) if per.get(r) is not None else
                            "-" if r not in cs else cl[r].status if not cl[r].ok else cs[r].status if not cs[r].ok
                            else "noise")
        erows.append([f"{ev.desc} ({ev.prog})", f"{small}->{large}", status("native"),
                      status("virtual") if "virtual" in ev.runners else "-", status("multiverse"),
                      h.fmt_event(m - v) if v and m else "-", cycles(m - v if v and m else m, ghz),
                      PAPER.get(ev.name, "-"), tgt])
        res["events"][ev.name] = {"desc": ev.desc, "program": ev.prog, "n_small": small, "n_large": large,
                                  "per_event_s": per, "target_s": ev.target_s,
                                  "small": {r: c.to_json() for r, c in cs.items()},
                                  "large": {r: c.to_json() for r, c in cl.items()}}
    if erows:
        headers = ["event", "N", "native", "virtual", "multiverse", "multiverse-virtual", "cycles",
                   "paper", "target"]
        title = (f"Multiverse per-event cost (host {h.CLOCK} time per event, (t(large N) - t(small N)) / "
                 f"(large - small); cycles at {ghz_text} GHz of multiverse-virtual, or of multiverse "
                 f"alone where there is no virtual)")
        print(f"\n{title}\n" + h.table(headers, erows, md=False))
        md_parts.append(f"### {title}\n\n" + h.table(headers, erows, md=True))

    # 3. the HVM's own costs (hvm_client under mvemu) ------------------------------------------
    image = os.path.join(root, "aerokernel", "build", "aerokernel.elf")
    addr = symbol(image, NULL_FUNCTION) if os.path.exists(image) else None
    hrows = []
    for name, what, sn, ln, sq, lq, desc, target in HVM:
        if not wanted(name):
            continue
        small, large = (sq, lq) if opts.quick else (sn, ln)
        extra = [addr] if what in ("call", "reboot", "async") else []
        if addr is None:
            print(f"  {name}: no {NULL_FUNCTION} in {image}: skipped", flush=True)
            res.setdefault("hvm_skipped", []).append(name)
            continue
        print(f"  hvm_client bench {what} {small} / {large} ...", end="", flush=True)
        cs = bench.measure("hvm_client", [image, "bench", what, str(small), *extra], runners=("mvemu",))
        cl = bench.measure("hvm_client", [image, "bench", what, str(large), *extra], runners=("mvemu",))
        all_cells[f"hvm_client {what} {small}"], all_cells[f"hvm_client {what} {large}"] = cs, cl
        per = per_event(cs, cl, small, large)["mvemu"]
        print(f" {h.fmt_event(per)}", flush=True)
        tgt = "-" if target is None or per is None else "met" if per <= target else f"MISSED (<= {h.fmt_target(target)})"
        shown = h.fmt_event(per) if per is not None else (cl["mvemu"].status if not cl["mvemu"].ok else
                                                          cs["mvemu"].status if not cs["mvemu"].ok else "noise")
        hrows.append([desc, f"{small}->{large}", shown, cycles(per, ghz), PAPER.get(name, "-"), tgt])
        res["hvm"][name] = {"desc": desc, "n_small": small, "n_large": large, "per_event_s": per,
                            "target_s": target, "small": cs["mvemu"].to_json(), "large": cl["mvemu"].to_json()}
    if hrows:
        headers = ["request (hvm_client, a ROS program, under mvemu)", "N", "mvemu", "cycles", "paper (Fig. 2)",
                   "target"]
        title = (f"HVM requests from the ROS (host {h.CLOCK} time per request: the ROS system call, the "
                 f"ioctl and the hypercall; cycles at {ghz_text} GHz)")
        print(f"\n{title}\n" + h.table(headers, hrows, md=False))
        md_parts.append(f"### {title}\n\n" + h.table(headers, hrows, md=True))
