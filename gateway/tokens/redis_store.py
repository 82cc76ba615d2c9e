"""Tokens in Redis, shared by every replica.

Keys are ``notify:{<account>}:token`` and ``notify:{<account>}:token-lock``: the braces are a
Redis Cluster hash tag, so an account's token and its lock live in one slot and the Lua scripts
below may touch both. Compare-and-delete and lock release are scripts, never read-then-write.
"""

from __future__ import annotations

import json
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.redis_connection import KeySpace, close, connect, traced
from gateway.tokens.store import StoredToken, TokenStoreUnavailable

_DELETE_IF_EQUAL = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
if cjson.decode(value)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_UNLOCK_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    shared = True

    def __init__(self, client: redis.Redis | str, *, namespace: str = "notify", timeout: float = 1.0) -> None:
        """Takes the gateway's shared client, or a URL (then this store owns its connection pool)."""
        self._owns_client = isinstance(client, str)
        self._client = connect(client, timeout=timeout) if isinstance(client, str) else client
        self._keys = KeySpace(namespace)
        self._delete_if_equal = self._client.register_script(_DELETE_IF_EQUAL)
        self._unlock_if_owner = self._client.register_script(_UNLOCK_IF_OWNER)

    def _key(self, account: str, what: str) -> str:
        return self._keys.key(account, what)

    @traced("GET")
    async def get(self, account: str) -> StoredToken | None:
        try:
            raw = await self._client.get(self._key(account, "token"))
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None
        if raw is None:
            return None
        value = json.loads(raw)
        return StoredToken(str(value["token"]), float(value["expires_at"]), float(value.get("issued_at", 0)))

    @traced("SET")
    async def put(self, account: str, token: StoredToken) -> None:
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        value = json.dumps(
            {"token": token.token, "expires_at": token.expires_at, "issued_at": token.issued_at}
        )
        try:
            await self._client.set(self._key(account, "token"), value, px=ttl_ms)
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None

    @traced("EVALSHA delete-if-equal")
    async def delete_if(self, account: str, token: str) -> bool:
        try:
            deleted = await self._delete_if_equal(keys=[self._key(account, "token")], args=[token])
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None
        return bool(deleted)

    @traced("SET NX")
    async def try_lock(self, account: str, owner: str, ttl: float) -> bool:
        try:
            taken = await self._client.set(
                self._key(account, "token-lock"), owner, nx=True, px=int(ttl * 1000)
            )
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None
        return bool(taken)

    @traced("EVALSHA unlock")
    async def unlock(self, account: str, owner: str) -> None:
        try:
            await self._unlock_if_owner(keys=[self._key(account, "token-lock")], args=[owner])
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None

    @traced("EXISTS")
    async def locked(self, account: str) -> bool:
        try:
            return bool(await self._client.exists(self._key(account, "token-lock")))
        except RedisError as exc:
            raise TokenStoreUnavailable(_describe(exc)) from None

    async def close(self) -> None:
        if self._owns_client:
            await close(self._client)


def _describe(exc: RedisError) -> str:
    # redis-py messages name host and port, never the password; keep them short all the same.
    return f"token store (Redis) unavailable: {type(exc).__name__}: {str(exc)[:200]}"
