"""Unit tests of ros_shim.loader: ELF validation (read_elf), segment loading and the System V
initial stack (build_stack). The ELF facts are checked against a small independent parser."""
from __future__ import annotations

import errno
import struct
import subprocess

import pytest

from hvm.memory import PAGE_SIZE, GuestMemory
from ros_shim import layout, loader
from ros_shim.loader import ExecError
from ros_shim.mm import PF_I, PF_U, PF_W, PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace, TlbHooks
from ros_shim.paging import FrameAllocator

AT = dict(AT_NULL=0, AT_PHDR=3, AT_PHENT=4, AT_PHNUM=5, AT_PAGESZ=6, AT_ENTRY=9, AT_UID=11, AT_EUID=12,
          AT_GID=13, AT_EGID=14, AT_PLATFORM=15, AT_SECURE=23, AT_RANDOM=25, AT_EXECFN=31)


def parse_elf(data: bytes) -> dict:
    """The header fields and PT_LOAD/PT_INTERP program headers of an ELF64 file, by hand."""
    (e_type, e_machine, _v, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize, e_phnum) = \
        struct.unpack_from("<HHIQQQIHHH", data, 16)
    phdrs = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = \
            struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        phdrs.append(dict(type=p_type, flags=p_flags, offset=p_offset, vaddr=p_vaddr, filesz=p_filesz,
                          memsz=p_memsz))
    return dict(type=e_type, machine=e_machine, entry=e_entry, phoff=e_phoff, phnum=e_phnum, phdrs=phdrs)


@pytest.fixture
def mm():
    mem = GuestMemory(64 << 20)
    return AddressSpace(mem, FrameAllocator(mem, 0, 64 << 20), 0, TlbHooks())


# -- read_elf --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind", [("hello.glibc", "ET_EXEC"), ("hello.musl", "ET_EXEC"),
                                        ("hello.pie", "ET_DYN"), ("busybox", "ET_EXEC")])
def test_read_elf_static_images(images, name, kind):
    path = images / name
    ref = parse_elf(path.read_bytes())
    img = loader.read_elf(str(path))
    assert img.kind == kind
    assert img.entry == ref["entry"]
    assert img.phoff == ref["phoff"] and img.phnum == ref["phnum"]
    loads = [(p["vaddr"], p["memsz"], p["offset"], p["filesz"], p["flags"]) for p in ref["phdrs"]
             if p["type"] == 1 and p["memsz"]]
    assert img.segments == loads


def test_read_elf_static_pie_links_at_zero(images):
    img = loader.read_elf(str(images / "hello.pie"))
    assert min(v for v, *_ in img.segments) == 0, "a static-pie image is linked at 0 and relocated"


def _expect_exec_error(path, err, *words):
    if path.is_file():
        path.chmod(0o755)             # executable, so that the check under test is the one that fails
    with pytest.raises(ExecError) as info:
        loader.read_elf(str(path))
    assert info.value.errno == err
    text = str(info.value)
    assert "\n" not in text and text
    for w in words:
        assert w.lower() in text.lower(), f"{text!r} does not mention {w!r}"
    return text


def test_exec_error_missing(tmp_path):
    _expect_exec_error(tmp_path / "nope", errno.ENOENT, "No such file")


def test_exec_error_directory(tmp_path):
    _expect_exec_error(tmp_path, errno.EACCES, "directory")


def test_exec_error_not_executable(tmp_path, images):
    f = tmp_path / "noexec"
    f.write_bytes((images / "hello.glibc").read_bytes())
    f.chmod(0o644)
    with pytest.raises(ExecError) as info:
        loader.read_elf(str(f))
    assert info.value.errno == errno.EACCES
    assert "Permission denied" in str(info.value)


def test_exec_error_text(tmp_path):
    f = tmp_path / "script"
    f.write_text("#!/bin/sh\necho hi\n")
    _expect_exec_error(f, errno.ENOEXEC, "text")


def test_exec_error_not_elf(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(b"\x00\x01\x02\xff" * 100)
    _expect_exec_error(f, errno.ENOEXEC, "ELF")


def test_exec_error_truncated(tmp_path, images):
    f = tmp_path / "trunc"
    f.write_bytes((images / "hello.glibc").read_bytes()[:200])
    _expect_exec_error(f, errno.ENOEXEC)


def test_exec_error_dynamic(tmp_path):
    src = tmp_path / "d.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "d"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    _expect_exec_error(exe, errno.ENOEXEC, "dynamic", "static")


def _elf_header(e_machine: int, ei_class: int = 2) -> bytes:
    ident = b"\x7fELF" + bytes([ei_class, 1, 1, 0]) + bytes(8)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, 0x400078, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0x80, 0x80, 0x1000)
    return (hdr + phdr).ljust(0x80, b"\0")


def test_exec_error_arm(tmp_path):
    f = tmp_path / "arm"
    f.write_bytes(_elf_header(183))        # EM_AARCH64
    _expect_exec_error(f, errno.ENOEXEC, "architecture", "AArch64")


# -- load_image --------------------------------------------------------------------------------------
def _prot(flags):
    return (PROT_READ if flags & 4 else 0) | (PROT_WRITE if flags & 2 else 0) | (PROT_EXEC if flags & 1 else 0)


