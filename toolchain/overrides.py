"""Function overrides (paper III-D and IV-B; docs/overrides.md): a legacy function of the program
that, called in HRT context, runs an AeroKernel function or a Multiverse runtime function instead.

A config file (TOML) has one `[[override]]` table per legacy function:

    [[override]]
    function = "pthread_create"                 # the program's symbol (.symtab)
    target = "runtime:mv_pthread_create"        # or "aerokernel:NAME"
    args = ["a0", "a1", "a2", "a3", "$orig"]    # the target's arguments, in order
    when = "hrt"                                # "hrt" (default) or "always"
    required = true                             # false: a program without the function is left as is
    enabled = true                              # false: the entry is checked but not applied

An argument is `a0`..`a5` (the legacy function's first six integer arguments: RDI, RSI, RDX, RCX,
R8, R9), an integer constant (a TOML integer), or `$orig` (the address of a trampoline that runs the
original function). At most six; the target's other argument registers are unspecified.

For each override the toolchain generates, in the fat binary's new segment:

    trampoline:  the legacy function's first instructions (at least 5 bytes, RIP-relative operands
                 relocated), then `jmp` to the instruction after them
    wrapper:     mov %cs,%r11d; test $3,%r11b; jnz trampoline     (not CPL 0: the original)
                 the argument moves (push/pop for registers, mov for constants, lea for $orig)
                 jmp target                                        (a tail call: same stack, the
                                                                    target returns to the caller)

and the legacy function's first bytes become `jmp wrapper` (the rest of the moved instructions
int3). R11 is the only register the wrapper uses (it is scratch at a call, and RAX may carry a
variadic call's vector count). AeroKernel targets are resolved at hybridize time from the image's
symbol table (it is linked at a fixed higher-half address), runtime targets from runtime.elf's.
"""
from __future__ import annotations

import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path

from capstone import CS_ARCH_X86, CS_GRP_CALL, CS_GRP_INT, CS_GRP_IRET, CS_GRP_JUMP, CS_GRP_RET, CS_MODE_64, Cs
from capstone.x86 import X86_INS_SYSCALL, X86_OP_MEM, X86_REG_RIP

from .elf import SHT_SYMTAB, SYMBOL, Elf
from .errors import Refused

DEFAULT_CONFIG = Path(__file__).resolve().parent / "overrides.toml"
ARG_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
KINDS = ("aerokernel", "runtime")
WHEN = ("hrt", "always")
KEYS = {"function", "target", "args", "when", "required", "enabled"}
PATCH_SIZE = 5                       # jmp rel32
CODE_ALIGN = 16
NOTE_TYPE = 0x4d4f                   # "MO": the overrides note, next to the Multiverse note ("MV")
STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_LOCAL = 0
INT3 = b"\xcc"

_disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
_disassembler.detail = True


# -- the config --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Override:
    """One entry of a config file."""
    function: str
    kind: str                        # "aerokernel" or "runtime"
    target: str                      # the symbol in the image or the runtime
    args: tuple                      # of "a0".."a5", "$orig" and ints
    when: str = "hrt"
    required: bool = True
    enabled: bool = True

    @property
    def target_spec(self) -> str:
        return f"{self.kind}:{self.target}"


def load_config(path: str | Path) -> list[Override]:
    """The entries of a config file; every mistake is refused with the file and the entry named."""
    try:
        text = Path(path).read_bytes().decode()
    except FileNotFoundError:
        raise Refused(f"{path}: no such override config")
    except (OSError, UnicodeDecodeError) as e:
        raise Refused(f"{path}: cannot read the override config: {getattr(e, 'strerror', None) or e}")
    return parse_config(text, str(path))


