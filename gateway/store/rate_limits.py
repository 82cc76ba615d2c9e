"""Sliding-window rate limits shared by every replica: N admissions in any window of W seconds.

In Redis the check and the admission are one Lua script over a sorted set, timed by Redis's own
clock, so replicas neither race (no read-then-write) nor disagree about the time. The answer is
how long to wait for a slot, which becomes RetryInfo or a wait.
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.errors import Unavailable
from gateway.store.redis_connection import KeySpace, traced


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window_seconds: float


class RateLimiter(Protocol):
    async def acquire(self, scope: str, rate: RateLimit) -> float:
        """Admits one call and returns 0, or admits nothing and returns seconds until a slot frees."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    async def acquire(self, scope: str, rate: RateLimit) -> float:
        now = time.monotonic()
        window = self._windows[scope]
        while window and window[0] <= now - rate.window_seconds:
            window.popleft()
        if len(window) < rate.limit:
            window.append(now)
            return 0.0
        return window[0] + rate.window_seconds - now


_ACQUIRE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window_us = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window_us)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now_us, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window_us / 1000))
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window_us - now_us
"""


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._keys = KeySpace(namespace)
        self._acquire = client.register_script(_ACQUIRE)

    @traced("EVALSHA acquire")
    async def acquire(self, scope: str, rate: RateLimit) -> float:
        member = uuid.uuid4().hex  # unique, so two admissions in one microsecond both count
        try:
            wait_us = await self._acquire(
                keys=[self._keys.key(scope, "rate")],
                args=[int(rate.window_seconds * 1_000_000), rate.limit, member],
            )
        except RedisError as exc:
            raise Unavailable(
                f"rate limiter unavailable (Redis): {type(exc).__name__}", reason="STORE_UNAVAILABLE"
            ) from None
        return max(0.0, int(wait_us) / 1_000_000)
