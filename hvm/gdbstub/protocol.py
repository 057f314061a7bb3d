"""The GDB Remote Serial Protocol: one session with gdb, packets dispatched from a table.

As in QEMU's gdbstub, every packet is looked up in a table of (name, argument schema, handler):
the schema parses the arguments (`L` a hex number, `T` a thread id, `H` hex bytes, `B` escaped binary
data, `S` the rest as text, anything else a literal separator), and the handler gets them as a list.
A handler returns the reply payload (bytes), or None when there is no reply now (the machine
resumes and the reply is the stop packet sent later by `stop_reply`).

The session knows nothing of sockets or of the machine: it talks to a `Target` (interface.py) and
hands reply packets to a `send(bytes)` callable, which is how the protocol is tested without sockets.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Callable

from . import packets, regs
from .interface import ResumeAction, StopEvent, Target, TargetError
from .packets import PacketError, from_hex, hex_int, to_hex

PACKET_SIZE = 0x4000

# Linux signal numbers -> gdb's own numbering (gdb/include/gdb/signals.def), and back.
_LINUX_TO_GDB = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 10, 8: 8, 9: 9, 10: 30, 11: 11, 12: 31, 13: 13,
                 14: 14, 15: 15, 17: 20, 18: 19, 19: 17, 20: 18, 21: 21, 22: 22, 23: 16, 24: 24, 25: 25,
                 26: 26, 27: 27, 28: 28, 29: 23, 30: 32, 31: 12, 32: 77, 64: 78}
_LINUX_TO_GDB.update({n: 45 + n - 33 for n in range(33, 64)})
_GDB_TO_LINUX = {g: s for s, g in _LINUX_TO_GDB.items()}
GDB_SIGNAL_UNKNOWN = 143


def gdb_signal(linux: int) -> int:
    return 0 if linux == 0 else _LINUX_TO_GDB.get(linux, GDB_SIGNAL_UNKNOWN)


def linux_signal(gdb: int) -> int:
    return 0 if gdb == 0 else _GDB_TO_LINUX.get(gdb, 0)


# -- argument schemas ----------------------------------------------------------------------------------
ALL_THREADS, ANY_THREAD = -1, 0


def parse_thread_id(text: bytes) -> int:
    """`tid`, `-1` (all), `0` (any), or the multiprocess form `p<pid>.<tid>` (the pid is ignored: the
    whole machine is one gdb process)."""
    if text.startswith(b"p"):
        _, _, text = text[1:].partition(b".")
        if not text:
            return ALL_THREADS
    if text == b"-1":
        return ALL_THREADS
    return hex_int(text)


def parse_args(schema: str, data: bytes) -> list:
    """Parse `data` by `schema` (see the module docstring)."""
    out, pos = [], 0
    for i, ch in enumerate(schema):
        if ch in "LTH":
            end = len(data)
            if i + 1 < len(schema) and schema[i + 1] not in "LTHBS":
                sep = schema[i + 1].encode()
                j = data.find(sep, pos)
                end = j if j >= 0 else len(data)
            field_ = data[pos:end]
            if not field_:
                raise PacketError(f"missing argument {i} in {data!r}")
            out.append(hex_int(field_) if ch == "L" else parse_thread_id(field_) if ch == "T"
                       else from_hex(field_))
            pos = end
        elif ch == "B":
            out.append(packets.unescape(data[pos:]))
            pos = len(data)
        elif ch == "S":
            out.append(data[pos:].decode("latin-1"))
            pos = len(data)
        else:
            if data[pos:pos + 1] != ch.encode():
                raise PacketError(f"expected {ch!r} at {pos} in {data!r}")
            pos += 1
    if pos != len(data):
        raise PacketError(f"trailing bytes in {data!r}")
    return out


@dataclass(frozen=True)
class Command:
    name: str                     # the packet starts with this
    schema: str
    handler: Callable             # handler(session, args) -> bytes | None


OK = b"OK"


def error(code: int = _errno.EINVAL) -> bytes:
    return b"E%02x" % (code & 0xFF)


@dataclass
class Session:
    target: Target
    send: Callable[[bytes], None]           # one framed packet (or ack) to gdb
    no_ack: bool = False
    general_thread: int = ANY_THREAD        # Hg: registers and memory
    continue_thread: int = ALL_THREADS      # Hc: legacy c/s
    last_stop: StopEvent | None = None
    running: bool = False                   # a resume is under way: gdb awaits a stop reply
    finished: str = ""                      # "detached", "killed" once gdb is done with the target
    _thread_iter: list = field(default_factory=list)

    # -- transport side ---------------------------------------------------------------------------
    def receive(self, event) -> None:
        """One event from packets.Decoder."""
        if isinstance(event, packets.BadPacket):
            if not self.no_ack:
                self.send(b"-")
            return
        if not isinstance(event, packets.Packet):
            return                                           # acks (we never resend) and interrupts
        if not self.no_ack:
            self.send(b"+")
        reply = self.dispatch(event.payload)
        if reply is not None:
            self.send(packets.frame(reply))

    def dispatch(self, payload: bytes) -> bytes | None:
        """The reply to one packet (None: no reply now)."""
        for cmd in _lookup(payload):
            try:
                args = parse_args(cmd.schema, payload[len(cmd.name):])
            except PacketError:
                continue                                      # maybe a longer name matches
            try:
                return cmd.handler(self, args)
            except PacketError:
                return error(_errno.EINVAL)
            except TargetError as e:
                return error(e.errno)
        if payload[:1] in (b"m", b"M", b"X", b"Z", b"z", b"p", b"P", b"H", b"T", b"G"):
            return error(_errno.EINVAL)                       # a known packet with bad arguments
        return b""                                            # unsupported: the empty reply

    def stop_reply(self, event: StopEvent) -> bytes:
        """Record a stop and return its packet payload (the caller frames and sends it)."""
        self.last_stop = event
        self.running = False
        if event.thread:
            self.general_thread = event.thread
        return _stop_payload(event)

    def report_stop(self, event: StopEvent) -> None:
        self.send(packets.frame(self.stop_reply(event)))

    # -- helpers ----------------------------------------------------------------------------------
    def thread(self, tid: int) -> int:
        """A concrete thread for a register or memory access (0 and -1 mean the stopped one)."""
        if tid in (ANY_THREAD, ALL_THREADS):
            return self.target.stopped_thread()
        if not self.target.thread_alive(tid):
            raise TargetError(f"no thread {tid}", _errno.ESRCH)
        return tid

    def resume(self, actions: list[ResumeAction]) -> None:
        self.target.resume(actions)
        self.running = True


def _stop_payload(event: StopEvent) -> bytes:
    if event.exit_code is not None:
        return b"W%02x" % (event.exit_code & 0xFF)
    if event.killed_by is not None:
        return b"X%02x" % gdb_signal(event.killed_by)
    out = b"T%02xthread:%x;" % (gdb_signal(event.signal), event.thread)
    if event.reason in ("swbreak", "hwbreak"):
        out += event.reason.encode() + b":;"
    elif event.reason:
        out += b"%s:%x;" % (event.reason.encode(), event.address)
    return out


# -- handlers ---------------------------------------------------------------------------------------
def _h_stop_reason(s: Session, _args) -> bytes:
    if s.last_stop is None:
        return b"T05thread:%x;" % s.target.stopped_thread()
    return _stop_payload(s.last_stop)


def _h_read_registers(s: Session, _args) -> bytes:
    values = s.target.read_registers(s.thread(s.general_thread))
    return b"".join(b"xx" * r.size if v is None else to_hex(regs.encode(r, v))
                    for r, v in zip(regs.REGISTERS, values))


def _h_write_registers(s: Session, args) -> bytes:
    data = args[0]
    tid = s.thread(s.general_thread)
    pos = 0
    for num, r in enumerate(regs.REGISTERS):
        chunk = data[pos:pos + r.size]
        pos += r.size
        if len(chunk) < r.size:
            break
        if not r.readonly:
            s.target.write_register(tid, num, regs.decode(r, chunk))
    return OK


def _h_read_register(s: Session, args) -> bytes:
    num = args[0]
    if num >= len(regs.REGISTERS):
        return error(_errno.EINVAL)
    r = regs.REGISTERS[num]
    value = s.target.read_registers(s.thread(s.general_thread))[num]
    return b"xx" * r.size if value is None else to_hex(regs.encode(r, value))


def _h_write_register(s: Session, args) -> bytes:
    num, data = args
    if num >= len(regs.REGISTERS) or len(data) != regs.REGISTERS[num].size:
        return error(_errno.EINVAL)
    r = regs.REGISTERS[num]
    if r.readonly:
        return error(_errno.EPERM)
    s.target.write_register(s.thread(s.general_thread), num, regs.decode(r, data))
    return OK


def _h_read_memory(s: Session, args) -> bytes:
    addr, length = args
    data = s.target.read_memory(s.thread(s.general_thread), addr, min(length, PACKET_SIZE // 2 - 8))
    return to_hex(data) if data or not length else error(_errno.EFAULT)


def _h_write_memory(s: Session, args) -> bytes:
    addr, length, data = args
    if len(data) != length:
        return error(_errno.EINVAL)
    if length:
        s.target.write_memory(s.thread(s.general_thread), addr, data)
    return OK


def _h_set_thread(s: Session, args) -> bytes:
    op, tid = args[0]
    if tid not in (ANY_THREAD, ALL_THREADS) and not s.target.thread_alive(tid):
        return error(_errno.ESRCH)
    if op == "g":
        s.general_thread = tid
    elif op == "c":
        s.continue_thread = tid
    else:
        return error(_errno.EINVAL)
    return OK


def _h_thread_alive(s: Session, args) -> bytes:
    return OK if s.target.thread_alive(args[0]) else error(_errno.ESRCH)


def _h_breakpoint(insert: bool):
    def handler(s: Session, args) -> bytes:
        kind, addr, length = args
        tid = s.thread(s.general_thread) if s.general_thread not in (ANY_THREAD, ALL_THREADS) \
            else s.target.stopped_thread()
        fn = s.target.insert_breakpoint if insert else s.target.remove_breakpoint
        return OK if fn(tid, kind, addr, length) else b""
    return handler


def _legacy_resume(kind: str):
    """c [addr], s [addr], C sig[;addr], S sig[;addr]."""
    def handler(s: Session, args) -> bytes | None:
        text = args[0]
        sig = 0
        if kind in "CS":
            sig_text, _, text = text.partition(";")
            sig = linux_signal(hex_int(sig_text))
        tid = s.continue_thread if s.continue_thread not in (ANY_THREAD, ALL_THREADS) \
            else s.target.stopped_thread()
        if text:
            s.target.write_register(tid, regs.NUMBER["rip"], hex_int(text))
        if kind in "sS":
            s.resume([ResumeAction("s", tid, sig), ResumeAction("c")])
        else:
            s.resume([ResumeAction("c", tid, sig), ResumeAction("c")])
        return None
    return handler


def _h_vcont_query(_s: Session, _args) -> bytes:
    return b"vCont;c;C;s;S;r"


def _h_vcont(s: Session, args) -> bytes | None:
    actions = []
    for part in args[0].split(";"):
        if not part:
            continue
        action, _, thread = part.partition(":")
        tid = parse_thread_id(thread.encode()) if thread else None
        if tid in (ALL_THREADS, ANY_THREAD):
            tid = None
        kind = action[0]
        if kind in "cs":
            actions.append(ResumeAction(kind, tid))
        elif kind in "CS":
            actions.append(ResumeAction(kind.lower(), tid, linux_signal(hex_int(action[1:]))))
        elif kind == "r":
            start, _, end = action[1:].partition(",")
            actions.append(ResumeAction("r", tid, 0, hex_int(start), hex_int(end)))
        elif kind == "t":
            continue                                          # stop requests: all-stop already
        else:
            return error(_errno.EINVAL)
    if not actions:
        return error(_errno.EINVAL)
    s.resume(actions)
    return None


def _h_detach(s: Session, _args) -> bytes:
    s.target.detach()
    s.finished = "detached"
    return OK


def _h_kill(s: Session, _args) -> bytes | None:
    s.target.kill()
    s.finished = "killed"
    return None                                               # `k` has no reply


def _h_vkill(s: Session, _args) -> bytes:
    s.target.kill()
    s.finished = "killed"
    return OK


def _h_supported(_s: Session, _args) -> bytes:
    return (b"PacketSize=%x;qXfer:features:read+;qXfer:exec-file:read+;qXfer:auxv:read+;"
            b"qXfer:siginfo:read+;swbreak+;hwbreak+;QStartNoAckMode+;vContSupported+" % PACKET_SIZE)


def _h_no_ack(s: Session, _args) -> bytes:
    s.no_ack = True
    return OK


def _h_current_thread(s: Session, _args) -> bytes:
    return b"QC%x" % s.target.stopped_thread()


def _h_first_thread(s: Session, _args) -> bytes:
    s._thread_iter = list(s.target.threads())
    return _h_next_thread(s, _args)


def _h_next_thread(s: Session, _args) -> bytes:
    if not s._thread_iter:
        return b"l"
    batch, s._thread_iter = s._thread_iter[:64], s._thread_iter[64:]
    return b"m" + b",".join(b"%x" % t for t in batch)


def _h_extra_info(s: Session, args) -> bytes:
    return to_hex(s.target.thread_extra_info(args[0]).encode())


def _xfer(data: bytes, offset: int, length: int) -> bytes:
    chunk = data[offset:offset + length]
    return (b"l" if offset + length >= len(data) else b"m") + packets.escape(chunk)


def _h_xfer_features(s: Session, args) -> bytes:
    annex, offset, length = args
    if annex != "target.xml":
        return error(_errno.ENOENT)
    return _xfer(regs.target_xml(), offset, length)


def _h_xfer_exec_file(s: Session, args) -> bytes:
    annex, offset, length = args
    pid = hex_int(annex) if annex else None
    return _xfer(s.target.exec_file(pid).encode(), offset, length)


def _xfer_of_thread(s: Session, args, read) -> bytes:
    """A qXfer object of the general thread, `read(thread)` (None: it has none)."""
    _annex, offset, length = args
    data = read(s.thread(s.general_thread))
    if data is None:
        return error(_errno.ENOENT)
    return _xfer(data, offset, length)


def _h_xfer_auxv(s: Session, args) -> bytes:
    return _xfer_of_thread(s, args, s.target.auxv)


def _h_xfer_siginfo(s: Session, args) -> bytes:
    return _xfer_of_thread(s, args, s.target.signal_info)


def _h_attached(_s: Session, _args) -> bytes:
    return b"0"                   # mvemu started the program: quitting gdb kills it, as with gdbserver


def _h_monitor(s: Session, args) -> bytes:
    tid = s.general_thread if s.general_thread not in (ANY_THREAD, ALL_THREADS) else s.target.stopped_thread()
    output = s.target.monitor(tid, args[0].decode(errors="replace").strip())
    if output and not output.endswith("\n"):
        output += "\n"
    return to_hex(output.encode()) if output else OK


def _h_symbol(_s: Session, _args) -> bytes:
    return OK                     # no symbol lookups needed


def _h_empty(_s: Session, _args) -> bytes:
    return b""


def _xfer_command(name: str, handler) -> Command:
    """qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH: the annex is text up to the last ':'."""
    def parse(s: Session, args) -> bytes:
        annex, _, rest = args[0].rpartition(":")
        offset, _, length = rest.partition(",")
        return handler(s, [annex, hex_int(offset), hex_int(length)])
    return Command(name, "S", parse)


def _h_set_thread_packet(s: Session, args) -> bytes:
    text = args[0]
    return _h_set_thread(s, [(text[:1], parse_thread_id(text[1:].encode()))])


# A packet goes to the entry with the longest name it starts with whose schema parses it.
COMMANDS: tuple[Command, ...] = (
    Command("?", "", _h_stop_reason),
    Command("g", "", _h_read_registers),
    Command("G", "H", _h_write_registers),
    Command("p", "L", _h_read_register),
    Command("P", "L=H", _h_write_register),
    Command("m", "L,L", _h_read_memory),
    Command("M", "L,L:H", _h_write_memory),
    Command("M", "L,L:", lambda s, a: _h_write_memory(s, a + [b""])),
    Command("X", "L,L:B", _h_write_memory),
    Command("H", "S", _h_set_thread_packet),
    Command("T", "T", _h_thread_alive),
    Command("Z", "L,L,L", _h_breakpoint(True)),
    Command("z", "L,L,L", _h_breakpoint(False)),
    Command("c", "S", _legacy_resume("c")),
    Command("s", "S", _legacy_resume("s")),
    Command("C", "S", _legacy_resume("C")),
    Command("S", "S", _legacy_resume("S")),
    Command("vCont?", "", _h_vcont_query),
    Command("vCont;", "S", _h_vcont),
    Command("vKill", "S", _h_vkill),
    Command("vMustReplyEmpty", "", _h_empty),
    Command("D", "S", _h_detach),
    Command("k", "", _h_kill),
    Command("qSupported", "S", _h_supported),
    Command("QStartNoAckMode", "", _h_no_ack),
    Command("qC", "", _h_current_thread),
    Command("qfThreadInfo", "", _h_first_thread),
    Command("qsThreadInfo", "", _h_next_thread),
    Command("qThreadExtraInfo,", "T", _h_extra_info),
    _xfer_command("qXfer:features:read:", _h_xfer_features),
    _xfer_command("qXfer:exec-file:read:", _h_xfer_exec_file),
    _xfer_command("qXfer:auxv:read:", _h_xfer_auxv),
    _xfer_command("qXfer:siginfo:read:", _h_xfer_siginfo),
    Command("qAttached", "S", _h_attached),
    Command("qRcmd,", "H", _h_monitor),
    Command("qSymbol:", "S", _h_symbol),
)


def _lookup(payload: bytes) -> list[Command]:
    """The commands whose name starts the packet, longest name first."""
    text = payload.decode("latin-1")
    found = [c for c in COMMANDS if text.startswith(c.name)]
    return sorted(found, key=lambda c: -len(c.name))
