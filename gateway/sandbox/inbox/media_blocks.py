"""How a message shows media it refers to: images inline, files and voice as attachments.

Media a message names by media_id was uploaded to the same robot or app; the sandbox serves its
bytes (kept within a budget by `MediaContent`) at `markup.media_url`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.sandbox.inbox.markup import media_url, text
from gateway.sandbox.media import MediaRecord


@dataclass(frozen=True)
class RenderContext:
    """What a renderer needs beyond the message: where it came from and the sender's uploads."""

    seq: int
    """The journal entry's number (robot images are served by it)."""
    owner: str | None
    """The robot or app name, which owns the media the message names."""
    media: Callable[[str, str], MediaRecord | None]
    """(owner, media_id) -> the upload's record, if there is one."""


def media_image(context: RenderContext, media_id: object, css: str = "message-image") -> str:
    """An uploaded image, or a placeholder naming the media_id if it is unknown."""
    if not isinstance(media_id, str) or context.owner is None:
        return _missing(media_id)
    return f'<img class="{css}" src="{media_url(context.owner, media_id)}" alt="image {text(media_id)}">'


def attachment(context: RenderContext, media_id: object, kind: str, extra: str = "") -> str:
    """A file, voice or video as an attachment line: icon, filename, size, a download link."""
    if not isinstance(media_id, str) or context.owner is None:
        return _missing(media_id)
    record = context.media(context.owner, media_id)
    name = record.filename if record is not None and record.filename else media_id
    size = _size(record.size) if record is not None and record.size else "unknown size"
    # The icon is the file's extension, as chat clients label attachments (no icon font needed).
    extension = name.rpartition(".")[2] if "." in name else kind
    icon = text(extension[:4].upper())
    href = media_url(context.owner, media_id)
    return (
        f'<a class="attachment" href="{href}" download="{text(name)}">'
        f'<span class="attachment-icon {text(kind)}">{icon}</span>'
        f'<span class="attachment-text"><span class="attachment-name">{text(name)}</span>'
        f'<span class="attachment-meta">{text(kind)} · {text(size)}{text(extra)}</span></span></a>'
    )


def _missing(media_id: object) -> str:
    return f'<div class="attachment missing">media {text(media_id)} (unknown)</div>'


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
