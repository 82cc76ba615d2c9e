"""What each vendor's media upload accepts per type: a size limit and a format check.

Formats are told by content (magic bytes), as the vendors do, except DingTalk files, which the
vendor lists by extension (docs/vendors.md, DingTalk work notifications). Declared as data, one
table per upload endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

MB: Final = 1024 * 1024
MIN_BYTES: Final = 5
"""docs/vendors.md, WeCom application messages and WeCom group robot: every file more than 5 bytes;
applied to DingTalk too."""

Accepts = Callable[[bytes, str], bool]
"""(the uploaded bytes, the part's filename) -> whether the format is one the type takes."""


@dataclass(frozen=True)
class MediaRule:
    """One media type of one upload endpoint."""

    max_bytes: int
    formats: str
    """The accepted formats, for the errmsg."""
    accepts: Accepts


def _magic(*prefixes: bytes) -> Accepts:
    return lambda data, _: data.startswith(prefixes)


def _any_of(*checks: Accepts) -> Accepts:
    return lambda data, filename: any(check(data, filename) for check in checks)


def _anything(_: bytes, __: str) -> bool:
    return True


def _mp4(data: bytes, _: str) -> bool:
    # An ISO media file starts with a box: 4 bytes of size, then the type "ftyp".
    return data[4:8] == b"ftyp"


def _wav(data: bytes, _: str) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _mp3(data: bytes, _: str) -> bool:
    # Either an ID3 tag or an MPEG audio frame header (11 sync bits set).
    return data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _extension(*extensions: str) -> Accepts:
    def accepts(_: bytes, filename: str) -> bool:
        stem, dot, extension = filename.lower().rpartition(".")
        return bool(stem and dot) and extension in extensions

    return accepts


_JPEG: Final = _magic(b"\xff\xd8\xff")
_PNG: Final = _magic(b"\x89PNG\r\n\x1a\n")
_GIF: Final = _magic(b"GIF87a", b"GIF89a")
_BMP: Final = _magic(b"BM")
_AMR: Final = _magic(b"#!AMR")

# docs/vendors.md, WeCom application messages
WECOM_APP_MEDIA: Final[dict[str, MediaRule]] = {
    "image": MediaRule(10 * MB, "jpg, png", _any_of(_JPEG, _PNG)),
    "voice": MediaRule(2 * MB, "amr", _AMR),
    "video": MediaRule(10 * MB, "mp4", _mp4),
    "file": MediaRule(20 * MB, "any", _anything),
}

# docs/vendors.md, WeCom group robot: the robot uploads only files and voice.
WECOM_ROBOT_MEDIA: Final[dict[str, MediaRule]] = {
    "file": WECOM_APP_MEDIA["file"],
    "voice": WECOM_APP_MEDIA["voice"],
}

# docs/vendors.md, DingTalk work notifications
DINGTALK_WORK_MEDIA: Final[dict[str, MediaRule]] = {
    "image": MediaRule(20 * MB, "jpg, gif, png, bmp", _any_of(_JPEG, _GIF, _PNG, _BMP)),
    "voice": MediaRule(2 * MB, "amr, mp3, wav", _any_of(_AMR, _mp3, _wav)),
    "video": MediaRule(20 * MB, "mp4", _mp4),
    "file": MediaRule(
        20 * MB,
        "doc, docx, xls, xlsx, ppt, pptx, zip, pdf, rar",
        _extension("doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar"),
    ),
}
