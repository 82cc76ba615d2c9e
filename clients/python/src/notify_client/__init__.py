"""Clients for notify-gateway (notify.v1.NotificationService): async and sync, typed, with retries.

    from notify_client import AsyncNotifyClient, NotifyClient, pb

    async with AsyncNotifyClient("gateway:50051", api_key, root_certificates="ca.pem") as client:
        sent = await client.send_text("ops-dingtalk", "deploy finished")

``pb`` is the generated message module (SendRequest, Recipients, TextCard, MessageRecord...), for raw
calls and for the fields the helpers take; errors are in ``notify_client.errors``.
"""

from notify_client_proto import notification_service_pb2 as pb

from notify_client._version import __version__
from notify_client.aio import AsyncNotifyClient
from notify_client.errors import (
    AbortedError,
    CallCancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    NotifyError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    VendorError,
)
from notify_client.retry import NO_RETRY, RetryEvent, RetryPolicy
from notify_client.sync import NotifyClient

__all__ = [
    "NO_RETRY",
    "AbortedError",
    "AsyncNotifyClient",
    "CallCancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotifyClient",
    "NotifyError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryEvent",
    "RetryPolicy",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VendorError",
    "__version__",
    "pb",
]
