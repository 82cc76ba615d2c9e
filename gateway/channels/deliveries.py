"""What travels between the chain and an adapter: the prepared payload, media, and the outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.spool import Spool
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class Rejected:
    """A recipient the vendor refused while delivering to the others."""

    kind: pb.RecipientKind.ValueType
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What an adapter reports back, the same shape for every vendor (Novu's provider contract)."""

    state: pb.MessageState.ValueType
    vendor_message_id: str = ""
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True, slots=True)
class MediaUpload:
    """A whole file, received and checked, ready for the vendor's upload endpoint.

    ``content`` is bytes for an image a Send carries (bounded by the gRPC message size), or the
    spool an UploadMedia stream was received into (bounded memory, the rest on disk).
    """

    type: pb.MediaType.ValueType
    filename: str
    content_type: str
    content: bytes | Spool

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.size

    @property
    def sha256(self) -> str:
        """The hex sha256 of the content; a spool's was computed while it was received."""
        if isinstance(self.content, bytes):
            return hashlib.sha256(self.content).hexdigest()
        return self.content.sha256


@dataclass(frozen=True, slots=True)
class UploadedMedia:
    media_id: str
    expires_at: float | None  # unix seconds; None where the vendor keeps media forever


@dataclass(slots=True)
class Outgoing:
    """A request turned into the vendor's JSON, ready to send; built before any I/O.

    ``pending_media`` is raw bytes that must be uploaded first (an image sent as bytes to an
    application channel): the upload's media_id goes into the given dict of the payload.
    """

    kind: str
    payload: dict[str, Any]
    pending_media: tuple[MediaUpload, dict[str, Any]] | None = None
    encoded: bytes | None = None  # the payload as sent, when prepare had to encode it anyway
