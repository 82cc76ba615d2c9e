"""The message state machine: which state may follow which, and which states are final.

Every path that changes a message (sync Send, Recall, the delivery-report poller, a lease that
ran out) goes through ``advance``, so no path can move a message backwards or turn UNKNOWN into
FAILED by guessing.
"""

from __future__ import annotations

import time
from typing import TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp

from generated.notify.v1 import notification_service_pb2 as pb

State: TypeAlias = pb.MessageState.ValueType

ACCEPTED = pb.MESSAGE_STATE_ACCEPTED
SENDING = pb.MESSAGE_STATE_SENDING
SENT = pb.MESSAGE_STATE_SENT
DELIVERED = pb.MESSAGE_STATE_DELIVERED
FAILED = pb.MESSAGE_STATE_FAILED
UNKNOWN = pb.MESSAGE_STATE_UNKNOWN
RECALLED = pb.MESSAGE_STATE_RECALLED
EXPIRED = pb.MESSAGE_STATE_EXPIRED

_NEXT: dict[State, frozenset[State]] = {
    ACCEPTED: frozenset({SENDING, FAILED, EXPIRED}),
    # Back to ACCEPTED only for a queued message whose attempts were all refused or never left:
    # nothing reached the vendor, and a worker tries again after a backoff.
    SENDING: frozenset({SENT, FAILED, UNKNOWN, ACCEPTED}),
    SENT: frozenset({DELIVERED, RECALLED}),
    DELIVERED: frozenset({RECALLED}),
    # UNKNOWN is left only by a resend (an account whose vendor de-duplicates) or by a late answer
    # that proves it was sent (a Send whose lease ran out while it waited for the vendor).
    UNKNOWN: frozenset({SENDING, SENT}),
    FAILED: frozenset(),
    RECALLED: frozenset(),
    EXPIRED: frozenset(),
}

#: States in which a vendor call may be in flight or about to start: an owner holds a lease on them.
OWNED = frozenset({ACCEPTED, SENDING})


class IllegalTransition(RuntimeError):
    """A bug: some path tried to move a message where the state machine does not go."""


def may_follow(current: State, new: State) -> bool:
    return new in _NEXT.get(current, frozenset())


def timestamp(at: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def advance(
    record: pb.MessageRecord, state: State, reason: str, *, at: float | None = None, final: bool | None = None
) -> None:
    """Moves the record to ``state``, appending the change to its history.

    ``final`` defaults to "not ACCEPTED or SENDING"; a SENT message whose vendor reports delivery
    later (DingTalk work notifications) passes False until the report is in.
    """
    if not may_follow(record.state, state):
        raise IllegalTransition(
            f"message {record.message_id}: {state_name(record.state)} cannot become {state_name(state)}"
        )
    stamp = timestamp(time.time() if at is None else at)
    record.state = state
    record.update_time.CopyFrom(stamp)
    record.history.add(state=state, time=stamp, reason=reason)
    record.final = state not in OWNED if final is None else final


def abandon(record: pb.MessageRecord, *, before_call: str, during_call: str) -> None:
    """A Send that ended without recording its outcome (its replica died, its call was cancelled):
    ACCEPTED becomes FAILED, since no vendor call had started; SENDING becomes UNKNOWN, since one
    may have reached the vendor. Any other state already holds the outcome and stands. A queued
    message stays ACCEPTED: its job is still in the queue, and another worker reclaims it."""
    if record.state == ACCEPTED and record.delivery == pb.DELIVERY_MODE_QUEUED:
        return
    if record.state == ACCEPTED:
        advance(record, FAILED, before_call)
    elif record.state == SENDING:
        advance(record, UNKNOWN, during_call)


def not_sent(record: pb.MessageRecord, reason: str) -> None:
    """A Send that knows no vendor call started: ACCEPTED, or SENDING written ahead of the call
    (gateway.store.admission), becomes FAILED. Any other state stands: a resend of an UNKNOWN
    message that never started stays UNKNOWN, since the first attempt may have been delivered."""
    if record.state in (ACCEPTED, SENDING):
        advance(record, FAILED, reason)


def state_name(state: State) -> str:
    return pb.MessageState.Name(state)
