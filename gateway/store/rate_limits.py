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

from gateway.store.redis_connection import KeySpace, store_unavailable, traced


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window_seconds: float


@dataclass(frozen=True)
class Admission:
    wait: float  # 0 when admitted; else seconds until a slot frees (nothing was taken)
    ticket: str  # names the slot taken, so it can be given back


class RateLimiter(Protocol):
    async def acquire(self, scope: str, rate: RateLimit) -> Admission:
        """Takes a slot if one is free; otherwise takes nothing and says how long to wait."""
        ...

    async def release(self, scope: str, ticket: str) -> None:
        """Gives back a slot a call took but did not use (another limit refused the call)."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, collections.deque[tuple[float, str]]] = collections.defaultdict(
            collections.deque
        )

    async def acquire(self, scope: str, rate: RateLimit) -> Admission:
        now = time.monotonic()
        window = self._windows[scope]
        while window and window[0][0] <= now - rate.window_seconds:
            window.popleft()
        if len(window) < rate.limit:
            ticket = uuid.uuid4().hex
            window.append((now, ticket))
            return Admission(0.0, ticket)
        return Admission(window[0][0] + rate.window_seconds - now, "")

    async def release(self, scope: str, ticket: str) -> None:
        window = self._windows[scope]
        for entry in window:
            if entry[1] == ticket:
                window.remove(entry)
                return


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
        self._client = client
        self._keys = KeySpace(namespace)
        self._acquire = client.register_script(_ACQUIRE)

    @traced("EVALSHA acquire")
    async def acquire(self, scope: str, rate: RateLimit) -> Admission:
        ticket = uuid.uuid4().hex  # unique, so two admissions in one microsecond both count
        try:
            wait_us = await self._acquire(
                keys=[self._keys.key(scope, "rate")],
                args=[int(rate.window_seconds * 1_000_000), rate.limit, ticket],
            )
        except RedisError as exc:
            raise store_unavailable("rate limiter", exc) from None
        wait = max(0.0, int(wait_us) / 1_000_000)
        return Admission(wait, ticket if wait == 0 else "")

    @traced("ZREM")
    async def release(self, scope: str, ticket: str) -> None:
        try:
            await self._client.zrem(self._keys.key(scope, "rate"), ticket)
        except RedisError as exc:
            raise store_unavailable("rate limiter", exc) from None
