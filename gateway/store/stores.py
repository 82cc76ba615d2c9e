"""Opens the gateway's state stores from one URL: Redis for every replica, or memory for one process.

``token_store`` in the config names the backend (the design's name for it); message records and
the media cache live beside the tokens, on the same connection pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis

from gateway.store.admission import MemorySendAdmission, RedisSendAdmission, SendAdmission
from gateway.store.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from gateway.store.media_cache import MediaCache, MemoryMediaCache, RedisMediaCache
from gateway.store.rate_limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.store.records import DEFAULT_RETENTION, MemoryRecordStore, RecordStore, RedisRecordStore
from gateway.store.redis_connection import close, connect
from gateway.store.report_queue import MemoryReportQueue, RedisReportQueue, ReportQueue
from gateway.tokens.memory_store import MemoryTokenStore
from gateway.tokens.redis_store import RedisTokenStore
from gateway.tokens.store import TokenStore


@dataclass
class Stores:
    tokens: TokenStore
    records: RecordStore
    media_cache: MediaCache
    idempotency: IdempotencyStore
    rate_limiter: RateLimiter
    reports: ReportQueue
    admission: SendAdmission  # key, rate slot and record of a sync Send, in one round trip
    redis: redis.Redis | None = None

    async def close(self) -> None:
        await self.tokens.close()
        if self.redis is not None:
            await close(self.redis)


def open_stores(url: str, namespace: str, *, retention: float = DEFAULT_RETENTION) -> Stores:
    """``retention``: how long message records are kept, in seconds."""
    if url.startswith("memory://"):
        records, idempotency, limiter = (
            MemoryRecordStore(retention),
            MemoryIdempotencyStore(),
            MemoryRateLimiter(),
        )
        return Stores(
            MemoryTokenStore(),
            records,
            MemoryMediaCache(),
            idempotency,
            limiter,
            MemoryReportQueue(),
            MemorySendAdmission(records, idempotency, limiter),
        )
    client = connect(url)
    redis_records = RedisRecordStore(client, namespace, retention)
    redis_idempotency = RedisIdempotencyStore(client, namespace)
    redis_limiter = RedisRateLimiter(client, namespace)
    return Stores(
        tokens=RedisTokenStore(client, namespace=namespace),
        records=redis_records,
        media_cache=RedisMediaCache(client, namespace),
        idempotency=redis_idempotency,
        rate_limiter=redis_limiter,
        reports=RedisReportQueue(client, namespace),
        admission=RedisSendAdmission(client, namespace, redis_records, redis_idempotency, redis_limiter),
        redis=client,
    )