def parse_config(text: str, origin: str = "<config>") -> list[Override]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Refused(f"{origin}: not valid TOML: {e}")
    unknown = set(doc) - {"override"}
    if unknown:
        raise Refused(f"{origin}: unknown top-level key {sorted(unknown)[0]!r} (entries are [[override]] tables)")
    entries = doc.get("override", [])
    if not isinstance(entries, list):
        raise Refused(f"{origin}: `override` must be an array of tables ([[override]])")
    overrides, seen = [], set()
    for number, entry in enumerate(entries, 1):
        o = _entry(entry, f"{origin}: override #{number}")
        if o.function in seen:
            raise Refused(f"{origin}: override #{number}: {o.function} is overridden twice")
        seen.add(o.function)
        overrides.append(o)
    return overrides


def _entry(entry, where: str) -> Override:
    if not isinstance(entry, dict):
        raise Refused(f"{where}: not a table")
    name = entry.get("function")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"
    unknown = set(entry) - KEYS
    if unknown:
        raise Refused(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(KEYS))})")
    for key in ("function", "target", "args"):
        if key not in entry:
            raise Refused(f"{where}: `{key}` is missing")
    if not (isinstance(name, str) and name.isprintable() and name.strip() == name and name):
        raise Refused(f"{where}: `function` must be a symbol name")
    target = entry["target"]
    kind, _, symbol = target.partition(":") if isinstance(target, str) else ("", "", "")
    if kind not in KINDS or not symbol or not symbol.isprintable() or " " in symbol:
        raise Refused(f"{where}: `target` must be \"aerokernel:NAME\" or \"runtime:NAME\", not {target!r}")
    args = entry["args"]
    if not isinstance(args, list):
        raise Refused(f"{where}: `args` must be a list such as [\"a0\", \"a1\", \"$orig\"]")
    if len(args) > len(ARG_REGISTERS):
        raise Refused(f"{where}: {len(args)} arguments; a target takes at most {len(ARG_REGISTERS)} (in registers)")
    parsed = []
    for a in args:
        if isinstance(a, bool) or not isinstance(a, (str, int)):
            raise Refused(f"{where}: argument {a!r} is not a0..a5, $orig or an integer")
        if isinstance(a, int):
            if not -(1 << 63) <= a < 1 << 64:
                raise Refused(f"{where}: the constant {a} does not fit in 64 bits")
        elif a != "$orig" and a not in _LEGACY_ARGS:
            raise Refused(f"{where}: argument {a!r} is not a0..a5, $orig or an integer")
        parsed.append(a)
    when = entry.get("when", "hrt")
    if when not in WHEN:
        raise Refused(f"{where}: `when` must be \"hrt\" or \"always\", not {when!r}")
    flags = {}
    for key in ("required", "enabled"):
        value = entry.get(key, True)
        if not isinstance(value, bool):
            raise Refused(f"{where}: `{key}` must be true or false")
        flags[key] = value
    return Override(name, kind, symbol, tuple(parsed), when, **flags)


_LEGACY_ARGS = {f"a{i}": reg for i, reg in enumerate(ARG_REGISTERS)}


# -- symbols -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int
    bind: int


def symbol_table(elf: Elf) -> list[Symbol] | None:
    """Every defined symbol of the file's .symtab; None when it has none (stripped)."""
    tables = [s for s in elf.sections if s.type == SHT_SYMTAB]
    if not tables:
        return None
    symbols = []
    for symtab in tables:
        if symtab.entsize != SYMBOL.size or symtab.link >= len(elf.sections):
            raise Refused("malformed ELF: a bad symbol table")
        strtab = elf.sections[symtab.link]
        for at in range(symtab.offset, symtab.offset + symtab.size - SYMBOL.size + 1, SYMBOL.size):
            name_at, info, _other, shndx, value, size = SYMBOL.unpack_from(elf.data, at)
            if shndx != 0 and name_at < strtab.size:
                name = elf.string(strtab, name_at).decode(errors="replace")
                symbols.append(Symbol(name, value, size, info & 0xf, info >> 4))
    return symbols


