"""One Redis connection pool per gateway, shared by the token store, records and caches.

Keys are ``<namespace>:{<tag>}:<what>``: the braces make a Redis Cluster hash tag, so keys that a
Lua script touches together (an account's token and its lock) sit in one slot.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from gateway.errors import Unavailable
from gateway.telemetry import current_span

P = ParamSpec("P")
R = TypeVar("R")


def connect(url: str, *, timeout: float = 1.0, max_connections: int = 50) -> redis.Redis:
    # A blocking pool: a burst waits briefly for a connection instead of failing the call.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    client: redis.Redis = redis.Redis(connection_pool=pool)
    return client


async def close(client: redis.Redis) -> None:
    await client.aclose()
    await client.connection_pool.disconnect()


def store_unavailable(what: str, exc: RedisError) -> Unavailable:
    """The one error every Redis-backed store raises when Redis cannot be reached."""
    return Unavailable(f"{what} unavailable (Redis): {type(exc).__name__}", reason="STORE_UNAVAILABLE")


class KeySpace:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def key(self, tag: str, what: str) -> str:
        return f"{self.namespace}:{{{tag}}}:{what}"


def traced(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """A client span for a store call to Redis: the operation, never keys' values."""

    def decorate(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def traced_call(*args: P.args, **kwargs: P.kwargs) -> R:
            with current_span(
                f"redis {operation}",
                kind=SpanKind.CLIENT,
                attributes={"db.system": "redis", "db.operation.name": operation},
            ):
                return await method(*args, **kwargs)

        return traced_call

    return decorate


class BatchedWriter:
    """Group commit for SETs: those issued while a write is in flight go out together in one
    pipeline, so under load a Send's record costs a share of one round trip instead of one each.
    Every caller still waits for its own write, so a record is readable once Send has answered.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pending: list[tuple[str, str, int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def set(self, key: str, value: str, px: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, value, px, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            with current_span(
                "redis PIPELINE SET",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "redis",
                    "db.operation.name": "SET",
                    "db.operation.batch.size": len(batch),
                },
            ):
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for key, value, px, _ in batch:
                            pipe.set(key, value, px=px)
                        await pipe.execute()
                except Exception as exc:  # every waiter gets the failure; none hangs
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)
