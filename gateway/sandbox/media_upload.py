"""Receives one media upload the way the vendors do: multipart part `media`, checked by type.

Shared by the three upload endpoints (WeCom app, WeCom robot, DingTalk); each passes its own
table of `MediaRule`s. The part is read in chunks and reading stops as soon as the type's limit
is passed, so a 500 MB mistake costs the sandbox one chunk over the limit, not 500 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from aiohttp import BodyPartReader, hdrs, web

from gateway.sandbox.answers import Rejection
from gateway.sandbox.endpoint import Call
from gateway.sandbox.media import MediaRecord
from gateway.sandbox.media_formats import MIN_BYTES, MediaRule

PART_NAME = "media"
_CHUNK = 64 * 1024
_MISSING = "missing media: expected multipart/form-data with a file part named media"


async def receive_media(
    request: web.Request,
    call: Call,
    rules: Mapping[str, MediaRule],
    now: float,
    keep: Callable[[str, bytes], None] | None = None,
) -> MediaRecord:
    """Read and check the upload; raise `Rejection` with the vendor's errcode if it is refused.

    Checks run in the order a caller can fix them: type (40004), presence of the part (40035),
    size limit (45001), minimum size (40006), format (40005). `call.body` gathers what was read,
    for the journal. `keep(sha256, bytes)` is given an accepted upload's bytes (the inbox page
    shows them).
    """
    media_type = request.query.get("type", "")
    call.body["type"] = media_type
    rule = rules.get(media_type)
    if rule is None:
        raise Rejection(40004, f"invalid media type {media_type!r}, expected one of {', '.join(rules)}")
    part = await _media_part(request)
    filename = part.filename or ""
    content_type = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
    call.body.update(filename=filename, content_type=content_type)
    data = await _read_at_most(part, rule.max_bytes)
    call.body["size"] = len(data)
    if len(data) > rule.max_bytes:
        raise Rejection(45001, f"media size out of limit, {media_type} is at most {rule.max_bytes} bytes")
    if len(data) <= MIN_BYTES:
        raise Rejection(40006, f"invalid file size, a file must be larger than {MIN_BYTES} bytes")
    if not rule.accepts(data, filename):
        raise Rejection(40005, f"invalid file type, {media_type} takes {rule.formats}")
    digest = hashlib.sha256(data).hexdigest()
    call.body["sha256"] = digest
    if keep is not None:
        keep(digest, data)
    return MediaRecord(
        type=media_type,
        filename=filename,
        size=len(data),
        sha256=digest,
        content_type=content_type,
        created_at=now,
    )


async def _media_part(request: web.Request) -> BodyPartReader:
    if not request.content_type.startswith("multipart/"):
        raise Rejection(40035, _MISSING)
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            # Other parts are skipped: `next()` reads past whatever of them was left unread.
            if isinstance(part, BodyPartReader) and part.name == PART_NAME:
                return part
    except (ValueError, AssertionError, KeyError):
        raise Rejection(40035, f"{_MISSING} (the body is not valid multipart)") from None
    raise Rejection(40035, _MISSING)


async def _read_at_most(part: BodyPartReader, max_bytes: int) -> bytes:
    """The part's bytes, or the first chunks past `max_bytes` if it is longer."""
    data = bytearray()
    try:
        while len(data) <= max_bytes:
            chunk = await part.read_chunk(_CHUNK)
            if not chunk:
                break
            data += chunk
    except ValueError:
        raise Rejection(40035, f"{_MISSING} (the body is not valid multipart)") from None
    return bytes(data)
