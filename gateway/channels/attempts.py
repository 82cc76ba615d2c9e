"""What each vendor call made to deliver a message came to, as the wire saw it.

The one question the gateway must never guess at is "could the vendor have acted on it?". An
attempt is NOT_SENT only when no request byte was handed to a connection (connect refused, no
time left to start), REFUSED when the vendor answered with an error, ACCEPTED when it answered
errcode 0, and AMBIGUOUS otherwise: a timeout or dropped connection after the request was
written, an HTTP 5xx that a proxy may have sent after the vendor acted, a cancelled call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeAlias

from gateway.lifecycle.states import timestamp
from generated.notify.v1 import notification_service_pb2 as pb

Outcome: TypeAlias = pb.DeliveryAttempt.Outcome.ValueType
ACCEPTED = pb.DeliveryAttempt.OUTCOME_ACCEPTED
REFUSED = pb.DeliveryAttempt.OUTCOME_REFUSED
NOT_SENT = pb.DeliveryAttempt.OUTCOME_NOT_SENT
AMBIGUOUS = pb.DeliveryAttempt.OUTCOME_AMBIGUOUS
IN_FLIGHT = pb.DeliveryAttempt.OUTCOME_UNSPECIFIED


@dataclass(slots=True)
class Attempt:
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    written: bool = False  # the request was handed to a connection: the vendor may act on it
    outcome: Outcome = IN_FLIGHT
    http_status: int = 0
    errcode: int = 0
    errmsg: str = ""  # redacted
    detail: str = ""
    duration_ms: float = 0.0

    def settle(
        self, outcome: Outcome, detail: str = "", *, http_status: int = 0, errcode: int = 0, errmsg: str = ""
    ) -> None:
        self.outcome = outcome
        self.detail = detail
        self.http_status = http_status
        self.errcode = errcode
        self.errmsg = errmsg
        self.duration_ms = round((time.perf_counter() - self.started) * 1000, 2)

    def failed_in_transit(self, detail: str) -> None:
        """No answer: ambiguous if the request was written, else nothing reached the vendor."""
        self.settle(AMBIGUOUS if self.written else NOT_SENT, detail)

    def to_proto(self) -> pb.DeliveryAttempt:
        return pb.DeliveryAttempt(
            start_time=timestamp(self.started_at),
            outcome=self.outcome,
            http_status=self.http_status,
            vendor_errcode=self.errcode,
            vendor_errmsg=self.errmsg,
            detail=self.detail,
            duration_ms=self.duration_ms,
        )


@dataclass(slots=True)
class AttemptLog:
    """The attempts of one delivery, in order; the deliver step turns them into the record's state."""

    attempts: list[Attempt] = field(default_factory=list)

    def begin(self) -> Attempt:
        attempt = Attempt()
        self.attempts.append(attempt)
        return attempt

    def settle_in_flight(self, detail: str) -> None:
        """The call was cancelled: an attempt still waiting for its answer may have been delivered."""
        for attempt in self.attempts:
            if attempt.outcome == IN_FLIGHT:
                attempt.failed_in_transit(detail)

    @property
    def accepted(self) -> bool:
        return any(a.outcome == ACCEPTED for a in self.attempts)

    @property
    def ambiguous(self) -> bool:
        """Some attempt may have reached the vendor and we do not know what it did."""
        return any(a.outcome == AMBIGUOUS or (a.outcome == IN_FLIGHT and a.written) for a in self.attempts)

    @property
    def last_detail(self) -> str:
        return self.attempts[-1].detail if self.attempts else ""
