"""CR0.WP in the HRT (DESIGN.md section 1): why Multiverse sets it, shown both ways.

guest_images/src/wp_demo.c, hybridized, writes from ring 0 to a page that maps the shared zero
page and to a page it shares copy-on-write with a forked child. With WP (the default) both writes
fault, the ROS breaks the sharing, and the output is the native one (the differential and
hybridize suites check that too). With `--hrt-wp off` the writes land in the shared frames: a page
the program only read, a page it maps later, and the child's memory all change."""
from __future__ import annotations

import dataclasses

import pytest

import harness
from harness import BUILD, Case
from test_hybridize import fat_of, pieces  # noqa: F401  (a fixture)

ZERO_OK = b"a page only read holds 0, a page mapped later holds 0\n"
ZERO_BROKEN = b"a page only read holds 87, a page mapped later holds 87\n"
CHILD_OK = b'fork: the child sees "original"\n'


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_wp_on_and_off(variant, pieces, tmp_path, mvemu_importable):  # noqa: F811
    fat = fat_of(BUILD / f"wp_demo.{variant}", pieces, tmp_path / "wp_demo.hrt")
    case = Case(str(fat))
    native = harness.run_native(case, tmp_path / "native")
    assert native.status == 0 and ZERO_OK in native.stdout and CHILD_OK in native.stdout, native

    on = harness.run_mvemu(dataclasses.replace(case, mvemu_options=("--hrt-wp", "on")), tmp_path / "on")
    assert harness.compare(case, native, on) == []

    off = harness.run_mvemu(dataclasses.replace(case, mvemu_options=("--hrt-wp", "off", "--trace")),
                            tmp_path / "off")
    assert b"mvemu: warning: --hrt-wp off" in off.stderr
    assert b"WITHOUT WP" in off.stderr, "the trace says how the HRT vCPU was started"
    # The zero page itself was written: every page that maps it, now and later, reads 'W' (87).
    assert ZERO_BROKEN in off.stdout, off.stdout.decode()
    # The parent's write after fork reached the child: musl's child prints the parent's text;
    # glibc's child does not even get that far as itself (the parent's stack writes reached its
    # stack too, and it takes the parent's branch). Either way the native line is gone.
    assert CHILD_OK not in off.stdout, off.stdout.decode()
    if variant == "musl":
        assert b'fork: the child sees "written by the parent after fork"\n' in off.stdout
