"""What a queue worker does with a message after a try: retry it later, resend it, or give up.

Kept apart from the worker's plumbing (streams, leases, shutdown) so the rules read in one place:
nothing that may have reached the vendor is sent again unless the vendor drops repeats; what
cannot have reached it is retried with backoff until the message's expiry; a refusal that will
not change is final at once.
"""

from __future__ import annotations

import asyncio
import random
import time

from gateway.channels.attempts import AttemptLog
from gateway.channels.base import ChannelAdapter
from gateway.config import QueueSettings
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    ResourceExhausted,
    Unavailable,
    VendorError,
    VendorOutcome,
)
from gateway.lifecycle.ledger import Mutation, busy
from gateway.lifecycle.outcomes import failed, retry_later
from gateway.lifecycle.states import ACCEPTED, UNKNOWN, State, advance
from gateway.store.records import StoredRecord
from generated.notify.v1 import notification_service_pb2 as pb

_RETRY_OUTCOMES = frozenset({VendorOutcome.RETRY, VendorOutcome.RATE_LIMITED, VendorOutcome.TOKEN_INVALID})


class RetryPolicy:
    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings

    def after_failure(
        self,
        adapter: ChannelAdapter,
        exc: BaseException,
        attempts: AttemptLog,
        *,
        state: State,
        expires: float,
        tries: int,
        resend: bool,
    ) -> tuple[Mutation, float]:
        """The record change a failed try ends with, and when to try again if it is not final."""
        why = exc.message if isinstance(exc, GatewayError) else "the worker stopped during the delivery"
        if state == ACCEPTED:  # nothing was sent (preparing or uploading failed)
            attempts = AttemptLog()
        delay = self.backoff(tries, exc)
        out_of_time = time.time() + delay >= expires
        if attempts.ambiguous or resend:
            # It may have reached the vendor: resent only where the vendor drops repeats (msgUuid),
            # by this worker after the backoff or, if it is stopping, by the one that reclaims the job.
            again = adapter.resends_ambiguous and not out_of_time
            return unknown(attempts, why, final=not again), delay
        if isinstance(exc, asyncio.CancelledError):
            return retry_later(attempts, why, expired=False), 0.0
        if retryable(exc):
            return retry_later(attempts, why, expired=out_of_time), delay
        if state == ACCEPTED:
            return refuse(why), 0.0
        return failed(pb.MESSAGE_STATE_FAILED, attempts, exc), 0.0

    def backoff(self, tries: int, exc: BaseException) -> float:
        """Exponential with full jitter, and never sooner than the vendor asked (RetryInfo)."""
        cap = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2 ** (tries - 1))
        delay = random.uniform(
            self.settings.retry_base_seconds / 2, max(cap, self.settings.retry_base_seconds)
        )
        asked = getattr(exc, "retry_after", None)
        return max(delay, float(asked)) if asked else delay


def deliverable(stored: StoredRecord | None, adapter: ChannelAdapter) -> bool:
    """Whether a worker should try this message now: it waits in the queue, or it is UNKNOWN (its
    worker died in the vendor call, or the call was ambiguous) on an account whose vendor drops
    repeats, before its expiry. A live owner elsewhere means hands off."""
    if stored is None or busy(stored):
        return False
    record = stored.record
    if record.state == ACCEPTED:
        return True
    return (
        record.state == UNKNOWN
        and adapter.resends_ambiguous
        and record.delivery == pb.DELIVERY_MODE_QUEUED
        and record.expire_time.ToNanoseconds() > time.time() * 1e9
    )


def retryable(exc: BaseException) -> bool:
    """Refusals that say "not now" rather than "never": the vendor or the store busy or down."""
    if isinstance(exc, VendorError):
        return exc.outcome in _RETRY_OUTCOMES
    return isinstance(exc, Unavailable | DeadlineExceeded | ResourceExhausted)


def unknown(attempts: AttemptLog, why: str, *, final: bool) -> Mutation:
    def mark(record: pb.MessageRecord) -> None:
        record.attempts.extend(a.to_proto() for a in attempts.attempts)
        reason = f"may have been delivered: {why}"
        if not final:
            reason += "; will resend, the vendor drops a repeat"
        if record.state == UNKNOWN:
            record.final = final
            record.history.add(state=UNKNOWN, time=record.update_time, reason=reason)
        else:
            advance(record, UNKNOWN, reason, final=final)

    return mark


def refuse(why: str) -> Mutation:
    def mark(record: pb.MessageRecord) -> None:
        advance(record, pb.MESSAGE_STATE_FAILED, f"not sent: {why}")

    return mark
