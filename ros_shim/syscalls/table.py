"""The system call table: one entry per implemented Linux x86-64 system call (xv6's syscall.c).

Handlers are plain functions `fn(k, t, a0, a1, ...)` of the kernel, the calling thread and the raw
64-bit argument registers, returning the result (a negative errno on failure) or NORETURN when the
calling thread does not come back (exit, a fatal signal), or BLOCK (via `k.block`) when it must
wait. Each entry carries a small argument
spec so that `--trace` can print the call strace-style:

    i signed int   u unsigned   x hex/pointer   fd file descriptor   s C string   o octal mode
    w buffer the call reads from the guest (length = next argument)
    r buffer the call fills (length = result)          - argument not shown
    and the named constants of symbols.py (prot, map, oflags, sig, futex, clone, ioctl, ...)
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Callable

from .names import NAMES, NUMBERS  # noqa: F401 (NAMES is re-exported)
from .symbols import KINDS

NORETURN = object()         # the calling thread does not come back (exit, exec, sigreturn)
BLOCK = object()            # the calling thread blocked (t.wait says on what); the call re-runs


@dataclass(frozen=True)
class Syscall:
    nr: int
    name: str
    fn: Callable
    args: tuple[str, ...]


TABLE: dict[int, Syscall] = {}
_PLAIN_KINDS = {"i", "u", "x", "fd", "s", "o", "w", "r", "-"}


def syscall(name: str, args: str = ""):
    """Register `fn` as the handler of system call `name` (its number comes from <asm/unistd_64.h>)."""
    spec = tuple(a for a in args.split(",") if a)
    unknown = [a for a in spec if a not in _PLAIN_KINDS and a not in KINDS]
    if unknown:
        raise RuntimeError(f"system call {name}: unknown argument kinds {unknown}")

    def register(fn):
        nr = NUMBERS[name]
        if nr in TABLE:
            raise RuntimeError(f"system call {name} registered twice")
        TABLE[nr] = Syscall(nr, name, fn, spec)
        return fn
    return register


def name_of(nr: int) -> str:
    return NAMES.get(nr, f"syscall_{nr}")


def signed(v: int) -> int:
    v &= 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v & (1 << 63) else v


def i32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & (1 << 31) else v


# -- tracing ---------------------------------------------------------------------------------------
def _quote(data: bytes, limit: int = 32) -> str:
    out = []
    for b in data[:limit]:
        c = chr(b)
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:o}")
    return '"' + "".join(out) + '"' + ("..." if len(data) > limit else "")


def format_call(k, t, entry: Syscall | None, nr: int, args: tuple[int, ...], result) -> str:
    name = entry.name if entry else name_of(nr)
    spec = entry.args if entry else ("x",) * 6
    shown = []
    for i, kind in enumerate(spec):
        v = args[i]
        if kind == "-":
            continue
        if kind in ("i", "fd"):
            shown.append(str(i32(v)) if kind == "fd" and i32(v) != -100 else ("AT_FDCWD" if kind == "fd" else str(signed(v))))
        elif kind == "u":
            shown.append(str(v))
        elif kind == "o":
            shown.append(f"0{v:o}")
        elif kind in KINDS:
            shown.append(KINDS[kind](v))
        elif kind == "s":
            s = t.proc.mm.read_cstr(v) if v else None
            shown.append(_quote(s, 64) if s is not None else f"{v:#x}")
        elif kind in ("w", "r"):
            n = args[i + 1] if kind == "w" else (result if isinstance(result, int) and result > 0 else 0)
            data = t.proc.mm.read(v, min(n, 32)) if v and n else b""
            shown.append(_quote(data or b"") + ("..." if n > 32 and data else "") if data is not None else f"{v:#x}")
        else:
            shown.append("NULL" if v == 0 else f"{v:#x}")
    if result is NORETURN:
        res = "?"
    elif isinstance(result, int) and -4096 < signed(result) < 0:
        e = -signed(result)
        res = f"-1 {errno.errorcode.get(e, str(e))} ({_strerror(e)})"
    elif name in ("mmap", "brk", "mremap") and isinstance(result, int):
        res = f"{result:#x}"
    else:
        res = str(result)
    return f"{name}({', '.join(shown)}) = {res}"


def _strerror(e: int) -> str:
    import os
    return os.strerror(e)
