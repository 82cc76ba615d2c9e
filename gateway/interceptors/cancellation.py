"""Which status a call ended with when it was cancelled rather than answered.

grpc.aio cancels the handler when the caller's deadline passes or the caller goes away; the
handler then sees CancelledError and no status of its own. Logs and metrics say which it was,
DEADLINE_EXCEEDED or CANCELLED, instead of UNKNOWN.
"""

from __future__ import annotations

import grpc

#: The caller's own timer usually ends a call before ours does: our deadline is the caller's
#: timeout counted from when the call arrived, so the caller's cancel can reach us with a little of
#: our time left (seen: a busy CI run logging CANCELLED for a Send whose caller got DEADLINE_EXCEEDED).
#: A cancel this close to the deadline is the deadline's.
DEADLINE_SKEW_SECONDS = 0.05


def deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


def cancelled_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SKEW_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
