"""Failures a test asks the sandbox to play, so the gateway's error paths can be exercised."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

Drop = Literal["before", "after"]
"""When a dropped connection is closed: before the vendor handled the request, or after."""
DROPS: Final[tuple[Drop, ...]] = ("before", "after")


@dataclass(frozen=True)
class Fault:
    """How to mishandle one request.

    `http_status` answers that bare HTTP status with `errmsg` (or the status line) as a plain-text
    body, as a vendor's load balancer does; otherwise `errcode` answers HTTP 200 with that vendor
    error; otherwise the request is handled normally. `delay` then holds the answer back (real
    seconds, not sandbox time: its purpose is to make the client's own timeout fire). The request
    is handled and recorded on arrival, so after a client timeout the test sees at once that the
    vendor did act, which is the case DingTalk's msgUuid exists for.

    `drop` closes the connection without a byte of answer, which a client cannot tell apart from
    a network failure: "before" the vendor handled the request (nothing delivered, no state
    changed: a retry is safe) or "after" it (delivered: a retry must not deliver twice). The
    client sees the same error either way, which is the point: the gateway has to be safe in both.
    It combines with nothing else, since no answer is written for the others to shape.

    `sub_code` goes with `errcode`: the answer carries it as `sub_code` (DingTalk's errcode 88 says
    what it means there, e.g. "42001" for an expired token).
    """

    http_status: int | None = None
    delay: float | None = None
    errcode: int | None = None
    errmsg: str | None = None
    drop: Drop | None = None
    sub_code: str | None = None

    def __post_init__(self) -> None:
        if self.drop is not None:
            if self.drop not in DROPS:
                raise ValueError(f"drop must be one of {', '.join(map(repr, DROPS))}")
            if self.http_status is not None or self.delay is not None or self.errcode is not None:
                raise ValueError("drop writes no answer, so it takes no http_status, delay or errcode")
        elif self.http_status is None and self.delay is None and self.errcode is None:
            raise ValueError("a fault needs http_status, delay, errcode or drop")
        # 1xx cannot end a response; 200 is allowed for "HTTP 200 with a body that is not JSON".
        if self.http_status is not None and not 200 <= self.http_status <= 599:
            raise ValueError("http_status must be between 200 and 599")
        if self.delay is not None and not (math.isfinite(self.delay) and self.delay >= 0):
            raise ValueError("delay must be a finite number of seconds >= 0")
        if self.errmsg is not None and self.http_status is None and self.errcode is None:
            raise ValueError("errmsg needs http_status or errcode")
        if self.sub_code is not None and (self.errcode is None or self.http_status is not None):
            raise ValueError("sub_code needs errcode (and no http_status)")


class FaultQueue:
    """Pending faults per (channel, robot or app), played one per request in the order injected.

    A fault may be aimed at one path (e.g. only the app's gettoken); it is then skipped by
    requests to the other paths, which take the next fault aimed at them or at any path.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], deque[tuple[str | None, Fault]]] = {}

    def add(self, channel: str, robot: str, fault: Fault, times: int = 1, path: str | None = None) -> None:
        """Queue `fault` for the next `times` requests to that robot or app (to `path` only, if given)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._pending.setdefault((channel, robot), deque()).extend([(path, fault)] * times)

    def take(self, channel: str, robot: str, path: str | None = None) -> Fault | None:
        """The fault for the request now arriving at that robot or app, if one is pending.

        `path` is the request's path; None takes the first pending fault whatever it aims at.
        """
        queue = self._pending.get((channel, robot))
        if not queue:
            return None
        for index, (target, fault) in enumerate(queue):
            if path is None or target is None or target == path:
                del queue[index]
                if not queue:
                    del self._pending[(channel, robot)]
                return fault
        return None

    def pending(self, channel: str, robot: str) -> list[Fault]:
        """The faults still to be played on that robot or app, in order (a copy)."""
        return [fault for _, fault in self._pending.get((channel, robot), ())]

    def clear(self) -> None:
        """Drop every pending fault."""
        self._pending.clear()
