"""Typed exceptions for every failure the gateway reports, with its rich details decoded.

The gateway answers a failure with a gRPC status plus ``google.rpc`` details in the
``grpc-status-details-bin`` trailer. Callers should not have to parse that trailer, so each status
becomes its own exception class (catch ``InvalidArgumentError``, ``RateLimitedError``...) and the
details become attributes: ``violations`` (BadRequest), ``reason``/``metadata`` (ErrorInfo),
``retry_delay`` (RetryInfo), and the vendor's ``vendor_errcode``/``vendor_errmsg`` when WeCom or
DingTalk refused. A refusal that came from the vendor is also a ``VendorError``, whatever its
status, so ``except VendorError`` catches every "the vendor said no" without listing statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from notify_client_proto import notification_service_pb2 as pb

STATUS_DETAILS_KEY = "grpc-status-details-bin"
VENDOR_REASON_PREFIX = "VENDOR_"

__all__ = [
    "AbortedError",
    "CallCancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotifyError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VendorError",
    "error_from_status",
]


class NotifyError(Exception):
    """A call the gateway (or the transport to it) failed; the base of every error raised here.

    Attributes:
        code: the gRPC status code.
        message: the status message, meant for people.
        reason: ErrorInfo.reason, a stable machine-readable cause (``ACCOUNT_NOT_FOUND``,
            ``VENDOR_RATE_LIMITED``...), or "" when the status carried none.
        domain: ErrorInfo.domain ("notify-gateway").
        metadata: ErrorInfo.metadata (account, channel, vendor_errcode...).
        violations: BadRequest field violations, field path -> description.
        retry_delay: RetryInfo.retry_delay in seconds: when it is worth trying again.
        vendor_errcode / vendor_errmsg: the vendor's own error, when the vendor refused.
        idempotency_key: the key the failed Send carried, so it can be retried later without
            risking a second delivery (None for other calls).
        message_id / message_state: for a Send whose outcome is ambiguous, the message the
            gateway recorded and where it stands (ErrorInfo metadata); see the properties.
        status: the decoded google.rpc.Status, for details this class does not lift out.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
        status: status_pb2.Status | None = None,
        debug_error_string: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: dict[str, str] = dict(violations or {})
        self.retry_delay = retry_delay
        self.status = status
        self.debug_error_string = debug_error_string
        self.idempotency_key: str | None = None

    @property
    def vendor_errcode(self) -> int | None:
        """The vendor's errcode (WeCom/DingTalk), when the vendor refused the request."""
        raw = self.metadata.get("vendor_errcode")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return None

    @property
    def vendor_errmsg(self) -> str | None:
        """The vendor's errmsg, credentials already removed by the gateway."""
        return self.metadata.get("vendor_errmsg")

    @property
    def message_id(self) -> str | None:
        """The message_id the error concerns (ErrorInfo metadata), when it names one.

        It matters most after a Send whose outcome is ambiguous (the vendor timed out after the
        request was written, the connection dropped): the call fails UNAVAILABLE or
        DEADLINE_EXCEEDED, yet the message exists and may have been delivered, and this id finds
        it with get_message or watch_message.
        """
        return self.metadata.get("message_id") or None

    @property
    def message_state(self) -> pb.MessageState.ValueType | None:
        """Where that message stands (``pb.MESSAGE_STATE_UNKNOWN``: it may have been delivered).

        None when the error names no state, or one newer than this client knows (the name is still
        in ``metadata["message_state"]``). An UNKNOWN message is not sent again by a retry with the
        same idempotency key: the retry answers OK, ``duplicate=True``, state UNKNOWN.
        """
        name = self.metadata.get("message_state")
        if not name or name not in pb.MessageState.DESCRIPTOR.values_by_name:
            return None
        return pb.MessageState.Value(name)

    @property
    def is_vendor_error(self) -> bool:
        return self.reason.startswith(VENDOR_REASON_PREFIX) or "vendor_errcode" in self.metadata

    def __str__(self) -> str:
        name = self.code.name if isinstance(self.code, grpc.StatusCode) else str(self.code)
        text = f"{name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        return text


