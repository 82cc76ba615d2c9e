"""Sliding-window rate limits shared by every replica: N admissions in any window of W seconds.

In Redis the check and the admission are one Lua script over a sorted set, timed by Redis's own
clock, so replicas neither race (no read-then-write) nor disagree about the time. The answer is
how long to wait for a slot, which becomes RetryInfo or a wait.

A Redis that restarts without persistence comes back with empty windows, although the vendor
still counts what was sent before: the robot would get a second full window within the minute
(and DingTalk throttles it for 10 minutes). So each scope has a marker, ``<epoch>``, written by
the same script when it is missing; every replica remembers the epoch it last saw. A replica that
finds another epoch than the one it knew has seen the store lose its state: the marker becomes
``<epoch> lost``, and every replica then finds the window full until one window length after the
epoch. A scope no replica has used yet is not a loss: its windows are really empty.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.ids import slot_tag
from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced
from gateway.store.redis_pool import run_script

log = logging.getLogger("gateway.rate_limits")
#: How long a scope's marker outlives its last use; a replica forgets an epoch it saw half as long ago
#: (the marker may have expired since, which is not a loss).
MARKER_TTL_SECONDS = 2 * 24 * 3600


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


def new_ticket() -> str:
    # Unique (128 random bits), so two admissions in one microsecond both count; the same 32 hex
    # characters as uuid4().hex at a fifth of its cost, on every rate-limited Send.
    return os.urandom(16).hex()


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
            ticket = new_ticket()
            window.append((now, ticket))
            return Admission(0.0, ticket)
        return Admission(window[0][0] + rate.window_seconds - now, "")

    async def release(self, scope: str, ticket: str) -> None:
        window = self._windows[scope]
        for entry in window:
            if entry[1] == ticket:
                window.remove(entry)
                return


# A Lua function, so the Send admission script (gateway.store.admission) takes a slot the same way.
# Its arguments: the window's key, the scope's marker, window (us), limit, ticket, the epoch the
# caller knew ('' if none), the marker's TTL (ms). Answers {wait in us (0: admitted), the store's epoch}.
ACQUIRE_FUNCTION = """
local function acquire(window_key, marker_key, window_us, limit, ticket, known, marker_ttl)
  local now = redis.call('TIME')
  local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local marker = redis.call('GET', marker_key)
  local epoch, lost = nil, false
  if marker then
    epoch = string.match(marker, '^%d+ %d+')
    lost = string.find(marker, ' lost', 1, true) ~= nil
  end
  if not epoch then
    epoch = now[1] .. ' ' .. now[2]
    lost = false
  end
  if known ~= '' and known ~= epoch then lost = true end
  local value = epoch
  if lost then value = epoch .. ' lost' end
  redis.call('SET', marker_key, value, 'PX', marker_ttl)
  if lost then
    local sec, usec = string.match(epoch, '^(%d+) (%d+)')
    local full_until = tonumber(sec) * 1000000 + tonumber(usec) + window_us
    if now_us < full_until then return {full_until - now_us, epoch} end
  end
  redis.call('ZREMRANGEBYSCORE', window_key, '-inf', now_us - window_us)
  if redis.call('ZCARD', window_key) < limit then
    redis.call('ZADD', window_key, now_us, ticket)
    redis.call('PEXPIRE', window_key, math.ceil(window_us / 1000))
    return {0, epoch}
  end
  local oldest = redis.call('ZRANGE', window_key, 0, 0, 'WITHSCORES')
  return {tonumber(oldest[2]) + window_us - now_us, epoch}
end
"""
# KEYS: the window, the scope's marker. ARGV: as acquire's, from the window on.
_ACQUIRE = (
    ACQUIRE_FUNCTION
    + "return acquire(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5])"
)


# Scopes are the config's accounts and tenants: few, and asked for on every rate-limited Send.
@functools.lru_cache(maxsize=4096)
def rate_keys(keys: KeySpace, scope: str) -> tuple[str, str]:
    """The window and marker of ``scope``. An account's sit in its hash slot (gateway.ids), beside
    its records and idempotency keys, so a Send's admission touches one slot."""
    kind, _, name = scope.partition(":")
    tag = f"s:{slot_tag(name)}" if kind == "account" else scope
    return keys.key(tag, f"rate:{scope}"), keys.key(tag, f"rate-epoch:{scope}")


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._acquire = client.register_script(_ACQUIRE)
        self._epochs: dict[str, tuple[str, float]] = {}  # scope -> (epoch seen, monotonic time seen)

    @traced("EVALSHA acquire")
    async def acquire(self, scope: str, rate: RateLimit) -> Admission:
        ticket = new_ticket()
        try:
            ((wait_us, epoch),) = await run_script(
                self._client,
                self._acquire,
                rate_keys(self._keys, scope),
                self.acquire_args(scope, rate, ticket),
            )
        except RedisError as exc:
            raise store_unavailable("rate limiter", exc) from None
        return self.admission(scope, rate, ticket, wait_us, epoch)

    def keys(self, scope: str) -> tuple[str, str]:
        """The window and marker of ``scope``, for a script that takes a slot as part of its write."""
        return rate_keys(self._keys, scope)

    def acquire_args(self, scope: str, rate: RateLimit, ticket: str) -> list[int | str]:
        """The acquire function's arguments after the keys, for this script or the admission's."""
        window_us = int(rate.window_seconds * 1_000_000)
        return [window_us, rate.limit, ticket, self._known_epoch(scope), MARKER_TTL_SECONDS * 1000]

    def admission(
        self, scope: str, rate: RateLimit, ticket: str, wait_us: object, epoch: object
    ) -> Admission:
        """Reads acquire's answer, and notes the store's epoch (warning once if Redis lost it)."""
        known = self._known_epoch(scope)
        seen = as_text(epoch)  # type: ignore[arg-type]
        if known and seen != known:
            log.warning(
                "rate windows lost: Redis lost its state; every window counts as full for one window",
                extra={"scope": scope, "window_seconds": rate.window_seconds},
            )
        self._epochs[scope] = (seen, time.monotonic())
        wait = max(0.0, int(wait_us) / 1_000_000)  # type: ignore[call-overload]
        return Admission(wait, ticket if wait == 0 else "")

    def _known_epoch(self, scope: str) -> str:
        """The store epoch this replica saw for ``scope``, unless so long ago its marker may be gone."""
        seen = self._epochs.get(scope)
        if seen is None or time.monotonic() - seen[1] > MARKER_TTL_SECONDS / 2:
            return ""
        return seen[0]

    @traced("ZREM")
    async def release(self, scope: str, ticket: str) -> None:
        try:
            await self._client.zrem(rate_keys(self._keys, scope)[0], ticket)
        except RedisError as exc:
            raise store_unavailable("rate limiter", exc) from None