def find_function(symbols: list[Symbol], name: str) -> Symbol | None:
    """The function `name`: a global or weak definition if there is one, else a local one, refused
    if it is ambiguous or not a plain function."""
    found = [s for s in symbols if s.name == name]
    if not found:
        return None
    visible = [s for s in found if s.bind != STB_LOCAL] or found
    if len({s.value for s in visible}) > 1:
        raise Refused(f"{name} is defined {len(visible)} times at different addresses "
                      f"({', '.join(f'{s.value:#x}' for s in visible)}): which one to override is ambiguous")
    s = visible[0]
    if s.type == STT_GNU_IFUNC:
        raise Refused(f"{name} is an IFUNC: its symbol is the resolver that picks an implementation at "
                      f"start-up, not the function (override the implementation, e.g. __{name}_avx2, instead)")
    if s.type not in (STT_FUNC, 0):
        raise Refused(f"{name} is not a function (symbol type {s.type})")
    return s


# -- planning and code generation --------------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    """An override as applied to a program (what the overrides note records)."""
    function: str
    address: int                     # the legacy function (link-time)
    moved: int                       # bytes of its first instructions moved to the trampoline
    wrapper: int
    trampoline: int
    target: str                      # "kind:name"
    target_address: int
    args: str                        # as written in the config, comma-separated
    when: str


@dataclass(frozen=True)
class _Resolved:
    override: Override
    function: Symbol
    prologue: list                   # capstone instructions moved to the trampoline
    target_address: int | None       # runtime targets: None until the runtime is placed


def resolve(elf: Elf, overrides: list[Override], runtime_functions: dict, image: bytes) -> list[_Resolved]:
    """Check every enabled override against the program, the runtime and the AeroKernel image."""
    active = [o for o in overrides if o.enabled]
    if not active:
        return []
    symbols = symbol_table(elf)
    image_symbols = None
    plan, at = [], {}
    for o in active:
        where = f"override of {o.function}"
        function = find_function(symbols, o.function) if symbols is not None else None
        if function is None and not o.required:
            continue                     # an optional override of a function the program does not have
        if o.kind == "aerokernel":
            if image_symbols is None:
                image_symbols = symbol_table(Elf(image)) or []
                if not image_symbols:
                    raise Refused(f"{where}: the AeroKernel image has no symbol table to find {o.target} in")
            target = find_function(image_symbols, o.target)
            if target is None or target.type != STT_FUNC:
                raise Refused(f"{where}: the AeroKernel image has no function {o.target}")
            target_address = target.value
        else:
            if o.target not in runtime_functions:
                raise Refused(f"{where}: the Multiverse runtime has no function {o.target} "
                              f"(toolchain/runtime/; rebuild it with `make images`, or fix the config)")
            target_address = None
        if function is None:
            if symbols is None:
                raise Refused(f"{where}: the program is stripped (it has no symbol table), so {o.function} "
                              f"cannot be found; hybridize a build with symbols, or leave {o.function} out of "
                              f"the overrides")
            raise Refused(f"{where}: the program has no function {o.function} (not in its symbol table)")
        prologue = _prologue(elf, function, where)
        other = at.get(function.value)
        if other:
            raise Refused(f"{where}: {o.function} and {other} are the same function (at {function.value:#x}); "
                          f"override it once")
        at[function.value] = o.function
        plan.append(_Resolved(o, function, prologue, target_address))
    _check_overlaps(plan)
    return plan


def _prologue(elf: Elf, function: Symbol, where: str) -> list:
    """The function's first instructions that cover PATCH_SIZE bytes, all movable."""
    if function.size and function.size < PATCH_SIZE:
        raise Refused(f"{where}: {function.name} is {function.size} bytes long, too short for the "
                      f"{PATCH_SIZE}-byte jump that redirects it")
    if not elf.is_code(function.value):
        raise Refused(f"{where}: {function.name} ({function.value:#x}) is not in the program's code")
    code = elf.read(function.value, 64)
    moved, size = [], 0
    for insn in _disassembler.disasm(code, function.value):
        moved.append(insn)
        size += insn.size
        text = f"`{insn.mnemonic} {insn.op_str}`".replace(" `", "`")
        if (any(insn.group(g) for g in (CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET, CS_GRP_IRET))
                or (insn.group(CS_GRP_INT) and insn.id != X86_INS_SYSCALL) or insn.mnemonic in ("hlt", "ud2")):
            raise Refused(f"{where}: {function.name} has {text} at {insn.address:#x}, within the first "
                          f"{PATCH_SIZE} bytes that the redirecting jump replaces; a branch cannot be moved "
                          f"to the trampoline")
        if size >= PATCH_SIZE:
            break
    if size < PATCH_SIZE:
        raise Refused(f"{where}: cannot decode the first {PATCH_SIZE} bytes of {function.name} at "
                      f"{function.value:#x} as instructions")
    if function.size and size > function.size:
        raise Refused(f"{where}: {function.name}'s first instructions ({size} bytes) run past its end "
                      f"({function.size} bytes)")
    return moved


