"""Which status a call ended with when it was cancelled rather than answered.

grpc.aio cancels the handler when the caller's deadline passes or the caller goes away; the
handler then sees CancelledError and no status of its own. Logs and metrics say which it was,
DEADLINE_EXCEEDED or CANCELLED, instead of UNKNOWN.
"""

from __future__ import annotations

import grpc


def cancelled_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
