"""Shared fixtures: the guest images (built once per session), C test programs compiled on demand,
and the differential harness (`differ`)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

C_DIR = Path(__file__).resolve().parent / "c"


@pytest.fixture(scope="session")
def images() -> Path:
    """guest_images/build, brought up to date by `make -C guest_images` once per session."""
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed: cannot build guest_images", pytrace=False)
    p = subprocess.run(["make", "-C", str(harness.REPO / "guest_images")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=1800)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.decode(errors="replace").splitlines()[-40:])
        pytest.fail(f"`make -C guest_images` failed (status {p.returncode}):\n{tail}", pytrace=False)
    for name in ("hello.glibc", "busybox", "bash"):
        if not (harness.BUILD / name).is_file():
            pytest.fail(f"`make -C guest_images` succeeded but {harness.BUILD / name} is missing", pytrace=False)
    return harness.BUILD


@pytest.fixture(scope="session")
def mvemu_importable() -> None:
    """The harness runs `sys.executable -m hvm`: make sure that interpreter can import mvemu."""
    p = subprocess.run([sys.executable, "-c", "import hvm, ros_shim"], cwd="/", capture_output=True)
    if p.returncode != 0:
        pytest.fail(f"{sys.executable} cannot import hvm/ros_shim outside the repository (run `make setup` "
                    f"and use .venv/bin/python):\n{p.stderr.decode(errors='replace')}", pytrace=False)


@pytest.fixture
def work(tmp_path) -> Path:
    """The work directory of one differential case (created and wiped by the harness)."""
    return tmp_path / "work"


@pytest.fixture
def differ(images, mvemu_importable, work):
    """differ(case) runs `case` natively and under mvemu and fails the test on any difference."""
    def run(case: harness.Case):
        return harness.check(case, work)
    return run


class CPrograms:
    """Static test programs from tests/c/, compiled once per session and per libc on first use."""

    def __init__(self, outdir: Path):
        self.outdir = outdir
        self.built: dict[tuple[str, str], Path] = {}

    COMPILERS = {"glibc": ["gcc", "-static"], "musl": ["musl-gcc", "-static"],
                 "pie": ["gcc", "-static-pie", "-fPIE"]}

    def __call__(self, name: str, libc: str = "glibc") -> str:
        key = (name, libc)
        if key not in self.built:
            src = C_DIR / f"{name}.c"
            out = self.outdir / f"{name}.{libc}"
            cc = self.COMPILERS[libc]
            if shutil.which(cc[0]) is None:
                pytest.fail(f"{cc[0]} is not installed (guest_images needs it too)", pytrace=False)
            p = subprocess.run([*cc, "-O1", "-Wall", "-o", str(out), str(src)], capture_output=True)
            if p.returncode != 0:
                pytest.fail(f"cannot compile {src} with {cc[0]}:\n{p.stderr.decode(errors='replace')}",
                            pytrace=False)
            self.built[key] = out
        return str(self.built[key])


@pytest.fixture(scope="session")
def cprog(tmp_path_factory) -> CPrograms:
    """cprog('name', 'glibc'|'musl'|'pie') -> path of tests/c/name.c compiled statically."""
    return CPrograms(tmp_path_factory.mktemp("cprogs"))