def _check_overlaps(plan: list[_Resolved]) -> None:
    spans = sorted((r.function.value, r.function.value + _moved(r), r.override.function) for r in plan)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise Refused(f"overrides of {a} and {b}: their redirecting jumps would overlap")


def _moved(r: _Resolved) -> int:
    return sum(i.size for i in r.prologue)


def generate(plan: list[_Resolved], base: int, runtime_base: int, runtime_functions: dict,
             elf: Elf) -> tuple[bytes, list[tuple[int, bytes]], list[Applied]]:
    """The overrides' code at address `base` (trampolines and wrappers), the patches of the program
    ((file offset, bytes): the redirecting jumps) and what was applied."""
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks, KsError

    ks = Ks(KS_ARCH_X86, KS_MODE_64)
    code, patches, applied = bytearray(), [], []
    for r in plan:
        o, f = r.override, r.function
        code += INT3 * (-len(code) % CODE_ALIGN)
        trampoline = base + len(code)
        code += _trampoline(r, trampoline)
        wrapper = base + len(code)
        target = r.target_address if o.kind == "aerokernel" else runtime_base + runtime_functions[o.target]
        try:
            code += _wrapper(ks, o, wrapper, trampoline, target)
        except KsError as e:             # a bug here, never the user's: say what was assembled
            raise Refused(f"override of {o.function}: could not assemble its wrapper ({e})")
        moved = _moved(r)
        jump = wrapper - (f.value + PATCH_SIZE)
        if not -(1 << 31) <= jump < 1 << 31:
            raise Refused(f"override of {o.function}: {f.value:#x} is too far from the new segment "
                          f"({wrapper:#x}) for a 32-bit jump")
        patches.append((elf.file_offset(f.value), b"\xe9" + struct.pack("<i", jump) + INT3 * (moved - PATCH_SIZE)))
        applied.append(Applied(o.function, f.value, moved, wrapper, trampoline, o.target_spec, target,
                               ",".join(map(str, o.args)), o.when))
    _check_decodes(bytes(code), base)
    return bytes(code), patches, applied


def _trampoline(r: _Resolved, at: int) -> bytes:
    """The moved instructions, RIP-relative operands relocated, then `jmp` back."""
    out = bytearray()
    for insn in r.prologue:
        b = bytearray(insn.bytes)
        if any(op.type == X86_OP_MEM and op.mem.base == X86_REG_RIP for op in insn.operands):
            enc = insn.encoding
            if enc.disp_size != 4:
                raise Refused(f"override of {r.override.function}: `{insn.mnemonic} {insn.op_str}` has an "
                              f"unexpected RIP-relative form")
            referenced = insn.address + insn.size + struct.unpack_from("<i", b, enc.disp_offset)[0]
            disp = referenced - (at + len(out) + insn.size)
            if not -(1 << 31) <= disp < 1 << 31:
                raise Refused(f"override of {r.override.function}: `{insn.mnemonic} {insn.op_str}` cannot "
                              f"reach {referenced:#x} from the trampoline")
            struct.pack_into("<i", b, enc.disp_offset, disp)
        out += b
    back = r.function.value + _moved(r)
    out += b"\xe9" + struct.pack("<i", back - (at + len(out) + 5))
    return bytes(out)


