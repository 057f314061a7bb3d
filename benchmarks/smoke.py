#!/usr/bin/env python3
"""Smoke check for the benchmark harness, without pytest.

Runs `benchmarks/run.py --quick` (extra arguments are passed on, e.g. `--rev HEAD`) and fails
if it takes a minute or more, exits non-zero (a crash, or a runner FAILED / WRONG), or writes
JSON without every section. Exit status 0 means the harness works end to end and is fast.

    .venv/bin/python benchmarks/smoke.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time

LIMIT_S = 60.0
HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "quick.json")
        cmd = [sys.executable, os.path.join(HERE, "run.py"), "--quick", "--json", out] + sys.argv[1:]
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, timeout=LIMIT_S).returncode
        except subprocess.TimeoutExpired:
            print(f"smoke: FAIL: run.py --quick did not finish within {LIMIT_S:.0f} s")
            return 1
        took = time.perf_counter() - t0
        problems = []
        if rc != 0:
            problems.append(f"run.py --quick exited {rc}")
        try:
            with open(out) as f:
                res = json.load(f)
            for section in ("compute", "events", "memory", "multiverse"):
                if not res.get(section):
                    problems.append(f"JSON section '{section}' is empty")
            problems += res.get("problems", [])
        except (OSError, ValueError) as e:
            problems.append(f"no usable JSON: {e}")
    if problems:
        print(f"smoke: FAIL after {took:.1f} s:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"smoke: ok, run.py --quick took {took:.1f} s (limit {LIMIT_S:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
