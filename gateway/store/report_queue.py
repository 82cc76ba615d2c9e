"""Messages waiting for their vendor's delivery report, by when to ask next.

Any replica's poller takes the due ones; taking one pushes its time forward by a hold, so two
replicas do not ask the vendor about the same message at once, and a poller that dies leaves its
messages to be taken again once the hold has passed.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced


class ReportQueue(Protocol):
    async def schedule(self, message_id: str, at: float) -> None: ...

    async def take_due(self, limit: int, hold: float) -> list[str]:
        """Up to ``limit`` message ids whose time has come, held for ``hold`` seconds."""
        ...

    async def remove(self, message_id: str) -> None: ...


class MemoryReportQueue:
    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    async def schedule(self, message_id: str, at: float) -> None:
        self._due[message_id] = at

    async def take_due(self, limit: int, hold: float) -> list[str]:
        now = time.time()
        taken = [m for m, at in sorted(self._due.items(), key=lambda item: item[1]) if at <= now][:limit]
        for message_id in taken:
            self._due[message_id] = now + hold
        return taken

    async def remove(self, message_id: str) -> None:
        self._due.pop(message_id, None)


_TAKE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""


class RedisReportQueue:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._key = KeySpace(namespace).key("reports", "due")
        self._take = client.register_script(_TAKE)

    @traced("ZADD report")
    async def schedule(self, message_id: str, at: float) -> None:
        try:
            await self._client.zadd(self._key, {message_id: int(at * 1000)})
        except RedisError as exc:
            raise store_unavailable("delivery report queue", exc) from None

    async def take_due(self, limit: int, hold: float) -> list[str]:
        now_ms = int(time.time() * 1000)
        try:
            ids = await self._take(keys=[self._key], args=[now_ms, limit, now_ms + int(hold * 1000)])
        except RedisError as exc:
            raise store_unavailable("delivery report queue", exc) from None
        return [as_text(i) for i in ids]

    @traced("ZREM report")
    async def remove(self, message_id: str) -> None:
        try:
            await self._client.zrem(self._key, message_id)
        except RedisError as exc:
            raise store_unavailable("delivery report queue", exc) from None
