"""The sandbox's notion of "now", which tests can move forward."""

from __future__ import annotations

import math
import time


class SandboxClock:
    """Wall-clock time plus an offset.

    Every time-dependent vendor rule the sandbox emulates (per-minute rate windows, DingTalk's
    one-hour signature window and 10-minute throttle, the 3-day life of robot media) reads this
    clock, so a test crosses a window with `advance()` instead of sleeping. It follows wall time
    rather than standing still so that a DingTalk signature the gateway makes from `time.time()`
    is valid without any setup, as it is against the real vendor.
    """

    def __init__(self, offset: float = 0.0, *, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError("speed must be a finite number above 0")
        self._offset = float(offset)
        # speed > 1 runs sandbox time faster than wall time from now on, so a test can play minutes
        # of vendor rate windows in seconds (a gateway limit configured with the same scale).
        self._speed = float(speed)
        self._origin = time.time()

    def now(self) -> float:
        """Unix seconds as the emulated vendors see them."""
        real = time.time()
        return self._origin + (real - self._origin) * self._speed + self._offset

    def advance(self, seconds: float) -> None:
        """Move sandbox time by `seconds` (negative moves it back, e.g. to skew a signature)."""
        if not math.isfinite(seconds):
            raise ValueError("seconds must be a finite number")
        self._offset += seconds