def _wrapper(ks, o: Override, at: int, trampoline: int, target: int) -> bytes:
    """CPL check, argument moves, tail jump; each instruction assembled at its address."""
    out = bytearray()

    def emit(line: str) -> None:
        encoding, _ = ks.asm(line, at + len(out))
        out.extend(encoding)

    if o.when == "hrt":
        emit("push rax")                 # the native path must change no register
        emit("mov eax, cs")
        emit("test al, 3")
        emit("pop rax")                  # pop leaves the flags alone
        emit(f"jnz {trampoline:#x}")
    moves = [(ARG_REGISTERS[i], _LEGACY_ARGS[a]) for i, a in enumerate(o.args)
             if isinstance(a, str) and a != "$orig" and _LEGACY_ARGS[a] != ARG_REGISTERS[i]]
    for _, source in moves:
        emit(f"push {source}")
    for dest, _ in reversed(moves):
        emit(f"pop {dest}")
    for i, a in enumerate(o.args):
        dest = ARG_REGISTERS[i]
        if a == "$orig":
            lea = at + len(out)
            encoding, _ = ks.asm(f"lea {dest}, [rip + 0]", lea)
            disp = trampoline - (lea + len(encoding))
            emit(f"lea {dest}, [rip {'+' if disp >= 0 else '-'} {abs(disp):#x}]")
        elif isinstance(a, int):
            signed = a - (1 << 64) if a >= 1 << 63 else a
            if -(1 << 31) <= signed < 1 << 31:
                emit(f"mov {dest}, {signed}")              # sign-extended imm32
            else:
                emit(f"movabs {dest}, {a % (1 << 64):#x}")
    if o.kind == "aerokernel":
        emit(f"movabs r11, {target:#x}")
        emit("jmp r11")
    else:
        emit(f"jmp {target:#x}")
    return bytes(out)


def _check_decodes(code: bytes, base: int) -> None:
    """Capstone must read back what keystone wrote, instruction by instruction (padding is int3)."""
    decoded = sum(i.size for i in _disassembler.disasm(code, base))
    if decoded != len(code):
        raise Refused(f"the generated override code does not disassemble cleanly at {base + decoded:#x}")


# -- the overrides note ----------------------------------------------------------------------------------
FIELDS = ("function", "address", "moved", "wrapper", "trampoline", "target", "target_address", "args", "when")


def pack_note_desc(applied: list[Applied]) -> bytes:
    """One line per override, tab-separated fields in FIELDS order, numbers in hex."""
    lines = []
    for a in applied:
        values = [getattr(a, f) for f in FIELDS]
        lines.append("\t".join(f"{v:#x}" if isinstance(v, int) else v for v in values))
    return "\n".join(lines).encode()


def unpack_note_desc(desc: bytes) -> list[Applied]:
    applied = []
    try:
        for line in desc.decode().split("\n"):
            values = line.split("\t")
            if len(values) != len(FIELDS):
                raise ValueError(line)
            kw = dict(zip(FIELDS, values))
            for f in ("address", "moved", "wrapper", "trampoline", "target_address"):
                kw[f] = int(kw[f], 16)
            applied.append(Applied(**kw))
    except (UnicodeDecodeError, ValueError):
        raise Refused("a damaged fat binary: its overrides note cannot be read")
    return applied


def describe(applied: list[Applied]) -> list[str]:
    """The `--info` lines."""
    if not applied:
        return ["  overrides           none"]
    lines = [f"  overrides           {len(applied)}: called in HRT context (CPL 0) the wrapper jumps to the "
             f"target, elsewhere the original runs"]
    for a in applied:
        when = "" if a.when == "hrt" else " always (not only in HRT context)"
        lines.append(f"    {a.function} {a.address:#x} -> {a.target} {a.target_address:#x} "
                     f"({a.args.replace(',', ', ')}){when}; wrapper {a.wrapper:#x}, original via "
                     f"{a.trampoline:#x} ({a.moved} bytes moved)")
    return lines
