"""Tiny but real media files, so the sandbox's format checks see what a vendor would.

The sandbox tells formats by their leading bytes, as the vendors do; these are whole files all the
same (a decodable PNG, AMR frames, an ISO media box, ...), so no test depends on how little it checks.
"""

from __future__ import annotations

import io
import struct
import wave
import zipfile
import zlib


def png(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny) PNG: red pixels, 8-bit RGB."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(b"\x00\x01" * 400)
    return out.getvalue()


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("release-notes.txt", "notify-gateway 1.0: uploads\n")
    return out.getvalue()


PNG = png()
# SOI, a JFIF APP0 segment, a comment, EOI: what a JPEG reader checks first.
JPEG = (
    b"\xff\xd8"
    + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xfe\x00\x0dnotify-test"
    + b"\xff\xd9"
)
# The AMR magic, then five AMR-NB 12.2 kbit/s frames (header 0x3c, 31 bytes of speech bits).
AMR = b"#!AMR\n" + (b"\x3c" + bytes(range(31))) * 5
# An ISO media file: an ftyp box (size, "ftyp", brand, version, compatible brands), then mdat.
MP4 = (
    struct.pack(">I", 24)
    + b"ftypisom"
    + b"\x00\x00\x02\x00"
    + b"isomiso2"
    + struct.pack(">I", 16)
    + b"mdat"
    + bytes(8)
)
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
WAV = wav()
ZIP = zip_file()
