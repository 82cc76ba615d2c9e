"""The gateway's typed errors and, in one place, the gRPC status each one maps to.

Steps and adapters raise these; only ``interceptors/errors.py`` turns them into a status on the
wire. A message or metadata value never holds a credential: vendor text passes through
``redaction.redact`` before it gets here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2

ERROR_DOMAIN = "notify-gateway"


@dataclass(frozen=True, slots=True)
class Violation:
    """One field of a request that is wrong, named by its path in the request (``message.text.content``)."""

    field: str
    description: str


class GatewayError(Exception):
    """Base of every failure reported to a caller; subclasses fix the status code."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def status_code(self) -> grpc.StatusCode:
        return self.code

    def details(self) -> list[ProtoMessage]:
        """Rich details (google.rpc.*) sent in grpc-status-details-bin."""
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)]


class InvalidArgument(GatewayError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[Violation], message: str | None = None) -> None:
        self.violations = list(violations)
        if message is None:
            message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message)

    def details(self) -> list[ProtoMessage]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ]
        )
        return [bad_request, *super().details()]


class Unauthenticated(GatewayError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(GatewayError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class FailedPrecondition(GatewayError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(GatewayError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after

    def details(self) -> list[ProtoMessage]:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after * 1e9))
        return [error_details_pb2.RetryInfo(retry_delay=delay), *super().details()]


class Unavailable(GatewayError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Aborted(GatewayError):
    """A concurrent request holds what this one needs (the same idempotency key); retry later."""

    code = grpc.StatusCode.ABORTED
    reason = "ABORTED"


class VendorOutcome(enum.Enum):
    """What a vendor's non-zero errcode means for the gateway (docs/vendors.md, the error tables)."""

    RETRY = "retry"  # busy: retry with backoff
    TOKEN_INVALID = "token_invalid"  # drop the token, fetch a new one, retry once
    RATE_LIMITED = "rate_limited"  # back off
    INVALID_REQUEST = "invalid_request"  # the caller's request is wrong
    PERMISSION = "permission"  # the vendor refuses this account or caller IP
    CONFIGURATION = "configuration"  # the account's configuration is wrong (agentid, corpid, signing)
    CREDENTIAL_REVOKED = "credential_revoked"  # the robot key/token no longer exists
    UNKNOWN = "unknown"  # not in the vendor's table: never treated as success


# The one table from vendor outcome to gRPC status (README, "What the API does", lists the statuses).
_VENDOR_STATUS: dict[VendorOutcome, grpc.StatusCode] = {
    VendorOutcome.RETRY: grpc.StatusCode.UNAVAILABLE,
    VendorOutcome.TOKEN_INVALID: grpc.StatusCode.FAILED_PRECONDITION,
    VendorOutcome.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    VendorOutcome.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    VendorOutcome.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
    VendorOutcome.CONFIGURATION: grpc.StatusCode.FAILED_PRECONDITION,
    VendorOutcome.CREDENTIAL_REVOKED: grpc.StatusCode.FAILED_PRECONDITION,
    VendorOutcome.UNKNOWN: grpc.StatusCode.FAILED_PRECONDITION,
}


class VendorError(GatewayError):
    """The vendor answered with a non-zero errcode; ErrorInfo carries it for the caller and the SRE."""

    def __init__(
        self,
        message: str,
        *,
        outcome: VendorOutcome,
        channel: str,
        account: str,
        errcode: int,
        errmsg: str,
        retry_after: float | None = None,
    ) -> None:
        metadata = {
            "channel": channel,
            "account": account,
            "vendor_errcode": str(errcode),
            "vendor_errmsg": errmsg,
        }
        super().__init__(message, reason=f"VENDOR_{outcome.name}", metadata=metadata)
        self.outcome = outcome
        self.errcode = errcode
        self.errmsg = errmsg
        self.retry_after = retry_after

    @property
    def status_code(self) -> grpc.StatusCode:
        return _VENDOR_STATUS[self.outcome]

    def details(self) -> list[ProtoMessage]:
        details = super().details()
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            details.insert(0, error_details_pb2.RetryInfo(retry_delay=delay))
        return details


class VendorUnavailable(Unavailable):
    """The vendor could not be reached, timed out or answered HTTP 5xx, after the retries allowed."""

    def __init__(
        self, message: str, *, reason: str, channel: str, account: str, http_status: int | None = None
    ) -> None:
        metadata = {"channel": channel, "account": account}
        if http_status is not None:
            metadata["http_status"] = str(http_status)
        super().__init__(message, reason=reason, metadata=metadata)
