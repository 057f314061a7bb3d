"""TLB coherence and re-merge in split execution (docs/split.md): tests/c/hrt_tlb.c, hybridized,
changes its mappings from main in the HRT (munmap and mmap again at the same address 300 times,
mremap, brk shrink, a mapping under a top-level entry made after the merge, mprotect). Its output
must be the native one, with the shootdowns and the re-merge that made it so in --stats."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import harness
from harness import Case
from test_hybridize import fat_of, pieces  # noqa: F401  (a fixture)


def _stat(stderr: bytes, label: str) -> str:
    return re.search(rb"  " + label.encode() + rb" +(.*)\n", stderr).group(1).decode()


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_mapping_changes_reach_the_hrt(libc, cprog, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(Path(cprog("hrt_tlb", libc)), pieces, tmp_path / "hrt_tlb")
    case = Case(str(fat), mvemu_options=("--stats",))
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0 and b"FAIL" not in native.stdout and native.stdout.count(b" ok\n") == 6
    mvemu = harness.run_mvemu(case, tmp_path / "mvemu")
    assert (mvemu.status, mvemu.stdout) == (native.status, native.stdout), mvemu.stderr.decode()
    assert int(_stat(mvemu.stderr, "TLB shootdowns")) >= 300
    merges, remerges = map(int, _stat(mvemu.stderr, "merges / re-merges").split(" / "))
    assert merges == 1 and remerges >= 1, "the far mapping needed the PML4 entries copied again"
