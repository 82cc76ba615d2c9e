"""A gRPC call written as raw HTTP/2 frames, for metadata a real gRPC client refuses to send.

grpc's own client validates header values (no bytes above 0x7e), so a header holding an invalid
UTF-8 byte, as a broken or hostile client may send it, can only be written by hand: the preface,
SETTINGS, one HEADERS frame (HPACK literals without indexing or Huffman coding, RFC 7541 6.2.2)
and one DATA frame carrying the length-prefixed message. The answer is read until the server
ends the stream; only whether and how it ended is reported, the server's log tells the rest.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
STREAM = 1


@dataclass(frozen=True)
class Ending:
    """How the server ended the call's stream: with trailers (a gRPC status), a reset, or GOAWAY."""

    trailers: bool
    reset: bool
    goaway: bool


def _integer(value: int, prefix_bits: int) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541 5.1); the flag bits before it are 0."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    encoded = bytearray([limit])
    value -= limit
    while value >= 0x80:
        encoded.append((value & 0x7F) | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _literal(name: bytes, value: bytes) -> bytes:
    """A header field as a literal without indexing, new name, no Huffman coding."""
    return b"\x00" + _integer(len(name), 7) + name + _integer(len(value), 7) + value


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


async def call(port: int, method: str, message: bytes, metadata: list[tuple[bytes, bytes]]) -> Ending:
    """Calls ``method`` (e.g. "/notify.v1.NotificationService/Send") on 127.0.0.1:``port`` with
    ``metadata`` sent byte for byte, and waits (10 s at most) for the server to end the stream."""
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", method.encode()),
        (b":authority", f"127.0.0.1:{port}".encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *metadata,
    ]
    block = b"".join(_literal(name, value) for name, value in headers)
    body = b"\x00" + struct.pack(">I", len(message)) + message
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            PREFACE
            + _frame(SETTINGS, 0, 0, b"")
            + _frame(HEADERS, END_HEADERS, STREAM, block)
            + _frame(DATA, END_STREAM, STREAM, body)
        )
        await writer.drain()
        return await asyncio.wait_for(_read_ending(reader, writer), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


async def _read_ending(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Ending:
    while True:
        head = await reader.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = await reader.readexactly(length)
        if kind == SETTINGS and not flags & ACK:
            writer.write(_frame(SETTINGS, ACK, 0, b""))
        elif kind == PING and not flags & ACK:
            writer.write(_frame(PING, ACK, 0, payload))
        elif kind == HEADERS and stream == STREAM and flags & END_STREAM:
            return Ending(trailers=True, reset=False, goaway=False)
        elif kind == RST_STREAM and stream == STREAM:
            return Ending(trailers=False, reset=True, goaway=False)
        elif kind == GOAWAY:
            return Ending(trailers=False, reset=False, goaway=True)
