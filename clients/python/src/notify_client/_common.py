"""What the async and the sync client share: connection settings, request building, file reading.

Kept free of any I/O model so that both clients build byte-for-byte the same requests and talk to
the gateway the same way; each client only adds its own way of waiting.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from notify_client_proto import notification_service_pb2 as pb

from notify_client._version import __version__
from notify_client.errors import DeadlineExceededError, NotifyError, UnavailableError
from notify_client.retry import RetryEvent, RetryPolicy

SERVICE = "notify.v1.NotificationService"
SEND = f"/{SERVICE}/Send"
RECALL = f"/{SERVICE}/Recall"
UPLOAD_MEDIA = f"/{SERVICE}/UploadMedia"
GET_MESSAGE = f"/{SERVICE}/GetMessage"
LIST_MESSAGES = f"/{SERVICE}/ListMessages"
WATCH_MESSAGE = f"/{SERVICE}/WatchMessage"

DEFAULT_TIMEOUT = 10.0  # a Send's vendor call with the gateway's own retries fits comfortably
DEFAULT_UPLOAD_TIMEOUT = 120.0  # 20 MB at a modest uplink, plus the vendor's upload
DEFAULT_CHUNK_SIZE = 64 * 1024  # small enough for any message limit, large enough to be cheap
# A watch waits for the vendor, not for the gateway: DingTalk reports delivery when the gateway next
# polls it, which takes longer than any unary call should.
DEFAULT_WATCH_TIMEOUT = 300.0

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


# -- reading message records ----------------------------------------------------------------------

_STATE_PREFIX = "MESSAGE_STATE_"


def message_state(value: pb.MessageState.ValueType | str) -> pb.MessageState.ValueType:
    """A MessageState from the enum or a name ("sent", "DELIVERED", "MESSAGE_STATE_UNKNOWN")."""
    names = [name.removeprefix(_STATE_PREFIX).lower() for name in pb.MessageState.keys()[1:]]
    if isinstance(value, str):
        name = _STATE_PREFIX + value.upper().removeprefix(_STATE_PREFIX)
        if name not in pb.MessageState.DESCRIPTOR.values_by_name or name == "MESSAGE_STATE_UNSPECIFIED":
            raise ValueError(f"message state {value!r} is not one of: {', '.join(names)}")
        return pb.MessageState.Value(name)
    if value == pb.MESSAGE_STATE_UNSPECIFIED or value not in pb.MessageState.values():
        raise ValueError(f"message state {value!r} is not one of: {', '.join(names)}")
    return value


def timestamp(value: datetime, name: str) -> Timestamp:
    """A Timestamp for an aware datetime.

    A naive datetime is refused rather than guessed at: read as UTC (protobuf's choice) it would
    shift a local ``datetime.now()`` by the machine's offset and silently filter the wrong hours.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, for example datetime.now(timezone.utc)")
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def list_messages_request(
    *,
    account: str | None,
    states: Iterable[pb.MessageState.ValueType | str],
    labels: Mapping[str, str] | None,
    start_time: datetime | None,
    end_time: datetime | None,
    page_size: int | None,
    page_token: str | None,
) -> pb.ListMessagesRequest:
    """The ListMessages request for the filter the caller gave; unset parts filter nothing.

    ``page_size`` is passed as given (None: the gateway's default of 50): the gateway clamps it to
    500 and refuses a negative one with a field violation, which says more than a client-side check.
    """
    if isinstance(states, str | int):  # one state where a collection was meant
        states = (states,)
    request = pb.ListMessagesRequest(
        page_size=page_size or 0,
        page_token=page_token or "",
        account=account or "",
        states=[message_state(state) for state in states],
        labels=dict(labels or {}),
    )
    if start_time is not None:
        request.start_time.CopyFrom(timestamp(start_time, "start_time"))
    if end_time is not None:
        request.end_time.CopyFrom(timestamp(end_time, "end_time"))
    return request


def next_page(
    request: pb.ListMessagesRequest, page: pb.ListMessagesResponse
) -> pb.ListMessagesRequest | None:
    """The request for the page after ``page``, or None after the last one.

    AIP-158: the token continues the listing only with the same filter, so everything but the token
    is copied. A page may be short (even empty) and still have a next one: only an empty
    ``next_page_token`` ends the listing.
    """
    if not page.next_page_token:
        return None
    following = pb.ListMessagesRequest()
    following.CopyFrom(request)
    following.page_token = page.next_page_token
    return following


@dataclass(slots=True)
class WatchProgress:
    """Where one watch_message stands across the streams it opens, shared by both clients.

    A watch is a read, so a stream that breaks (UNAVAILABLE, a gateway restart, a stream that ends
    before a final state) is opened again under the RetryPolicy, within the watch's own deadline.
    Each new stream starts with the record as it stands; when that is the record already yielded it
    is skipped, so the caller sees every change once and never the same record twice in a row. The
    retry count starts again whenever a record arrives: a long watch that breaks once an hour is
    not worn down by breaks long past.
    """

    policy: RetryPolicy
    deadline: float  # on time.monotonic()'s clock
    last: pb.MessageRecord | None = None
    failures: int = 0
    since: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, policy: RetryPolicy, timeout: float) -> WatchProgress:
        return cls(policy, time.monotonic() + timeout)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def fresh(self, record: pb.MessageRecord) -> bool:
        """Whether ``record`` is news to the caller (else a reopened stream's repeat, to skip)."""
        if self.last is not None and record == self.last:
            return False
        self.last = record
        self.failures = 0
        self.since = time.monotonic()
        return True

    def ended_early(self) -> NotifyError:
        """The error for a stream that ended cleanly without a final record.

        The gateway ends the stream at the caller's deadline; it is the deadline, reported as such.
        With time left (a gateway shutting down), it is an interruption, and retried like one.
        """
        if self.remaining() <= 0.05:
            return self.timed_out()
        return UnavailableError(
            "the watch ended before the message reached a final state", code=grpc.StatusCode.UNAVAILABLE
        )

    def timed_out(self) -> DeadlineExceededError:
        state = pb.MessageState.Name(self.last.state) if self.last is not None else "not yet read"
        return DeadlineExceededError(
            f"the watch's deadline passed before a final state (last state: {state})",
            code=grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    def delay_after(self, error: NotifyError) -> float | None:
        """Seconds to wait before opening the stream again, or None when ``error`` is to be raised.

        Calls the policy's on_retry, like every other retried call.
        """
        self.failures += 1
        delay = self.policy.delay_before_retry(error, self.failures, time.monotonic() - self.since)
        if delay is None or delay >= self.remaining():
            return None
        if self.policy.on_retry is not None:
            self.policy.on_retry(RetryEvent("WatchMessage", self.failures, delay, error, None))
        return delay
