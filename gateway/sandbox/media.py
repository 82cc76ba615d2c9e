"""Uploaded media as a vendor keeps it: a record per media_id, usable for a while or forever."""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaRecord:
    """What the vendor knows about one upload (never its bytes: tests compare `sha256`)."""

    type: str
    """The upload's `type` query parameter: image, voice, video or file."""
    filename: str
    """The multipart part's filename, which recipients see."""
    size: int
    sha256: str
    """Hex digest of the uploaded bytes."""
    content_type: str
    """The part's Content-Type as sent (vendors judge the bytes, not this)."""
    created_at: float
    """Sandbox time of the upload."""


class MediaShelf:
    """The media one robot or app uploaded, by media_id.

    `lifetime` is how long a media_id stays usable: 3 days on WeCom (docs/vendors.md,
    WeCom application messages and WeCom group robot); None means forever, as on DingTalk
    (DingTalk work notifications: a media_id never expires).
    """

    def __init__(self, lifetime: float | None, id_prefix: str = "") -> None:
        self.lifetime = lifetime
        self._id_prefix = id_prefix
        self._records: dict[str, MediaRecord] = {}

    def add(self, record: MediaRecord) -> str:
        """Keep `record` under a new, unguessable media_id and return that id."""
        media_id = f"{self._id_prefix}{secrets.token_urlsafe(32)}"
        self._records[media_id] = record
        return media_id

    def put(self, media_id: str, record: MediaRecord) -> None:
        """Keep `record` under a media_id the caller chose (test set-up without an upload)."""
        self._records[media_id] = record

    def usable(self, media_id: str, now: float) -> MediaRecord | None:
        """The record for `media_id` if it is on this shelf and has not expired at `now`."""
        record = self._records.get(media_id)
        if record is None:
            return None
        if self.lifetime is not None and now - record.created_at >= self.lifetime:
            return None
        return record

    def records(self) -> dict[str, MediaRecord]:
        """Every record by media_id, expired ones included (a copy)."""
        return dict(self._records)
