"""Sliding-window rate limits, as both robot vendors apply them."""

from __future__ import annotations

from collections import deque


class SlidingWindowLimit:
    """At most `limit` events in any `window` seconds.

    Both robot vendors document "20 messages a minute per robot" (vendor-apis.md B and C) without
    saying whether the minute is fixed or sliding; a sliding window is the stricter reading, so a
    gateway that passes against the sandbox also passes against either real behaviour.
    """

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        """Count one event at `now` if it fits in the window; say whether it did."""
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return False
        self._events.append(now)
        return True

    def reset(self) -> None:
        """Forget every counted event."""
        self._events.clear()
