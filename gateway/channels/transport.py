"""The seam where vendor HTTP happens: one protocol, one aiohttp implementation.

Adapters talk to ``VendorTransport`` only, so a test or a benchmark can swap the transport without
patching, and every vendor call shares one connection pool and one timeout policy.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import yarl
from aiohttp.connector import Connection
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.channels.attempts import Attempt
from gateway.channels.spool_payload import SpoolPayload
from gateway.redaction import CREDENTIAL_PARAMS, MASK, redact
from gateway.spool import Spool
from gateway.telemetry import tracer


@dataclass(frozen=True, slots=True)
class VendorReply:
    """What came back: the HTTP status and, when the body was a JSON object, that object."""

    status: int
    data: dict[str, Any] | None
    text: str


@dataclass(frozen=True, slots=True)
class FilePart:
    """A multipart file part (vendors name it ``media``): bytes, or a spool streamed from disk."""

    field: str
    filename: str
    content_type: str
    content: bytes | Spool


class TransportError(Exception):
    """The vendor could not be asked or did not answer; ``sent`` says whether the request may have
    arrived (it was handed to a connection)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class TransportTimeout(TransportError):
    pass


class VendorTransport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        file: FilePart | None = None,
        timeout: float,
        attempt: Attempt | None = None,
        span: trace.Span | None = None,
    ) -> VendorReply:
        """One HTTP request; marks ``attempt.written`` once the request is handed to a connection.

        ``span`` is the caller's client span for this attempt: the transport records the HTTP
        facts on it, sends its context to the vendor as ``traceparent`` and leaves it open for the
        caller to judge the answer (a vendor errcode) and end. Without one, the transport opens and
        ends a client span of its own, named after the method.
        """
        ...

    async def close(self) -> None: ...


#: The attempt whose request is being made in this task, for ``_AttemptRequest`` to mark.
_attempt_in_progress: ContextVar[Attempt | None] = ContextVar("attempt_in_progress", default=None)


class _AttemptRequest(aiohttp.ClientRequest):
    """Marks the attempt in progress written as its request is handed to a connection.

    The moment aiohttp's ``on_request_headers_sent`` signal reports (nothing is awaited between
    the two), without its cost: a session with any TraceConfig builds a trace and awaits a signal
    for every step of every request (start, with the URL rebuilt; headers; each chunk sent and
    received; end), about 25 µs of CPU per request on a ~100 µs call.
    """

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        attempt = _attempt_in_progress.get()
        if attempt is not None:
            attempt.written = True
        return await super().send(conn)


class AiohttpTransport:
    """The production transport: one shared ClientSession, created lazily inside the running loop."""

    def __init__(self, *, pool_size: int = 100) -> None:
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                # No vendor API uses cookies (docs/vendors.md: credentials travel in the query), and
                # the session is shared by every account: a cookie one vendor set must not ride on
                # another account's calls. Nor is each request and answer checked against a jar.
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=encode_json,
                raise_for_status=False,
                request_class=_AttemptRequest,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        file: FilePart | None = None,
        timeout: float,
        attempt: Attempt | None = None,
        span: trace.Span | None = None,
    ) -> VendorReply:
        data: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] = {}
        if file is not None:
            form = aiohttp.FormData()
            content = file.content
            # A spooled file gets a new payload per attempt, each reading it from the start.
            body = (
                content
                if isinstance(content, bytes)
                else SpoolPayload(content, content_type=file.content_type)
            )
            form.add_field(file.field, body, filename=file.filename, content_type=file.content_type)
            data = form
        elif json_body is not None:
            data = json_body if isinstance(json_body, bytes) else encode_json(json_body).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        # Hand-written, not opentelemetry-instrumentation-aiohttp-client: it has no release for this
        # SDK (0.66b1 pins API 1.45.1), and this span masks credentials by parameter name, not by URL.
        own_span = span is None
        if span is None:
            span = tracer.start_span(method, kind=SpanKind.CLIENT)
        if span.is_recording():  # a sampled-out call skips building what nobody will read
            host, port = _server(url)
            span.set_attributes(
                {
                    "http.request.method": method,
                    "server.address": host,
                    "server.port": port,
                    "url.full": recorded_url(url, params),
                }
            )
        # W3C trace context of this attempt's span: the vendor (the sandbox) sees our trace id.
        propagate.inject(headers, context=trace.set_span_in_context(span))
        in_progress = _attempt_in_progress.set(attempt)
        try:
            async with self._client().request(
                method,
                _target(url, tuple(params.items()) if params else ()),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text(errors="replace")
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 400:  # an HTTP client span's error, as semconv says
                    span.set_attribute("error.type", str(response.status))
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status}"))
                return VendorReply(response.status, _json_object(text), text)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            span.set_status(Status(StatusCode.ERROR, "timeout"))
            raise TransportTimeout(f"no answer within {timeout:.1f}s", sent=_sent(attempt)) from None
        except aiohttp.ClientConnectorError as exc:
            span.set_status(Status(StatusCode.ERROR, "connect failed"))
            # Never connected, so nothing was delivered: safe to retry even without idempotency.
            raise TransportError(f"cannot connect: {exc.os_error.strerror or exc}", sent=False) from None
        except aiohttp.ClientError as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise TransportError(_describe(exc), sent=_sent(attempt)) from None
        finally:
            _attempt_in_progress.reset(in_progress)
            if own_span:
                span.end()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str, int]:
    """The host and port a URL reaches; adapters call a few URLs (base URL plus a path) all day."""
    target = urlsplit(url)
    return target.hostname or "", target.port or (443 if target.scheme == "https" else 80)


@functools.lru_cache(maxsize=256)
def _target(url: str, query: tuple[tuple[str, str], ...]) -> yarl.URL:
    """The URL with its query, built by yarl once per URL and credentials, not on every request.

    Given ``params=``, aiohttp rebuilds and re-quotes the URL for each request; the same few
    (path, access token) pairs are called all day. A signed DingTalk robot's timestamp makes each
    of its URLs new: those take one slot each and age out. The credentials kept here are the ones
    the settings and the token manager already hold, and a URL object is never logged.
    """
    try:
        target = yarl.URL(url)
    except ValueError as exc:  # as aiohttp reports a URL it cannot parse: nothing was sent
        raise aiohttp.InvalidUrlClientError(url) from exc
    return target.extend_query(query) if query else target


def _sent(attempt: Attempt | None) -> bool:
    # Without an attempt to ask, assume the worst: the vendor may have the request.
    return attempt is None or attempt.written


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the vendor closed the connection without an answer"
    return type(exc).__name__


def recorded_url(url: str, params: Mapping[str, str] | None) -> str:
    """The URL as spans record it: credential query parameters masked by name, values never shown.

    A query already in ``url`` (an adapter that built it itself) goes through ``redact`` whole.
    """
    if "?" in url:
        url = redact(url)
    if not params:
        return url
    query = "&".join(
        f"{k}={MASK if k in CREDENTIAL_PARAMS else quote(v, safe='')}" for k, v in params.items()
    )
    return f"{url}?{query}"


# ensure_ascii=False: vendors count limits in UTF-8 bytes, and \uXXXX escapes would triple them. One
# encoder for every call: json.dumps with options builds a new one each time. It keeps no state
# between calls, so sharing it is safe.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: Any) -> str:
    return _JSON_ENCODER.encode(value)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
