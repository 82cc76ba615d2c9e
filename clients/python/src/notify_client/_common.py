"""What the async and the sync client share: connection settings, request building, file reading.

Kept free of any I/O model so that both clients build byte-for-byte the same requests and talk to
the gateway the same way; each client only adds its own way of waiting.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from notify_client_proto import notification_service_pb2 as pb

from notify_client._version import __version__

SERVICE = "notify.v1.NotificationService"
SEND = f"/{SERVICE}/Send"
RECALL = f"/{SERVICE}/Recall"
UPLOAD_MEDIA = f"/{SERVICE}/UploadMedia"

DEFAULT_TIMEOUT = 10.0  # a Send's vendor call with the gateway's own retries fits comfortably
DEFAULT_UPLOAD_TIMEOUT = 120.0  # 20 MB at a modest uplink, plus the vendor's upload
DEFAULT_CHUNK_SIZE = 64 * 1024  # small enough for any message limit, large enough to be cheap

PathLike = str | os.PathLike[str]
ImageSource = bytes | PathLike

_MEDIA_TYPES: dict[str, pb.MediaType.ValueType] = {
    "image": pb.MEDIA_TYPE_IMAGE,
    "voice": pb.MEDIA_TYPE_VOICE,
    "video": pb.MEDIA_TYPE_VIDEO,
    "file": pb.MEDIA_TYPE_FILE,
}


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach the gateway: target, channel credentials (None: plaintext), per-call metadata."""

    address: str
    credentials: grpc.ChannelCredentials | None
    metadata: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, Any], ...]


def connection(
    address: str,
    api_key: str | None,
    *,
    insecure: bool,
    root_certificates: bytes | PathLike | None,
    certificate_chain: bytes | PathLike | None,
    private_key: bytes | PathLike | None,
    server_hostname: str | None,
    options: Mapping[str, Any] | None,
) -> Connection:
    """Channel settings from the constructor's arguments.

    Over TLS the API key travels as call credentials, which gRPC refuses to send in clear. A
    plaintext channel (``insecure=True``, for a gateway on loopback in development) cannot carry
    call credentials, so the key goes as plain per-call metadata there: do not use it across a
    network you do not trust.
    """
    if not address:
        raise ValueError("address is required, for example 'notify.internal:50051'")
    merged: dict[str, Any] = {"grpc.primary_user_agent": f"notify-client-python/{__version__}"}
    if server_hostname:
        merged["grpc.ssl_target_name_override"] = server_hostname
    merged.update(options or {})
    if insecure:
        if root_certificates or certificate_chain or private_key:
            raise ValueError("insecure=True takes no certificates: drop them or use TLS")
        metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        return Connection(address, None, metadata, tuple(merged.items()))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(root_certificates),
        private_key=_pem(private_key),
        certificate_chain=_pem(certificate_chain),
    )
    if api_key:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(api_key)
        )
    return Connection(address, credentials, (), tuple(merged.items()))


def _pem(value: bytes | PathLike | None) -> bytes | None:
    """PEM given as bytes, or a path to read it from."""
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def send_request(
    account: str,
    message: pb.Message,
    *,
    recipients: pb.Recipients | None = None,
    labels: Mapping[str, str] | None = None,
    options: pb.SendOptions | None = None,
    idempotency_key: str | None = None,
) -> pb.SendRequest:
    request = pb.SendRequest(account=account, message=message, labels=dict(labels or {}))
    if recipients is not None:
        request.recipients.CopyFrom(recipients)
    if options is not None:
        request.options.CopyFrom(options)
    if idempotency_key:
        request.idempotency_key = idempotency_key
    return request


