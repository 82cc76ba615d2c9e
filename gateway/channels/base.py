"""The contract every channel adapter fulfils, and the vendor-call machinery they share.

An adapter declares its facts as class attributes (channel name, settings model, message kinds,
error table, retry safety) and implements two things: ``prepare`` (request -> vendor JSON, or
field violations; pure) and ``deliver`` (send the prepared payload). Calling the vendor,
retrying, reading errcode and mapping it to a typed error happen here, once for all channels.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.channels.attempts import ACCEPTED, AMBIGUOUS, REFUSED, Attempt, AttemptLog
from gateway.channels.deliveries import Delivery, MediaUpload, Outgoing, UploadedMedia
from gateway.channels.error_table import ErrorTable
from gateway.channels.media_rules import MediaRule, type_name
from gateway.channels.settings import AccountSettings
from gateway.channels.transport import (
    FilePart,
    TransportError,
    TransportTimeout,
    VendorReply,
    VendorTransport,
)
from gateway.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    VendorError,
    VendorOutcome,
    VendorUnavailable,
    Violation,
)
from gateway.redaction import redact, register_token
from gateway.store.rate_limits import RateLimit
from gateway.telemetry import tracer, vendor_duration, vendor_errors, vendor_retries
from gateway.tokens.manager import TokenManager
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.vendor")

# Answers that say the request was not processed (overloaded, throttled): safe to send again. Any
# other 5xx may come from a proxy after the vendor acted (a 504 after the vendor delivered), so it
# is ambiguous (docs/vendors.md, "What a failed call means").
_NOT_PROCESSED_HTTP = frozenset({429, 503})
DEFAULT_TOKEN_LIFETIME = 7200.0


class ChannelAdapter(ABC):
    """One vendor channel for one configured account."""

    channel: ClassVar[str]
    Settings: ClassVar[type[AccountSettings]]
    vendor_name: ClassVar[str]  # how error messages name the vendor channel, e.g. "WeCom robot"
    default_base_url: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # Message.kind oneof names this channel delivers
    recallable: ClassVar[bool] = False
    errors: ClassVar[ErrorTable]
    #: Whether the vendor drops a repeat of a request it already acted on (DingTalk robot's msgUuid),
    #: which makes sending a message with an ambiguous outcome again harmless. The account's
    #: ``resend_unknown`` setting overrides it.
    vendor_deduplicates: ClassVar[bool] = False
    #: Whether the vendor reports delivery after accepting (``delivery_report``): SENT is then not final.
    reports_delivery: ClassVar[bool] = False

    def __init__(
        self,
        account_id: str,
        settings: AccountSettings,
        transport: VendorTransport,
        tokens: TokenManager | None = None,
    ) -> None:
        self.account_id = account_id
        self.settings = settings
        self.transport = transport
        self.base_url = str(settings.base_url or self.default_base_url).rstrip("/")
        self._tokens = tokens
        resend = settings.resend_unknown
        self.resends_ambiguous = self.vendor_deduplicates if resend is None else resend
        per_minute = settings.rate_limit_per_minute
        self.rate_limit = (
            self.default_rate_limit
            if per_minute is None
            else RateLimit(per_minute, settings.rate_limit_window_seconds)
            if per_minute
            else None
        )
        if self.uses_token:
            if tokens is None:
                raise ValueError(f"channel {self.channel} needs a token manager")
            tokens.register(account_id, self.fetch_token)

    #: Whether calls carry an access token from ``fetch_token`` (application channels do, robots don't).
    uses_token: ClassVar[bool] = False
    #: The vendor's send limit per account, enforced by the gateway before the vendor sees excess.
    default_rate_limit: ClassVar[RateLimit | None] = None
    #: Media types this channel can upload (pb.MediaType -> rule); empty: no UploadMedia.
    media: ClassVar[Mapping[pb.MediaType.ValueType, MediaRule]] = {}

    # -- what each channel implements -------------------------------------------------------

    @abstractmethod
    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        """Builds the vendor payload; raises InvalidArgument listing every violation. No I/O."""

    @abstractmethod
    async def deliver(
        self, outgoing: Outgoing, *, deadline: float | None, attempts: AttemptLog | None = None
    ) -> Delivery:
        """Sends a prepared payload, logging every vendor call that could deliver it in ``attempts``."""

    async def delivery_report(
        self, vendor_message_id: str, *, deadline: float | None
    ) -> pb.DeliveryReport | None:
        """The vendor's report of a sent message, or None while it is still delivering; only
        channels with ``reports_delivery = True`` implement it."""
        raise NotImplementedError(f"channel {self.channel} gives no delivery reports")

    async def recall(self, vendor_message_id: str, *, deadline: float | None) -> None:
        """Withdraws a sent message; only channels with ``recallable = True`` implement it."""
        raise NotImplementedError(f"channel {self.channel} cannot recall")

    async def upload(self, media: MediaUpload, *, deadline: float | None) -> UploadedMedia:
        """Uploads a checked file; only channels with ``media`` rules implement it."""
        raise NotImplementedError(f"channel {self.channel} takes no uploads")

    async def fetch_token(self, deadline: float | None) -> tuple[str, float]:
        """Asks the vendor for a new access token: (token, expires_in seconds)."""
        raise NotImplementedError(f"channel {self.channel} uses no access token")

    # -- shared by every channel ------------------------------------------------------------

    async def gettoken(
        self, path: str, params: Mapping[str, str], credentials: str, *, deadline: float | None
    ) -> tuple[str, float]:
        """Asks for an access token. A refusal is about the credentials themselves: retrying the
        send cannot help, so it becomes a configuration error naming the account."""
        try:
            answer = await self.call("GET", path, params=params, deadline=deadline)
        except VendorError as error:
            if error.outcome in (VendorOutcome.RETRY, VendorOutcome.RATE_LIMITED):
                raise
            raise VendorError(
                f"{self.vendor_name} gettoken refused the credentials of account {self.account_id!r} "
                f"(check {credentials}): errcode {error.errcode}: {error.errmsg}",
                outcome=VendorOutcome.CONFIGURATION,
                channel=self.channel,
                account=self.account_id,
                errcode=error.errcode,
                errmsg=error.errmsg,
            ) from None
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            # errcode 0 without a token: never treat a malformed answer as success.
            raise self.vendor_error(
                VendorOutcome.UNKNOWN, 0, "gettoken answered errcode 0 without an access_token"
            )
        register_token(token, time.time() + DEFAULT_TOKEN_LIFETIME)  # a secret from the moment it arrives
        return token, _expires_in(answer.get("expires_in"))

    async def upload_file(
        self,
        path: str,
        params: Mapping[str, str],
        media: MediaUpload,
        *,
        with_token: bool = False,
        deadline: float | None,
    ) -> dict[str, Any]:
        """POSTs a file as multipart/form-data with the part named ``media``, as every vendor wants."""
        content_type = media.content_type or "application/octet-stream"
        part = FilePart("media", media.filename, content_type, media.content)
        query = {**params, "type": type_name(media.type)}
        if with_token:
            return await self.call_with_token("POST", path, params=query, file=part, deadline=deadline)
        return await self.call("POST", path, params=query, file=part, deadline=deadline)

    async def call_with_token(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        file: FilePart | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None,
        attempts: AttemptLog | None = None,
    ) -> dict[str, Any]:
        """``call`` with ``?access_token=``; a token the vendor rejects is invalidated and the call
        retried once with a fresh one. A second rejection is an error, not a loop."""
        if self._tokens is None:
            raise RuntimeError(f"channel {self.channel} has no token manager")
        token = await self._tokens.get(self.account_id, deadline=deadline)
        for attempt in (1, 2):
            try:
                return await self.call(
                    method,
                    path,
                    params={**(params or {}), "access_token": token},
                    json_body=json_body,
                    file=file,
                    deadline=deadline,
                    attempts=attempts,
                )
            except VendorError as error:
                if error.outcome is not VendorOutcome.TOKEN_INVALID or attempt == 2:
                    raise
                log.info(
                    "vendor rejected the access token; refreshing",
                    extra={"channel": self.channel, "account": self.account_id, "errcode": error.errcode},
                )
                trace.get_current_span().add_event("token.rejected", {"notify.vendor.errcode": error.errcode})
                await self._tokens.invalidate(self.account_id, token)
                token = await self._tokens.get(self.account_id, deadline=deadline)
        raise AssertionError("unreachable")

    def unsupported(self, kind: str) -> FailedPrecondition:
        supported = ", ".join(sorted(self.kinds))
        return FailedPrecondition(
            f"message kind {kind!r} is not supported by channel {self.channel} "
            f"(account {self.account_id!r}); it supports: {supported}",
            reason="MESSAGE_KIND_UNSUPPORTED",
            metadata={"channel": self.channel, "kind": kind, "supported": supported},
        )

    @staticmethod
    def raise_violations(violations: Iterable[Violation]) -> None:
        found = list(violations)
        if found:
            raise InvalidArgument(found)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        file: FilePart | None = None,
        deadline: float | None,
        attempts: AttemptLog | None = None,
    ) -> dict[str, Any]:
        """Calls the vendor with retries, returns the JSON answer when errcode is 0, else raises.

        Retries what was not processed (errcode "busy", HTTP 429/503, a connection never made)
        always; what may have been (a timeout or dropped connection after the request was
        written, any other 5xx) only where the account resends ambiguous messages. No attempt
        starts with less than the account's ``min_attempt_seconds`` left before the deadline.
        ``attempts`` (for calls that deliver a message) gets one entry per attempt.
        """
        try:
            return await self._call(method, path, params, json_body, file, deadline, attempts or AttemptLog())
        except VendorError as error:
            vendor_errors.add(1, {"notify.channel": self.channel, "notify.vendor.errcode": error.errcode})
            raise

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        file: FilePart | None,
        deadline: float | None,
        attempts: AttemptLog,
    ) -> dict[str, Any]:
        url = self.base_url + path
        tries = self.settings.max_attempts
        for number in range(1, tries + 1):
            timeout = self._timeout(deadline)
            if timeout is None:
                if number == 1:
                    raise DeadlineExceeded(
                        f"the call's deadline leaves less than {self.settings.min_attempt_seconds:g} s "
                        f"for the {self.vendor_name}: nothing was sent",
                        reason="DEADLINE_TOO_SHORT",
                    )
                raise self._unavailable(
                    f"{self.vendor_name} {path}: no time left to retry after {attempts.last_detail}",
                    "VENDOR_UNAVAILABLE",
                )
            attempt = attempts.begin()
            # One client span per attempt, the HTTP request's: the transport records the HTTP
            # facts on it, and the vendor's verdict (an errcode) is added here before it ends.
            span = tracer.start_span(f"vendor {self.channel} {path}", kind=SpanKind.CLIENT)
            if span.is_recording():
                span.set_attributes(
                    {
                        "notify.channel": self.channel,
                        "notify.account": self.account_id,
                        "notify.vendor.path": path,
                    }
                )
            try:
                reply = await self._timed_request(
                    method, url, path, params, json_body, file, timeout, attempt, span
                )
            except TransportError as exc:
                kind = "VENDOR_TIMEOUT" if isinstance(exc, TransportTimeout) else "VENDOR_UNREACHABLE"
                attempt.failed_in_transit(str(exc) if exc.sent else f"{exc} (request not sent)")
                # A label has few values: the kind of failure, never the exception's text.
                reason = "timeout" if isinstance(exc, TransportTimeout) else "unreachable"
                if (exc.sent and not self.resends_ambiguous) or number == tries:
                    raise self._unavailable(f"{self.vendor_name} {path}: {exc}", kind) from None
            except BaseException as exc:
                attempts.settle_in_flight("cancelled while waiting for the vendor")
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            else:
                answer = _vendor_answer(reply)
                if answer is None:
                    status = reply.status
                    if status in _NOT_PROCESSED_HTTP or 400 <= status < 500:
                        attempt.settle(REFUSED, f"HTTP {status}", http_status=status)
                        may_retry = status in _NOT_PROCESSED_HTTP
                    else:
                        attempt.settle(AMBIGUOUS, f"HTTP {status}", http_status=status)
                        may_retry = self.resends_ambiguous
                    reason = f"http_{status}"
                    if not may_retry or number == tries:
                        raise self._unavailable(
                            f"{self.vendor_name} {path} answered HTTP {reply.status}",
                            "VENDOR_HTTP_ERROR",
                            http_status=reply.status,
                        )
                else:
                    errcode = _errcode(answer)
                    if errcode == 0:
                        attempt.settle(ACCEPTED, "accepted", http_status=reply.status)
                        return answer
                    errmsg = redact(str(answer.get("errmsg", "")))
                    attempt.settle(
                        REFUSED,
                        f"errcode {errcode}",
                        http_status=reply.status,
                        errcode=errcode,
                        errmsg=errmsg,
                    )
                    span.set_attribute("notify.vendor.errcode", errcode)
                    span.set_status(Status(StatusCode.ERROR, f"vendor errcode {errcode}"))
                    outcome = self.classify(errcode, answer)
                    if outcome is not VendorOutcome.RETRY or number == tries:
                        raise self.vendor_error(outcome, errcode, errmsg)
                    reason = f"errcode_{errcode}"
            finally:
                span.end()
            delay = _backoff(number)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise self._unavailable(
                    f"{self.vendor_name} {path}: no time left to retry after {attempt.detail}",
                    "VENDOR_UNAVAILABLE",
                )
            log.info(
                "vendor retry",
                extra={"channel": self.channel, "account": self.account_id, "reason": attempt.detail},
            )
            trace.get_current_span().add_event(
                "vendor.retry", {"attempt": number, "reason": attempt.detail, "delay_seconds": delay}
            )
            vendor_retries.add(1, {"notify.channel": self.channel, "reason": reason})
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _timed_request(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        file: FilePart | None,
        timeout: float,
        attempt: Attempt,
        span: trace.Span,
    ) -> VendorReply:
        """One attempt, its latency recorded per channel and outcome (HTTP status, timeout, error)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = await self.transport.request(
                method,
                url,
                params=params,
                json_body=json_body,
                file=file,
                timeout=timeout,
                attempt=attempt,
                span=span,
            )
            outcome = str(reply.status)
            return reply
        except TransportTimeout:
            outcome = "timeout"
            raise
        finally:
            vendor_duration.record(
                time.perf_counter() - started,
                {"notify.channel": self.channel, "notify.vendor.path": path, "outcome": outcome},
                (self.channel, path, outcome),
                # An exemplar names the attempt's span (sampled only), not the server span around it.
                context=trace.set_span_in_context(span) if span.is_recording() else None,
            )

    def classify(self, errcode: int, answer: Mapping[str, Any]) -> VendorOutcome:
        return self.errors.classify(errcode, str(answer.get("errmsg", "")))

    def vendor_error(self, outcome: VendorOutcome, errcode: int, errmsg: str) -> VendorError:
        retry_after = self.errors.rate_limit_retry_after if outcome is VendorOutcome.RATE_LIMITED else None
        return VendorError(
            f"{self.vendor_name} refused the request for account {self.account_id!r}: "
            f"errcode {errcode}: {errmsg}",
            outcome=outcome,
            channel=self.channel,
            account=self.account_id,
            errcode=errcode,
            errmsg=errmsg,
            retry_after=retry_after,
        )

    def _unavailable(self, message: str, reason: str, http_status: int | None = None) -> VendorUnavailable:
        return VendorUnavailable(
            f"{message} (account {self.account_id!r})",
            reason=reason,
            channel=self.channel,
            account=self.account_id,
            http_status=http_status,
        )

    def _timeout(self, deadline: float | None) -> float | None:
        """This attempt's timeout, or None when the deadline leaves too little to start one."""
        timeout = self.settings.timeout_seconds
        if deadline is None:
            return timeout
        left = deadline - time.monotonic()
        if left < self.settings.min_attempt_seconds:
            return None
        return min(timeout, left)


def _vendor_answer(reply: VendorReply) -> dict[str, Any] | None:
    """The vendor's JSON answer, or None when the reply is judged by its HTTP status alone: a 5xx,
    a body that is not JSON, or a 4xx without an errcode (a proxy's or firewall's error page, even
    in JSON), which is never taken for success."""
    if reply.data is None or reply.status >= 500:
        return None
    if reply.status >= 400 and _errcode(reply.data) == 0:
        return None
    return reply.data


def _errcode(answer: Mapping[str, Any]) -> int:
    # Some answers omit errcode on success; a non-numeric one is never taken as success.
    value = answer.get("errcode", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _expires_in(value: Any) -> float:
    """gettoken's ``expires_in``: 7200 when the answer has none (docs/vendors.md, WeCom application
    messages); 0 or less means the token expires now (used at once, never kept), not "the default".
    A day at most: an absurd value must not keep a token (and its Redis key) forever."""
    if value is None or isinstance(value, bool):
        return DEFAULT_TOKEN_LIFETIME
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME
    return min(seconds, DEFAULT_TOKEN_LIFETIME * 12) if math.isfinite(seconds) else DEFAULT_TOKEN_LIFETIME


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
