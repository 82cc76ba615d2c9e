"""Sliding-window rate limits, as the vendors apply them."""

from __future__ import annotations

from collections import deque


class SlidingWindowLimit:
    """At most `limit` events in any `window` seconds.

    Both robot vendors document "20 messages a minute per robot" (docs/vendors.md, WeCom group robot
    and DingTalk group robot) without saying whether the minute is fixed or sliding; a sliding window
    is the stricter reading, so a gateway that passes against the sandbox also passes against
    either real behaviour. The app channels' limits (30 a minute per WeCom member, 5000 DingTalk
    recipients a minute) are read the same way; `count` lets one call use up several events (one
    per recipient).
    """

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def has_room(self, now: float, count: int = 1) -> bool:
        """Whether `count` more events at `now` would fit, without counting them."""
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        return len(self._events) + count <= self.limit

    def used(self, now: float) -> int:
        """Events counted in the window ending at `now` (for people watching the sandbox)."""
        self.has_room(now, 0)
        return len(self._events)

    def try_acquire(self, now: float, count: int = 1) -> bool:
        """Count `count` events at `now` if they all fit in the window; say whether they did."""
        if not self.has_room(now, count):
            return False
        self._events.extend([now] * count)
        return True

    def reset(self) -> None:
        """Forget every counted event."""
        self._events.clear()