def with_idempotency_key(request: pb.SendRequest) -> pb.SendRequest:
    """A copy of ``request`` that carries an idempotency key: the caller's, else a fresh one.

    One key per logical send, generated before the first attempt and kept by every retry, is what
    lets the client retry an UNAVAILABLE Send without risking a second delivery: the gateway answers
    a repeat of a delivered key with the first answer (``duplicate=true``). The caller's request
    object is never modified.
    """
    keyed = pb.SendRequest()
    keyed.CopyFrom(request)
    if not keyed.idempotency_key:
        keyed.idempotency_key = uuid.uuid4().hex
    return keyed


def text_message(content: str) -> pb.Message:
    return pb.Message(text=pb.Text(content=content))


def markdown_message(
    content: str, title: str, dialect: pb.Markdown.Dialect.ValueType = pb.Markdown.DIALECT_UNSPECIFIED
) -> pb.Message:
    return pb.Message(markdown=pb.Markdown(title=title, content=content, dialect=dialect))


def card_message(card: pb.TextCard | pb.ActionCard) -> pb.Message:
    if isinstance(card, pb.TextCard):
        return pb.Message(text_card=card)
    if isinstance(card, pb.ActionCard):
        return pb.Message(action_card=card)
    raise TypeError(
        f"a card is a TextCard (WeCom app) or an ActionCard (DingTalk), not {type(card).__name__}"
    )


def image_message(data: bytes | None, media_id: str | None) -> pb.Message:
    if (data is None) == (media_id is None):
        raise ValueError("give exactly one of: the image (bytes or a path) or media_id")
    image = pb.Image(data=data) if data is not None else pb.Image(media_id=media_id or "")
    return pb.Message(image=image)


def read_image(image: ImageSource) -> bytes:
    """Image bytes as given, or read from a path (str or PathLike)."""
    if isinstance(image, bytes):
        return image
    return Path(image).read_bytes()


def media_type(value: pb.MediaType.ValueType | str) -> pb.MediaType.ValueType:
    """A MediaType from the enum or a name ("image", "FILE", "MEDIA_TYPE_VOICE")."""
    if isinstance(value, str):
        key = value.lower().removeprefix("media_type_")
        if key not in _MEDIA_TYPES:
            raise ValueError(f"media type {value!r} is not one of: {', '.join(_MEDIA_TYPES)}")
        return _MEDIA_TYPES[key]
    if value == pb.MEDIA_TYPE_UNSPECIFIED or value not in pb.MediaType.values():
        raise ValueError(f"media type {value!r} is not one of: {', '.join(_MEDIA_TYPES)}")
    return value


def media_info(
    account: str,
    path: Path,
    type: pb.MediaType.ValueType | str,  # noqa: A002 - the proto's name
    *,
    filename: str | None,
    content_type: str | None,
) -> pb.MediaInfo:
    """The info part for a file on disk; its size is declared so an oversized file is refused
    before a single chunk is sent."""
    return pb.MediaInfo(
        account=account,
        type=media_type(type),
        filename=filename or path.name,
        content_type=content_type or "",
        size=path.stat().st_size,
    )


def file_parts(info: pb.MediaInfo, path: Path, chunk_size: int) -> Iterator[pb.UploadMediaRequest]:
    """The upload stream: info, then the file read lazily, one chunk in memory at a time."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be > 0")
    yield pb.UploadMediaRequest(info=info)
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            yield pb.UploadMediaRequest(chunk=chunk)


def is_core_internal_error(code: grpc.StatusCode, details: str, trailers: Any) -> bool:
    """grpc.aio's stand-in for a status it lost (grpc/grpc#36066).

    When the gateway ends an upload early (a refused info part, a wrong API key), a chunk the
    client writes after that fails inside gRPC Core, and grpc.aio reports INTERNAL "Internal error
    from Core" in place of the gateway's status; the real status never reaches the caller. Such an
    error has no trailers, which a status from the gateway always has.
    """
    return (
        code == grpc.StatusCode.INTERNAL
        and details.startswith("Internal error from Core")
        and not any(key == "grpc-status-details-bin" for key, _ in trailers or ())
    )