@pytest.mark.parametrize("name", ["hello.glibc", "hello.pie"])
def test_load_image_segments(images, mm, name):
    data = (images / name).read_bytes()
    ref = parse_elf(data)
    img = loader.read_elf(str(images / name))
    loaded = loader.load_image(mm, img)
    base = layout.PIE_BASE if ref["type"] == 3 else 0
    assert loaded.entry == base + ref["entry"]
    assert loaded.phnum == ref["phnum"]
    for p in (p for p in ref["phdrs"] if p["type"] == 1):
        start = base + p["vaddr"]
        vma = mm.find(start)
        assert vma is not None and vma.prot == _prot(p["flags"])
        # file bytes appear at their addresses; the bss after filesz reads zero
        assert mm.read(start, min(p["filesz"], 256)) == data[p["offset"]:p["offset"] + min(p["filesz"], 256)]
        if p["memsz"] > p["filesz"]:
            n = min(p["memsz"] - p["filesz"], 64)
            assert mm.read(start + p["filesz"], n) == bytes(n)
    # AT_PHDR: the program headers as mapped in memory
    assert mm.read(loaded.phdr, 56 * ref["phnum"]) == data[ref["phoff"]:ref["phoff"] + 56 * ref["phnum"]]
    # code is executable, data is not
    assert mm.fault(loaded.entry, PF_U | PF_I)
    assert not mm.fault(loaded.entry, PF_U | PF_W)
    # heap starts page-aligned after the last segment; a stack VMA exists below STACK_TOP
    end = max(base + p["vaddr"] + p["memsz"] for p in ref["phdrs"] if p["type"] == 1)
    assert loaded.brk == (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    stack = mm.find(layout.STACK_TOP - 1)
    assert stack is not None and stack.prot & PROT_WRITE and not stack.prot & PROT_EXEC


# -- build_stack -------------------------------------------------------------------------------------
def _u64(mm, va):
    return struct.unpack("<Q", mm.read(va, 8))[0]


@pytest.mark.parametrize("name", ["hello.glibc", "hello.pie"])
def test_build_stack_layout(images, mm, name):
    img = loader.read_elf(str(images / name))
    loaded = loader.load_image(mm, img)
    argv = [b"/path/to/prog", b"", b"two words", b"x" * 1000]
    envp = [b"A=1", b"EMPTY=", b"PATH=/usr/bin:/bin"]
    rnd = bytes(range(100, 116))
    ids = (1001, 1002, 1003, 1004)
    sp = loader.build_stack(mm, loaded, argv, envp, b"/exec/fn", rnd, ids)
    assert sp % 16 == 0, "rsp at process entry is 16-byte aligned (System V ABI)"
    assert sp < layout.STACK_TOP
    assert _u64(mm, sp) == len(argv)
    p = sp + 8
    for a in argv:
        assert mm.read_cstr(_u64(mm, p), 8192) == a
        p += 8
    assert _u64(mm, p) == 0
    p += 8
    for e in envp:
        assert mm.read_cstr(_u64(mm, p)) == e
        p += 8
    assert _u64(mm, p) == 0
    p += 8
    auxv = {}
    while True:
        key, val = _u64(mm, p), _u64(mm, p + 8)
        p += 16
        if key == AT["AT_NULL"]:
            break
        assert key not in auxv, f"auxv key {key} appears twice"
        auxv[key] = val
    assert auxv[AT["AT_PHDR"]] == loaded.phdr
    assert auxv[AT["AT_PHNUM"]] == loaded.phnum
    assert auxv[AT["AT_PHENT"]] == 56
    assert auxv[AT["AT_ENTRY"]] == loaded.entry
    assert auxv[AT["AT_PAGESZ"]] == 4096
    assert mm.read(auxv[AT["AT_RANDOM"]], 16) == rnd
    assert (auxv[AT["AT_UID"]], auxv[AT["AT_EUID"]], auxv[AT["AT_GID"]], auxv[AT["AT_EGID"]]) == ids
    assert auxv[AT["AT_SECURE"]] == 0
    assert mm.read_cstr(auxv[AT["AT_EXECFN"]]) == b"/exec/fn"
    assert mm.read_cstr(auxv[AT["AT_PLATFORM"]]) == b"x86_64"
    # every string the stack points to lies between sp and STACK_TOP
    for va in (auxv[AT["AT_RANDOM"]], auxv[AT["AT_EXECFN"]], _u64(mm, sp + 8)):
        assert sp < va < layout.STACK_TOP


def test_build_stack_alignment_for_every_argc(images, mm):
    img = loader.read_elf(str(images / "hello.musl"))
    loaded = loader.load_image(mm, img)
    for n in range(1, 6):
        for extra in range(0, 17, 5):
            argv = [b"p" * (1 + extra)] * n
            sp = loader.build_stack(mm, loaded, argv, [b"E=" + b"v" * extra], b"p", bytes(16), (0, 0, 0, 0))
            assert sp % 16 == 0, (n, extra)
            assert _u64(mm, sp) == n


def test_build_stack_too_big(images, mm):
    img = loader.read_elf(str(images / "hello.glibc"))
    loaded = loader.load_image(mm, img)
    with pytest.raises(ExecError) as info:
        loader.build_stack(mm, loaded, [b"a" * (1 << 20)] * 12, [], b"p", bytes(16), (0, 0, 0, 0))
    assert info.value.errno == errno.E2BIG
