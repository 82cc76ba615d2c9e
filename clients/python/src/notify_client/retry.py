"""When a failed call is worth another attempt, and how long to wait first.

Only failures that say "try again" are retried: UNAVAILABLE (the gateway or the vendor was down or
busy; nothing was delivered, or the idempotency key makes a repeat harmless: a Send whose outcome
was ambiguous is answered with its record's state, MESSAGE_STATE_UNKNOWN, not sent again; reads
are safe to repeat anyway), RESOURCE_EXHAUSTED
(after the delay the server's RetryInfo asks for, never sooner) and ABORTED for an idempotency
key still in flight. Everything else is the caller's to fix and is raised at once. Attempts and
total time are both bounded, so a retry loop can never outlive what the caller budgeted: a server
that asks for a 60 s pause when only 20 s are left gets a RateLimitedError carrying that delay.

The decision is a pure function of the error, the attempt number and the time spent, shared by the
async and the sync client, so both retry exactly alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from notify_client.errors import NotifyError

_IN_FLIGHT = "IDEMPOTENCY_KEY_IN_PROGRESS"


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to ``RetryPolicy.on_retry`` before each retry (for logs and metrics)."""

    method: str  # "Send", "Recall", "UploadMedia", "GetMessage", "ListMessages" or "WatchMessage"
    attempt: int  # the attempt that failed, from 1
    delay: float  # seconds the client now waits
    error: NotifyError  # why
    idempotency_key: str | None  # the key every attempt of this Send carries (None for other calls)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for retrying one logical call.

    Attributes:
        max_attempts: attempts in all, the first included (1 disables retries).
        initial_backoff, multiplier, max_backoff: exponential backoff for UNAVAILABLE and ABORTED,
            in seconds, with jitter (each wait is between half and all of the computed one) so that
            many clients do not retry in step.
        max_total: seconds from the first attempt's start after which no retry starts: a retry whose
            wait would end later is not made and the last error is raised. (The attempt running at
            that moment is bounded by its own deadline, so a call ends within max_total plus one
            per-call timeout.)
        on_retry: called before each wait, with what failed and how long the client waits.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 5.0
    max_total: float = 20.0
    on_retry: Callable[[RetryEvent], None] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.max_total < 0:
            raise ValueError("backoff and max_total must be >= 0 seconds")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (from 1), jittered."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return ceiling * (0.5 + (rng or random).random() / 2)

    def delay_before_retry(
        self, error: NotifyError, attempt: int, elapsed: float, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when the error should be raised."""
        if attempt >= self.max_attempts:
            return None
        if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.retry_delay is not None:
            # The server knows when a slot frees: never sooner; a little later so that callers told
            # the same delay do not all come back in the same instant.
            delay = error.retry_delay + min(1.0, 0.1 * error.retry_delay) * (rng or random).random()
        elif error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) or (
            error.code == grpc.StatusCode.ABORTED and error.reason == _IN_FLIGHT
        ):
            delay = self.backoff(attempt, rng)
        else:
            return None
        if elapsed + delay > self.max_total:
            return None
        return delay


#: Retries off: one attempt, errors raised as they come.
NO_RETRY = RetryPolicy(max_attempts=1)
