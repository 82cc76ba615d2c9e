"""Idempotency keys: each binds a tenant's key to the one message it created, for 24 hours.

A key is bound atomically (SET NX) to the message_id of the first Send that carries it, before
that Send does anything else; repeats find the binding and answer from the message's record.
The binding is dropped only when the gateway knows nothing reached the vendor (the record says
FAILED), so a retry after an ambiguous outcome can never deliver a second copy. Keys are scoped
per tenant and bound to the request's fingerprint: the same key with a different request is
refused rather than answered with the wrong message.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.ids import slot_tag
from gateway.store.redis_connection import KeySpace, store_unavailable, traced

KEEP_FOR = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a key is unique: per tenant and account. The account also gives the Redis hash slot,
    shared with the account's queue and its messages' records (gateway.ids)."""

    tenant: str
    account: str
    key: str

    @property
    def name(self) -> str:
        return f"{self.tenant}:{self.account}:{self.key}"


@dataclass(frozen=True, slots=True)
class Binding:
    fingerprint: str
    message_id: str
    bound_at: float  # unix seconds


class IdempotencyStore(Protocol):
    async def bind(self, scope: Scope, binding: Binding) -> Binding | None:
        """Binds the key (returns None) or returns the binding already there."""
        ...

    async def rebind(self, scope: Scope, old_message_id: str, binding: Binding) -> bool:
        """Replaces a binding to ``old_message_id`` (whose message is gone or failed); False if the
        key is bound to something else by now."""
        ...

    async def release(self, scope: Scope, message_id: str) -> None:
        """Drops the binding if it still names ``message_id``."""
        ...


class MemoryIdempotencyStore:
    def __init__(self, keep_for: float = KEEP_FOR, max_keys: int = 100_000) -> None:
        self._keep_for = keep_for
        self._max = max_keys
        self._bindings: dict[str, tuple[float, Binding]] = {}

    def _live(self, scope: Scope) -> Binding | None:
        found = self._bindings.get(scope.name)
        if found is None or found[0] < time.monotonic():
            self._bindings.pop(scope.name, None)
            return None
        return found[1]

    async def bind(self, scope: Scope, binding: Binding) -> Binding | None:
        existing = self._live(scope)
        if existing is not None:
            return existing
        self._set(scope, binding)
        return None

    async def rebind(self, scope: Scope, old_message_id: str, binding: Binding) -> bool:
        existing = self._live(scope)
        if existing is not None and existing.message_id != old_message_id:
            return False
        self._set(scope, binding)
        return True

    async def release(self, scope: Scope, message_id: str) -> None:
        existing = self._live(scope)
        if existing is not None and existing.message_id == message_id:
            del self._bindings[scope.name]

    def _set(self, scope: Scope, binding: Binding) -> None:
        self._bindings[scope.name] = (time.monotonic() + self._keep_for, binding)
        if len(self._bindings) > self._max:  # a single process must not grow without bound
            now = time.monotonic()
            for key in [k for k, (until, _) in self._bindings.items() if until < now]:
                del self._bindings[key]
            while len(self._bindings) > self._max:  # still full of live keys: forget the oldest
                del self._bindings[next(iter(self._bindings))]


_BIND = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""
_REBIND = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['m'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['m'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisIdempotencyStore:
    def __init__(self, client: redis.Redis, namespace: str, keep_for: float = KEEP_FOR) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._keep_for_ms = int(keep_for * 1000)
        self._bind = client.register_script(_BIND)
        self._rebind = client.register_script(_REBIND)
        self._release = client.register_script(_RELEASE)

    def _key(self, scope: Scope) -> str:
        return idempotency_key(self._keys, scope)

    @traced("EVALSHA bind")
    async def bind(self, scope: Scope, binding: Binding) -> Binding | None:
        try:
            raw = await self._bind(keys=[self._key(scope)], args=[encode_binding(binding), self._keep_for_ms])
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None
        if raw is None:
            return None
        return decode_binding(raw)

    @traced("EVALSHA rebind")
    async def rebind(self, scope: Scope, old_message_id: str, binding: Binding) -> bool:
        try:
            done = await self._rebind(
                keys=[self._key(scope)], args=[old_message_id, encode_binding(binding), self._keep_for_ms]
            )
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None
        return bool(done)

    @traced("EVALSHA release")
    async def release(self, scope: Scope, message_id: str) -> None:
        try:
            await self._release(keys=[self._key(scope)], args=[message_id])
        except RedisError as exc:
            raise store_unavailable("idempotency store", exc) from None


def idempotency_key(keys: KeySpace, scope: Scope) -> str:
    return keys.key(f"s:{_account_tag(scope.account)}", f"idem:{scope.tenant}:{scope.account}:{scope.key}")


# The accounts of the config, each asked on every Send with a key: a checksum not worth redoing.
_account_tag = functools.lru_cache(maxsize=4096)(slot_tag)
_json_string = json.encoder.encode_basestring_ascii


def encode_binding(binding: Binding) -> str:
    """The same text as ``json.dumps`` of the three fields (the Lua scripts and ``decode_binding``
    read it as JSON), built directly: a third of the cost, on every Send with a key."""
    bound_at = binding.bound_at
    if not math.isfinite(bound_at):  # json's spelling of these differs from repr's
        return json.dumps({"fp": binding.fingerprint, "m": binding.message_id, "t": bound_at})
    fingerprint, message_id = _json_string(binding.fingerprint), _json_string(binding.message_id)
    return f'{{"fp": {fingerprint}, "m": {message_id}, "t": {bound_at!r}}}'


def decode_binding(raw: str | bytes) -> Binding:
    entry = json.loads(raw)
    return Binding(entry["fp"], entry["m"], float(entry["t"]))
