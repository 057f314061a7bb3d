"""The GDB remote protocol layer without sockets or a machine (hvm/gdbstub/packets.py, protocol.py,
regs.py): framing, checksums, escaping, run-length encoding, the decoder on a byte stream, argument
parsing, and a whole session against a fake target, checking every reply byte for byte."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from hvm.gdbstub import packets, protocol, regs
from hvm.gdbstub.interface import ResumeAction, StopEvent, TargetError
from hvm.gdbstub.packets import (Ack, BadPacket, Decoder, Interrupt, Packet, PacketError, checksum, escape, frame,
                                 rle_decode, rle_encode, unescape)


# -- framing --------------------------------------------------------------------------------------
def test_checksum_and_frame():
    assert checksum(b"") == 0
    assert checksum(b"OK") == (ord("O") + ord("K")) & 0xFF == 0x9A
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"") == b"$#00"
    assert checksum(bytes([0xFF, 0x02])) == 0x01                    # modulo 256


def test_escape_round_trip_all_bytes():
    data = bytes(range(256)) * 2
    esc = escape(data)
    assert b"#" not in esc and b"$" not in esc and b"*" not in esc
    assert unescape(esc) == data
    assert escape(b"a#b") == b"a}\x03b"                                # '#' ^ 0x20 == 0x03
    assert escape(b"}") == b"}]"


def test_unescape_rejects_a_dangling_escape():
    with pytest.raises(PacketError):
        unescape(b"abc}")


@pytest.mark.parametrize("data", [b"", b"a", b"aaa", b"aaaa", b"0" * 7, b"0" * 8, b"x" * 200,
                                  b"ab" + b"0" * 40 + b"cd", bytes(range(32)) * 3])
def test_rle_round_trip(data):
    enc = rle_encode(data)
    assert rle_decode(enc) == data
    assert len(enc) <= len(data)
    # A count character is never one that would end or start a packet.
    for i in range(len(enc) - 1):
        if enc[i] == ord("*"):
            assert enc[i + 1] not in b"#$+-"


def test_rle_avoids_hash_and_dollar_counts():
    assert rle_encode(b"x" * 7) == b'x*"x'                             # 6 repeats would be '#'
    assert rle_encode(b"0" * 4) == b"0* "


# -- the decoder ------------------------------------------------------------------------------------
def test_decoder_events_in_order_across_split_feeds():
    d = Decoder()
    stream = b"+junk\x03" + frame(b"g") + b"-" + frame(b"m10,4")
    events = d.feed(stream[:9]) + d.feed(stream[9:14]) + d.feed(stream[14:])
    assert events == [Ack(True), Interrupt(), Packet(b"g"), Ack(False), Packet(b"m10,4")]


def test_decoder_bad_checksum_and_garbage_checksum():
    d = Decoder()
    assert d.feed(b"$g#00") == [BadPacket(b"$g#00")]
    assert d.feed(b"$g#zz") == [BadPacket(b"$g#zz")]
    assert d.feed(b"$g#67") == [Packet(b"g")]                         # and it recovers


def test_decoder_binary_payload_with_escapes():
    payload = b"X10,3:" + escape(b"#$}")
    d = Decoder()
    [p] = d.feed(frame(payload))
    assert p == Packet(payload)
    assert protocol.parse_args("L,L:B", p.payload[1:]) == [0x10, 3, b"#$}"]


# -- argument schemas ------------------------------------------------------------------------------
def test_parse_args():
    assert protocol.parse_args("L,L", b"401000,40") == [0x401000, 0x40]
    assert protocol.parse_args("L=H", b"10=0102") == [0x10, b"\x01\x02"]
    assert protocol.parse_args("T", b"p3e8.3e9") == [0x3E9]
    assert protocol.parse_args("T", b"-1") == [-1]
    assert protocol.parse_args("T", b"p3e8.-1") == [-1]
    for schema, bad in (("L,L", b"401000"), ("L,L", b"40zz,4"), ("L,L", b"1,2,3"), ("L", b""), ("H", b"abc")):
        with pytest.raises(PacketError):
            protocol.parse_args(schema, bad)


def test_signal_numbers_are_translated():
    assert protocol.gdb_signal(11) == 11                              # SIGSEGV
    assert protocol.gdb_signal(7) == 10                               # Linux SIGBUS is gdb's 10
    assert protocol.gdb_signal(10) == 30                              # SIGUSR1
    assert protocol.gdb_signal(17) == 20                              # SIGCHLD
    assert protocol.gdb_signal(34) == 46                              # SIGRTMIN+0 in glibc numbering
    for linux in range(1, 65):
        g = protocol.gdb_signal(linux)
        if g != protocol.GDB_SIGNAL_UNKNOWN:
            assert protocol.linux_signal(g) == linux


# -- registers and the target description ------------------------------------------------------------
def test_target_xml_describes_every_register_in_order():
    root = ET.fromstring(regs.target_xml())
    assert root.findtext("architecture") == "i386:x86-64"
    features = {f.get("name"): f for f in root.iter("feature")}
    for needed in ("org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.linux",
                   "org.gnu.gdb.i386.segments", "org.mvemu.x86.sys"):
        assert needed in features
    described = [(r.get("name"), int(r.get("regnum")), int(r.get("bitsize"))) for r in root.iter("reg")]
    assert described == [(r.name, i, r.bits) for i, r in enumerate(regs.REGISTERS)]
    sys_regs = [r.get("name") for r in features["org.mvemu.x86.sys"].iter("reg")]
    assert sys_regs == ["cr0", "cr2", "cr3", "cr4", "efer", "cpl"]
    assert [r.get("name") for r in features["org.gnu.gdb.i386.segments"].iter("reg")] == ["fs_base", "gs_base"]
    # every type a register names is a built-in or defined in the document
    defined = {e.get("id") for tag in ("flags", "vector", "union") for e in root.iter(tag)}
    builtin = {"int", "int32", "int64", "data_ptr", "code_ptr", "i387_ext"}
    assert {r.get("type") for r in root.iter("reg")} <= defined | builtin
    cr0 = next(f for f in root.iter("flags") if f.get("id") == "mvemu_cr0")
    assert {f.get("name"): int(f.get("start")) for f in cr0}["WP"] == 16


def test_register_encoding():
    rax = regs.REGISTERS[regs.NUMBER["rax"]]
    assert regs.encode(rax, 0x1122334455667788) == bytes.fromhex("8877665544332211")
    assert regs.decode(rax, bytes.fromhex("8877665544332211")) == 0x1122334455667788
    st0 = regs.REGISTERS[regs.NUMBER["st0"]]
    assert regs.encode(st0, b"\x01" * 10) == b"\x01" * 10
    eflags = regs.REGISTERS[regs.NUMBER["eflags"]]
    assert regs.encode(eflags, 0x246) == b"\x46\x02\x00\x00"


# -- a session against a fake target ---------------------------------------------------------------
class FakeTarget:
    """Two threads (0x3e8 stopped, 0x3e9), 64 bytes of memory at 0x1000, a register file per thread."""

    def __init__(self):
        self.mem = bytearray(range(64))
        self.regs = {0x3E8: [0] * len(regs.REGISTERS), 0x3E9: [0] * len(regs.REGISTERS)}
        for tid, values in self.regs.items():
            for i, r in enumerate(regs.REGISTERS):
                values[i] = bytes(10) if r.type == "i387_ext" else 0
            values[regs.NUMBER["rip"]] = 0x401000 + tid
            values[regs.NUMBER["cs"]] = 0x33
        self.calls = []
        self.resumed = None

    def threads(self):
        return [0x3E8, 0x3E9]

    def thread_alive(self, tid):
        return tid in self.regs

    def thread_extra_info(self, tid):
        return f"ROS pid 1000 tid {tid}, ring 3"

    def stopped_thread(self):
        return 0x3E8

    def read_registers(self, tid):
        return list(self.regs[tid])

    def write_register(self, tid, number, value):
        self.regs[tid][number] = value

    def read_memory(self, tid, addr, length):
        lo = addr - 0x1000
        if not 0 <= lo < len(self.mem):
            return b""
        return bytes(self.mem[lo:lo + length])

    def write_memory(self, tid, addr, data):
        lo = addr - 0x1000
        if not 0 <= lo <= len(self.mem) - len(data):
            raise TargetError("outside", 14)
        self.mem[lo:lo + len(data)] = data

    def insert_breakpoint(self, tid, kind, addr, length):
        self.calls.append(("Z", tid, kind, addr, length))
        return kind <= 4

    def remove_breakpoint(self, tid, kind, addr, length):
        self.calls.append(("z", tid, kind, addr, length))
        return kind <= 4

    def resume(self, actions):
        self.resumed = actions

    def kill(self):
        self.calls.append(("kill",))

    def detach(self):
        self.calls.append(("detach",))

    def exec_file(self, pid):
        return "/guest/prog"

    def auxv(self, tid):
        return b"\x09\0\0\0\0\0\0\0\x00\x10\x40\0\0\0\0\0" + bytes(16)

    def signal_info(self, tid):
        return None

    def monitor(self, tid, command):
        return f"monitor {command!r} for thread {tid}"


@pytest.fixture
def session():
    sent = []
    s = protocol.Session(FakeTarget(), sent.append)
    s.sent = sent
    return s


def ask(session, payload: bytes) -> bytes | None:
    return session.dispatch(payload)


def test_qsupported_and_features(session):
    reply = ask(session, b"qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386")
    features = dict(f.split("=", 1) if "=" in f else (f[:-1], f[-1]) for f in reply.decode().split(";"))
    assert int(features["PacketSize"], 16) == protocol.PACKET_SIZE
    for name in ("qXfer:features:read", "qXfer:exec-file:read", "swbreak", "hwbreak", "QStartNoAckMode"):
        assert features[name] == "+"
    assert "multiprocess" not in features            # one gdb process: plain thread ids


def test_target_xml_in_chunks(session):
    xml, offset = b"", 0
    while True:
        reply = ask(session, b"qXfer:features:read:target.xml:%x,%x" % (offset, 0x200))
        assert reply[:1] in (b"m", b"l")
        chunk = packets.unescape(reply[1:])
        xml += chunk
        offset += len(chunk)
        if reply[:1] == b"l":
            break
    assert xml == regs.target_xml()
    assert ask(session, b"qXfer:features:read:other.xml:0,100") == b"E02"


def test_stop_reason_and_threads(session):
    assert ask(session, b"?") == b"T05thread:3e8;"
    assert ask(session, b"qfThreadInfo") == b"m3e8,3e9"
    assert ask(session, b"qsThreadInfo") == b"l"
    assert ask(session, b"qC") == b"QC3e8"
    assert ask(session, b"qAttached") == b"0"
    assert ask(session, b"qAttached:3e8") == b"0"
    assert bytes.fromhex(ask(session, b"qThreadExtraInfo,3e9").decode()) == b"ROS pid 1000 tid 1001, ring 3"
    assert ask(session, b"T3e9") == b"OK"
    assert ask(session, b"T3ea") == b"E03"
    assert ask(session, b"qXfer:exec-file:read::0,100") == b"l/guest/prog"
    assert ask(session, b"qXfer:exec-file:read:3e8:0,4") == b"m/gue"
    assert ask(session, b"qXfer:exec-file:read:3e8:4,100") == b"lst/prog"


def test_registers_g_p_and_thread_selection(session):
    g = ask(session, b"g")
    assert len(g) == 2 * regs.G_PACKET_SIZE
    rip_off = sum(r.size for r in regs.REGISTERS[:regs.NUMBER["rip"]])
    assert g[2 * rip_off:2 * rip_off + 16] == (0x401000 + 0x3E8).to_bytes(8, "little").hex().encode()
    assert ask(session, b"Hg3e9") == b"OK"
    assert ask(session, b"p%x" % regs.NUMBER["rip"]) == (0x401000 + 0x3E9).to_bytes(8, "little").hex().encode()
    assert ask(session, b"Hgp3e8.3e8") == b"OK"                               # multiprocess syntax
    assert ask(session, b"P0=efbeadde00000000") == b"OK"
    assert session.target.regs[0x3E8][0] == 0xDEADBEEF
    assert ask(session, b"P%x=03000000" % regs.NUMBER["cpl"]) == b"E01"       # read-only
    assert ask(session, b"P0=0102") == b"E16"                                 # wrong size
    assert ask(session, b"p%x" % len(regs.REGISTERS)) == b"E16"               # no such register
    assert ask(session, b"Hg3ff") == b"E03"
    assert ask(session, b"Hc-1") == b"OK"


def test_G_writes_every_writable_register(session):
    blob = b"".join(regs.encode(r, b"\x07" * 10 if r.type == "i387_ext" else i) for i, r in enumerate(regs.REGISTERS))
    assert ask(session, b"G" + blob.hex().encode()) == b"OK"
    values = session.target.regs[0x3E8]
    assert values[regs.NUMBER["rbx"]] == 1 and values[regs.NUMBER["st0"]] == b"\x07" * 10
    assert values[regs.NUMBER["cpl"]] == 0                                      # read-only: unchanged


def test_memory_m_M_X(session):
    assert ask(session, b"m1000,4") == b"00010203"
    assert ask(session, b"m103e,8") == b"3e3f"                                   # short read at the end
    assert ask(session, b"m2000,4") == b"E0e"                                    # nothing readable
    assert ask(session, b"M1000,2:aabb") == b"OK"
    assert session.target.mem[:2] == b"\xaa\xbb"
    binary = bytes([0x23, 0x24, 0x7D, 0x2A, 0x00])
    assert ask(session, b"X1004,5:" + escape(binary)) == b"OK"
    assert session.target.mem[4:9] == binary
    assert ask(session, b"X1000,0:") == b"OK"                                     # gdb's probe for X
    assert ask(session, b"M3000,1:00") == b"E0e"
    assert ask(session, b"M1000,3:aabb") == b"E16"                                # length mismatch


def test_malformed_packets_get_errors_unknown_ones_the_empty_reply(session):
    for bad in (b"m", b"mzz,4", b"m10", b"Z0,10", b"M10,1", b"p", b"Hx1"):
        reply = ask(session, bad)
        assert reply.startswith(b"E"), (bad, reply)
    for unknown in (b"qTStatus", b"vMustReplyEmpty", b"qCRC:10,4", b"!", b"vFile:open:2f,0,0", b"QNonStop:1"):
        assert ask(session, unknown) == b"", unknown


def test_breakpoint_packets_reach_the_target(session):
    assert ask(session, b"Z0,401000,1") == b"OK"
    assert ask(session, b"Z1,401000,1") == b"OK"
    assert ask(session, b"Z2,4a62d0,4") == b"OK"
    assert ask(session, b"z0,401000,1") == b"OK"
    assert ask(session, b"Z9,0,1") == b""                                         # unsupported kind
    assert session.target.calls[:4] == [("Z", 0x3E8, 0, 0x401000, 1), ("Z", 0x3E8, 1, 0x401000, 1),
                                        ("Z", 0x3E8, 2, 0x4A62D0, 4), ("z", 0x3E8, 0, 0x401000, 1)]


def test_vcont_and_legacy_resume(session):
    assert ask(session, b"vCont?") == b"vCont;c;C;s;S;r"
    assert ask(session, b"vCont;s:3e9;c") is None
    assert session.running
    assert session.target.resumed == [ResumeAction("s", 0x3E9), ResumeAction("c")]
    assert ask(session, b"vCont;r401000,401010:p3e8.3e8;C0b:3e9;c") is None
    assert session.target.resumed == [ResumeAction("r", 0x3E8, 0, 0x401000, 0x401010),
                                      ResumeAction("c", 0x3E9, 11), ResumeAction("c")]
    assert ask(session, b"vCont;C0a") is None                                     # gdb SIGBUS 10 -> Linux 7
    assert session.target.resumed == [ResumeAction("c", None, 7)]
    assert ask(session, b"c") is None
    assert session.target.resumed == [ResumeAction("c", 0x3E8), ResumeAction("c")]
    assert ask(session, b"s") is None
    assert session.target.resumed[0] == ResumeAction("s", 0x3E8)
    assert ask(session, b"vCont;x") == b"E16"
    assert ask(session, b"vCont;") == b"E16"


def test_stop_replies(session):
    assert session.stop_reply(StopEvent(0x3E9, 5, "swbreak")) == b"T05thread:3e9;swbreak:;"
    assert session.general_thread == 0x3E9                                        # follows the stop
    assert session.stop_reply(StopEvent(0x3E8, 5, "hwbreak")) == b"T05thread:3e8;hwbreak:;"
    assert session.stop_reply(StopEvent(0x3E8, 5, "watch", 0x4A62D0)) == b"T05thread:3e8;watch:4a62d0;"
    assert session.stop_reply(StopEvent(0x3E8, 5, "awatch", 0x10)) == b"T05thread:3e8;awatch:10;"
    assert session.stop_reply(StopEvent(0x3E8, 11)) == b"T0bthread:3e8;"
    assert session.stop_reply(StopEvent(0x3E8, 7)) == b"T0athread:3e8;"          # SIGBUS
    assert session.stop_reply(StopEvent(0x3E8, 2)) == b"T02thread:3e8;"
    assert session.stop_reply(StopEvent(exit_code=36)) == b"W24"
    assert session.stop_reply(StopEvent(exit_code=0)) == b"W00"
    assert session.stop_reply(StopEvent(killed_by=11)) == b"X0b"
    assert ask(session, b"?") == b"X0b"                                           # remembered


def test_kill_detach_and_monitor(session):
    assert ask(session, b"qRcmd," + b"pt 0x1000".hex().encode()) == \
        "monitor 'pt 0x1000' for thread 1000\n".encode().hex().encode()
    assert ask(session, b"D") == b"OK" and session.finished == "detached"
    session.finished = ""
    assert ask(session, b"k") is None and session.finished == "killed"
    assert ask(session, b"vKill;3e8") == b"OK"
    assert ("detach",) in session.target.calls and ("kill",) in session.target.calls


def test_receive_acks_no_ack_mode_and_bad_packets(session):
    session.receive(Packet(b"qC"))
    assert session.sent == [b"+", frame(b"QC3e8")]
    session.receive(BadPacket(b"$g#00"))
    assert session.sent[-1] == b"-"
    session.receive(Packet(b"QStartNoAckMode"))
    assert session.sent[-2:] == [b"+", frame(b"OK")]                              # acked, then no more acks
    session.sent.clear()
    session.receive(Packet(b"qC"))
    session.receive(BadPacket(b"$g#00"))
    session.receive(Ack(True))
    session.receive(Interrupt())
    assert session.sent == [frame(b"QC3e8")]


def test_auxv_and_missing_siginfo(session):
    reply = ask(session, b"qXfer:auxv:read::0,1000")
    assert reply[:1] == b"l" and packets.unescape(reply[1:])[:2] == b"\x09\x00"
    assert ask(session, b"qXfer:siginfo:read::0,80") == b"E02"


def test_every_command_is_reachable():
    """No table entry hides behind another one (the lookup takes the longest matching name)."""
    for cmd in protocol.COMMANDS:
        assert cmd in protocol._lookup(cmd.name.encode())
        assert protocol._lookup(cmd.name.encode())[0].name == cmd.name