class InvalidArgumentError(NotifyError):
    """The request is wrong; ``violations`` names each field and why. Fix it: never retried."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(NotifyError):
    """The account or message_id is unknown to the gateway (another tenant's message_id included:
    the gateway does not say whether a message it will not show you exists)."""

    default_code = grpc.StatusCode.NOT_FOUND


class PermissionDeniedError(NotifyError):
    """The tenant may not use the account, or the vendor refuses the caller (IP, permission)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(NotifyError):
    """The API key is missing or not valid."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPreconditionError(NotifyError):
    """The channel cannot do this (message kind, recall window) or the account is misconfigured."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class RateLimitedError(NotifyError):
    """RESOURCE_EXHAUSTED: a rate limit or quota; ``retry_delay`` says when a retry can succeed.

    Raised once the client's own retries (bounded by its RetryPolicy) are spent or the server's
    delay does not fit in them.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(NotifyError):
    """The gateway or the vendor could not be reached, or kept failing, after the retries allowed.

    For a Send, ``message_state`` tells the two cases apart: None or FAILED, nothing was delivered;
    ``pb.MESSAGE_STATE_UNKNOWN``, the vendor may have delivered it (``message_id`` finds it).
    """

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(NotifyError):
    """The call's deadline passed. A Send may still have been delivered: retry it with the same
    ``idempotency_key`` (on the error) to learn its outcome without delivering it twice. A watch
    raises it when its deadline comes before the message reaches a final state."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class AbortedError(NotifyError):
    """A concurrent call holds what this one needs (the same idempotency key is in flight)."""

    default_code = grpc.StatusCode.ABORTED


class UnimplementedError(NotifyError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class CallCancelledError(NotifyError):
    """The call was cancelled (named so as not to shadow asyncio.CancelledError)."""

    default_code = grpc.StatusCode.CANCELLED


class InternalError(NotifyError):
    """A failure on the gateway's side (INTERNAL, UNKNOWN, DATA_LOSS): a bug to report, not to fix."""

    default_code = grpc.StatusCode.INTERNAL


class VendorError(NotifyError):
    """Marker base: WeCom or DingTalk refused. Concrete errors are also of their status's class."""


class VendorInvalidArgumentError(InvalidArgumentError, VendorError):
    pass


class VendorPermissionDeniedError(PermissionDeniedError, VendorError):
    pass


class VendorFailedPreconditionError(FailedPreconditionError, VendorError):
    pass


class VendorRateLimitedError(RateLimitedError, VendorError):
    pass


class VendorUnavailableError(UnavailableError, VendorError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[NotifyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}

_VENDOR_BY_CODE: dict[grpc.StatusCode, type[NotifyError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: VendorInvalidArgumentError,
    grpc.StatusCode.PERMISSION_DENIED: VendorPermissionDeniedError,
    grpc.StatusCode.FAILED_PRECONDITION: VendorFailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: VendorRateLimitedError,
    grpc.StatusCode.UNAVAILABLE: VendorUnavailableError,
}


def error_from_status(
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: Sequence[tuple[str, Any]] | None,
    debug_error_string: str | None = None,
) -> NotifyError:
    """The typed exception for a failed call: its status plus the details from its trailers."""
    status = _status_from_trailers(trailing_metadata)
    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: dict[str, str] = {}
    retry_delay: float | None = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for violation in bad.field_violations:
                    # Two violations of one field are kept, joined, rather than one hiding the other.
                    seen = violations.get(violation.field)
                    violations[violation.field] = (
                        violation.description if seen is None else f"{seen}; {violation.description}"
                    )
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    vendor = reason.startswith(VENDOR_REASON_PREFIX) or "vendor_errcode" in metadata
    cls = (_VENDOR_BY_CODE.get(code) if vendor else None) or _BY_CODE.get(code, NotifyError)
    return cls(
        message,
        code=code,
        reason=reason,
        domain=domain,
        metadata=metadata,
        violations=violations,
        retry_delay=retry_delay,
        status=status,
        debug_error_string=debug_error_string,
    )


def _status_from_trailers(trailing_metadata: Sequence[tuple[str, Any]] | None) -> status_pb2.Status | None:
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY:
            continue
        try:
            return status_pb2.Status.FromString(value if isinstance(value, bytes) else bytes(value))
        except (DecodeError, TypeError):
            return None  # a malformed trailer must not hide the status itself
    return None


def error_from_rpc_error(error: grpc.RpcError) -> NotifyError:
    """Converts what grpc raised (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    call: Any = error  # both carry the grpc.Call accessors; grpc ships no type hints
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = (call.details() if hasattr(call, "details") else None) or ""
    trailers = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    debug = call.debug_error_string() if hasattr(call, "debug_error_string") else None
    return error_from_status(code, details, trailers, debug)
