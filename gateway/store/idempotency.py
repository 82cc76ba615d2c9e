"""Idempotency keys: the first Send with a key delivers; repeats replay its answer for 24 hours.

A key is claimed atomically (SET NX) before delivery and completed with the response after it;
concurrent repeats find the claim and wait for the answer. A failed first attempt releases its
claim, so a retry may deliver. Keys are scoped per tenant and bound to the request's fingerprint:
the same key with a different request is refused rather than answered with the wrong message.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.redis_connection import KeySpace, store_unavailable, traced

KEEP_FOR = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Entry:
    fingerprint: str
    response: bytes | None  # None while the first request is still being delivered


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, fingerprint: str, ttl: float) -> Entry | None:
        """Claims the key (returns None) or returns what is already there."""
        ...

    async def complete(self, scope: str, fingerprint: str, response: bytes) -> None: ...

    async def release(self, scope: str, fingerprint: str) -> None:
        """Drops a pending claim after a failed attempt; a completed entry stays."""
        ...


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Entry]] = {}

    def _live(self, scope: str) -> Entry | None:
        found = self._entries.get(scope)
        if found is None or found[0] < time.monotonic():
            self._entries.pop(scope, None)
            return None
        return found[1]

    async def claim(self, scope: str, fingerprint: str, ttl: float) -> Entry | None:
        existing = self._live(scope)
        if existing is not None:
            return existing
        self._entries[scope] = (time.monotonic() + ttl, Entry(fingerprint, None))
        return None

    async def complete(self, scope: str, fingerprint: str, response: bytes) -> None:
        self._entries[scope] = (time.monotonic() + KEEP_FOR, Entry(fingerprint, response))
        if len(self._entries) > 100_000:  # a single process must not grow without bound
            for key in [k for k, (until, _) in self._entries.items() if until < time.monotonic()]:
                del self._entries[key]

    async def release(self, scope: str, fingerprint: str) -> None:
        existing = self._live(scope)
        if existing is not None and existing.response is None and existing.fingerprint == fingerprint:
            del self._entries[scope]


_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local entry = cjson.decode(value)
if entry['response'] == nil and entry['fp'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisIdempotencyStore:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def _key(self, scope: str) -> str:
        return self._keys.key(f"idem:{scope}", "idempotency")

    @traced("EVALSHA claim")
    async def claim(self, scope: str, fingerprint: str, ttl: float) -> Entry | None:
        pending = json.dumps({"fp": fingerprint})
        try:
            raw = await self._claim(keys=[self._key(scope)], args=[pending, int(ttl * 1000)])
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None
        if raw is None:
            return None
        entry = json.loads(raw)
        response = entry.get("response")
        return Entry(entry["fp"], None if response is None else base64.b64decode(response))

    @traced("SET")
    async def complete(self, scope: str, fingerprint: str, response: bytes) -> None:
        value = json.dumps({"fp": fingerprint, "response": base64.b64encode(response).decode()})
        try:
            await self._client.set(self._key(scope), value, px=int(KEEP_FOR * 1000))
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None

    @traced("EVALSHA release")
    async def release(self, scope: str, fingerprint: str) -> None:
        try:
            await self._release(keys=[self._key(scope)], args=[fingerprint])
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None
