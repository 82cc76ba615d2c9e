"""The seam where vendor HTTP happens: one protocol, one aiohttp implementation.

Adapters talk to ``VendorTransport`` only, so a test or a benchmark can swap the transport without
patching, and every vendor call shares one connection pool and one timeout policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.channels.attempts import Attempt
from gateway.channels.spool_payload import SpoolPayload
from gateway.redaction import CREDENTIAL_PARAMS, MASK, redact
from gateway.spool import Spool
from gateway.telemetry import current_span


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
    ) -> VendorReply:
        """One HTTP request; marks ``attempt.written`` once the request is handed to a connection."""
        ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """The production transport: one shared ClientSession, created lazily inside the running loop."""

    def __init__(self, *, pool_size: int = 100) -> None:
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        # Tells an attempt that its request reached a connection: from then on, a failure is ambiguous.
        self._trace = aiohttp.TraceConfig()
        self._trace.on_request_headers_sent.append(_mark_written)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                json_serialize=encode_json,
                raise_for_status=False,
                trace_configs=[self._trace],
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
        target = urlsplit(url)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "server.address": target.hostname or "",
            "server.port": target.port or (443 if target.scheme == "https" else 80),
            "url.full": recorded_url(url, params),
        }
        # Hand-written, not opentelemetry-instrumentation-aiohttp-client: it has no release for this
        # SDK (0.66b1 pins API 1.45.1), and this span masks credentials by parameter name, not by URL.
        with current_span(method, kind=SpanKind.CLIENT, attributes=attributes) as span:
            # W3C trace context of this attempt's span: the vendor (the sandbox) sees our trace id.
            propagate.inject(headers)
            try:
                async with self._client().request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    trace_request_ctx=attempt,
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _mark_written(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    attempt = context.trace_request_ctx
    if isinstance(attempt, Attempt):
        attempt.written = True


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


def encode_json(value: Any) -> str:
    # ensure_ascii=False: vendors count limits in UTF-8 bytes, and \uXXXX escapes would triple them.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
