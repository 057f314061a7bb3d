"""GDB Remote Serial Protocol framing: packets, checksums, escaping, run-length encoding, hex.

This layer knows bytes only, never sockets or the machine (pygdbstub's split): `Decoder` turns a
byte stream from gdb into events and `frame` turns a reply payload into the bytes that go back.

A packet is `$payload#cc` where cc is the modulo-256 sum of the payload bytes in two hex digits.
Inside a payload, binary data (the `X` packet, `qXfer` replies) escapes `#`, `$`, `}` and `*` as
`}` followed by the byte XOR 0x20. A reply may compress runs: `c*N` repeats c (N - 29) more times,
where N is a printable character other than `#` and `$` (so runs of 4 to 97 bytes). Outside packets
the stream carries `+`/`-` acknowledgements (until `QStartNoAckMode`) and the byte 0x03, an
interrupt request (Ctrl-C in gdb).
"""
from __future__ import annotations

from dataclasses import dataclass

INTERRUPT = 0x03
_ESCAPED = frozenset(b"#$}*")
_MAX_PACKET = 1 << 20           # longer garbage is dropped rather than buffered forever


class PacketError(ValueError):
    """A malformed packet argument (the handler replies with an error)."""


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Binary data as it may appear inside a packet."""
    out = bytearray()
    for b in data:
        if b in _ESCAPED:
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The inverse of `escape` (the payload of `X` and `vFile` packets)."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise PacketError("escape character at the end of binary data")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def rle_encode(data: bytes) -> bytes:
    """Run-length encode a reply payload. Runs whose count character would be `#`, `$` (or the
    `+`/`-` that some old stubs avoid) are shortened, as gdbserver does."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        run = 1
        while i + run < n and data[i + run] == b and run < 98:
            run += 1
        if run > 3:
            reps = run - 1                       # repeats after the first byte
            while chr(reps + 29) in "#$+-":
                reps -= 1
            out.append(b)
            out += b"*" + bytes((reps + 29,))
            i += reps + 1
        else:
            out.append(b)
            i += 1
    return bytes(out)


def rle_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x2A:                            # '*'
            if not out or i + 1 >= len(data):
                raise PacketError("run-length marker without a byte to repeat")
            out += bytes((out[-1],)) * (data[i + 1] - 29)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def frame(payload: bytes, rle: bool = False) -> bytes:
    """`$payload#cc`. The payload must already be escaped if it carries binary data."""
    if rle:
        payload = rle_encode(payload)
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def notification(payload: bytes) -> bytes:
    return b"%" + payload + b"#" + b"%02x" % checksum(payload)


# -- the stream from gdb ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Packet:
    payload: bytes


@dataclass(frozen=True)
class BadPacket:
    """A packet whose checksum did not match: answer `-` so that gdb sends it again."""
    raw: bytes


@dataclass(frozen=True)
class Ack:
    ok: bool                        # '+' or '-'


@dataclass(frozen=True)
class Interrupt:
    pass


class Decoder:
    """Feed bytes, get events (Packet, BadPacket, Ack, Interrupt) in order. Bytes outside a packet
    other than +, - and 0x03 are line noise and ignored, as gdbserver does."""

    def __init__(self):
        self._buf = bytearray()
        self._in_packet = False

    def feed(self, data: bytes) -> list:
        events = []
        for b in data:
            if not self._in_packet:
                if b == 0x24:                                       # '$'
                    self._in_packet = True
                    self._buf.clear()
                elif b == 0x2B:
                    events.append(Ack(True))
                elif b == 0x2D:
                    events.append(Ack(False))
                elif b == INTERRUPT:
                    events.append(Interrupt())
                continue
            self._buf.append(b)
            n = len(self._buf)
            # The packet ends two characters after an unescaped '#'. A '#' inside binary data is
            # always escaped, so the first '#' seen is the terminator.
            hash_at = self._buf.find(b"#")
            if hash_at >= 0 and n == hash_at + 3:
                payload = bytes(self._buf[:hash_at])
                cc = bytes(self._buf[hash_at + 1:])
                self._in_packet = False
                try:
                    ok = int(cc, 16) == checksum(payload)
                except ValueError:
                    ok = False
                events.append(Packet(payload) if ok else BadPacket(b"$" + bytes(self._buf)))
            elif n > _MAX_PACKET:
                self._in_packet = False
                events.append(BadPacket(bytes(self._buf[:64])))
        return events


# -- hex helpers used by the command layer ------------------------------------------------------------
def hex_int(text: bytes | str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise PacketError(f"not a hex number: {text!r}")


def to_hex(data: bytes) -> bytes:
    return data.hex().encode()


def from_hex(text: bytes | str) -> bytes:
    try:
        return bytes.fromhex(text.decode() if isinstance(text, bytes) else text)
    except ValueError:
        raise PacketError(f"not hex data: {text[:40]!r}")
