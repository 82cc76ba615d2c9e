"""What each vendor accepts as media, per type: size limits and formats (docs/vendors.md, Media
under WeCom application messages, WeCom group robot and DingTalk work notifications).

A rule is checked twice: the declared info (filename, content type, size) before any byte is
read, and the running size while chunks stream in, so an oversized upload stops at the limit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import Violation

MB = 1024 * 1024
MIN_BYTES = 6  # "every file larger than 5 bytes"
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream"})

# Content types a well-behaved client sends for each extension; others are refused when given.
CONTENT_TYPES: dict[str, frozenset[str]] = {
    "jpg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "png": frozenset({"image/png"}),
    "gif": frozenset({"image/gif"}),
    "bmp": frozenset({"image/bmp", "image/x-ms-bmp"}),
    "amr": frozenset({"audio/amr", "audio/amr-wb"}),
    "mp3": frozenset({"audio/mpeg", "audio/mp3"}),
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "mp4": frozenset({"video/mp4"}),
}


@dataclass(frozen=True)
class MediaRule:
    max_bytes: int
    extensions: frozenset[str] = frozenset()  # lower-case without the dot; empty: any file
    label: str = ""  # how errors describe the limit, e.g. "WeCom app images"

    def check_info(self, filename: str, content_type: str, size: int) -> list[Violation]:
        violations: list[Violation] = []
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if not filename:
            violations.append(Violation("info.filename", "is required: recipients see it"))
        elif self.extensions and extension not in self.extensions:
            allowed = ", ".join(sorted(self.extensions))
            violations.append(Violation("info.filename", f"must end in one of: {allowed} ({self.label})"))
        known = CONTENT_TYPES.get(extension)
        ctype = content_type.split(";", 1)[0].strip().lower()
        if known is not None and ctype not in GENERIC_CONTENT_TYPES and ctype not in known:
            violations.append(
                Violation("info.content_type", f"{content_type!r} does not match a .{extension} file")
            )
        if size and size > self.max_bytes:
            violations.append(Violation("info.size", self.too_large(size)))
        if size and size < MIN_BYTES:
            violations.append(Violation("info.size", f"is {size} bytes; files must be larger than 5 bytes"))
        return violations

    def too_large(self, size: int) -> str:
        return f"is over {size} bytes; {self.label} take at most {self.max_bytes // MB} MB"


def type_name(media_type: int) -> str:
    """The vendors' name for a media type: image, voice, video, file."""
    return {1: "image", 2: "voice", 3: "video", 4: "file"}.get(media_type, "")


def image_upload_name(data: bytes) -> tuple[str, str]:
    """A file name and content type for image bytes sent inline, from their magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image.png", "image/png"
    return "image.jpg", "image/jpeg"


def uploaded_at(answer: Mapping[str, Any]) -> float:
    """An upload answer's created_at (WeCom: a unix-seconds string), or now when it is missing."""
    try:
        return float(answer.get("created_at") or 0) or time.time()
    except (TypeError, ValueError):
        return time.time()
