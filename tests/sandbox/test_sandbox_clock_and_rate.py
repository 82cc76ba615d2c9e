"""Sandbox time and the sliding rate window behave as the vendor rules need."""

from __future__ import annotations

import math
import time

import pytest

from gateway.sandbox import SandboxClock
from gateway.sandbox.rate import SlidingWindowLimit


def test_the_clock_follows_wall_time_until_advanced() -> None:
    clock = SandboxClock()

    assert abs(clock.now() - time.time()) < 1
    clock.advance(600)
    assert abs(clock.now() - time.time() - 600) < 1
    clock.advance(-1200)
    assert abs(clock.now() - time.time() + 600) < 1


def test_the_clock_refuses_to_advance_by_a_non_finite_amount() -> None:
    with pytest.raises(ValueError):
        SandboxClock().advance(math.inf)


def test_the_window_admits_limit_events_then_refuses_until_the_oldest_leaves() -> None:
    limit = SlidingWindowLimit(3, 60.0)

    assert [limit.try_acquire(t) for t in (0.0, 10.0, 20.0, 30.0)] == [True, True, True, False]
    assert limit.try_acquire(59.9) is False
    assert limit.try_acquire(60.0) is True  # the event at 0 has left the window
    assert limit.try_acquire(65.0) is False


def test_a_reset_window_admits_again() -> None:
    limit = SlidingWindowLimit(1, 60.0)
    limit.try_acquire(0.0)

    limit.reset()

    assert limit.try_acquire(1.0) is True
