"""The contract every channel adapter fulfils, and the vendor-call machinery they share.

An adapter declares its facts as class attributes (channel name, settings model, message kinds,
error table, retry safety) and implements two things: ``prepare`` (request -> vendor JSON, or
field violations; pure) and ``deliver`` (send the prepared payload). Calling the vendor,
retrying, reading errcode and mapping it to a typed error happen here, once for all channels.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from gateway.channels.transport import FilePart, TransportError, TransportTimeout, VendorTransport
from gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    VendorError,
    VendorOutcome,
    VendorUnavailable,
    Violation,
)
from gateway.redaction import redact
from gateway.tokens.manager import TokenManager
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.vendor")

_RETRYABLE_HTTP = frozenset({502, 503, 504})


class AccountSettings(BaseModel):
    """Settings every account has; a channel module subclasses it with its credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    base_url: HttpUrl | None = None  # None: the vendor's real endpoint; the sandbox in development
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=10)

    def secret_values(self) -> list[str]:
        """Every credential in these settings, so they can be kept out of logs and errors."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A recipient the vendor refused while delivering to the others."""

    kind: int  # pb.RecipientKind
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What an adapter reports back, the same shape for every vendor (Novu's provider contract)."""

    state: int  # pb.MessageState
    vendor_message_id: str = ""
    rejected: tuple[Rejected, ...] = ()


@dataclass(slots=True)
class Outgoing:
    """A request turned into the vendor's JSON, ready to send; built before any I/O."""

    kind: str
    payload: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorTable:
    """A vendor's errcodes and what each means (vendor-apis.md); codes not listed are UNKNOWN."""

    codes: Mapping[int, VendorOutcome]
    rate_limit_retry_after: float = 60.0

    def classify(self, errcode: int, errmsg: str) -> VendorOutcome:
        return self.codes.get(errcode, VendorOutcome.UNKNOWN)


class ChannelAdapter(ABC):
    """One vendor channel for one configured account."""

    channel: ClassVar[str]
    Settings: ClassVar[type[AccountSettings]]
    vendor_name: ClassVar[str]  # how error messages name the vendor channel, e.g. "WeCom robot"
    default_base_url: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # Message.kind oneof names this channel delivers
    recallable: ClassVar[bool] = False
    errors: ClassVar[ErrorTable]
    # Whether a request that may have reached the vendor can be sent again without a double
    # delivery (true where the vendor de-duplicates, e.g. DingTalk's msgUuid).
    retry_is_idempotent: ClassVar[bool] = False

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
        if self.uses_token:
            if tokens is None:
                raise ValueError(f"channel {self.channel} needs a token manager")
            tokens.register(account_id, self.fetch_token)

    #: Whether calls carry an access token from ``fetch_token`` (application channels do, robots don't).
    uses_token: ClassVar[bool] = False

    # -- what each channel implements -------------------------------------------------------

    @abstractmethod
    def prepare(self, request: pb.SendRequest, message_id: str) -> Outgoing:
        """Builds the vendor payload; raises InvalidArgument listing every violation. No I/O."""

    @abstractmethod
    async def deliver(self, outgoing: Outgoing, *, deadline: float | None) -> Delivery:
        """Sends a prepared payload."""

    async def fetch_token(self, deadline: float | None) -> tuple[str, float]:
        """Asks the vendor for a new access token: (token, expires_in seconds)."""
        raise NotImplementedError(f"channel {self.channel} uses no access token")

    # -- shared by every channel ------------------------------------------------------------

    async def call_with_token(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        file: FilePart | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None,
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
                )
            except VendorError as error:
                if error.outcome is not VendorOutcome.TOKEN_INVALID or attempt == 2:
                    raise
                log.info(
                    "vendor rejected the access token; refreshing",
                    extra={"channel": self.channel, "account": self.account_id, "errcode": error.errcode},
                )
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
    ) -> dict[str, Any]:
        """Calls the vendor with retries, returns the JSON answer when errcode is 0, else raises.

        Retries: errcode "busy", HTTP 502/503/504 and connection failures always (nothing was
        delivered); timeouts and HTTP 500 only where the channel is idempotent. Never past the
        caller's deadline.
        """
        url = self.base_url + path
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            timeout = self._timeout(deadline)
            retry_reason: str
            try:
                reply = await self.transport.request(
                    method, url, params=params, json_body=json_body, file=file, timeout=timeout
                )
            except TransportError as exc:
                kind = "VENDOR_TIMEOUT" if isinstance(exc, TransportTimeout) else "VENDOR_UNREACHABLE"
                if (exc.sent and not self.retry_is_idempotent) or attempt == attempts:
                    raise self._unavailable(f"{self.vendor_name} {path}: {exc}", kind) from None
                retry_reason = kind
            else:
                if reply.status >= 500 or reply.data is None:
                    retryable = reply.status in _RETRYABLE_HTTP or self.retry_is_idempotent
                    if not retryable or attempt == attempts:
                        raise self._unavailable(
                            f"{self.vendor_name} {path} answered HTTP {reply.status}",
                            "VENDOR_HTTP_ERROR",
                            http_status=reply.status,
                        )
                    retry_reason = f"HTTP {reply.status}"
                else:
                    errcode = _errcode(reply.data)
                    if errcode == 0:
                        return reply.data
                    errmsg = redact(str(reply.data.get("errmsg", "")))
                    outcome = self.classify(errcode, reply.data)
                    if outcome is not VendorOutcome.RETRY or attempt == attempts:
                        raise self.vendor_error(outcome, errcode, errmsg)
                    retry_reason = f"errcode {errcode}"
            delay = _backoff(attempt)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise self._unavailable(
                    f"{self.vendor_name} {path}: no time left to retry after {retry_reason}",
                    "VENDOR_UNAVAILABLE",
                )
            log.info(
                "vendor retry",
                extra={"channel": self.channel, "account": self.account_id, "reason": retry_reason},
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

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

    def _timeout(self, deadline: float | None) -> float:
        timeout = self.settings.timeout_seconds
        if deadline is not None:
            timeout = max(0.05, min(timeout, deadline - time.monotonic()))
        return timeout


def _errcode(answer: Mapping[str, Any]) -> int:
    # Some answers omit errcode on success; a non-numeric one is never taken as success.
    value = answer.get("errcode", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
