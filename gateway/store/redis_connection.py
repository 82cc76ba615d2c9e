"""One Redis connection pool per gateway, shared by the token store, records and caches.

Keys are ``<namespace>:{<tag>}:<what>``: the braces make a Redis Cluster hash tag, so keys that a
Lua script touches together (an account's token and its lock) sit in one slot.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from opentelemetry.trace import SpanKind
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError

from gateway.errors import Unavailable
from gateway.telemetry import current_span

log = logging.getLogger("gateway.store")
P = ParamSpec("P")
R = TypeVar("R")
#: Connection errors are retried this many times, on a new connection, after a short pause.
CONNECTION_RETRIES = 2


def connection_retry() -> Retry:
    """Retries a command whose connection broke, on a fresh connection, a few ms later.

    After Redis restarts, every pooled connection is dead and the next command on each fails with
    "Connection closed by server": without a retry, each one is a stray UNAVAILABLE for a caller
    although Redis is back. Only connection errors are retried, and briefly: a command that timed
    out may have run (the scripts are not idempotent), and a Redis that is really down must still
    answer UNAVAILABLE fast.
    """
    return Retry(ExponentialBackoff(cap=0.05, base=0.01), CONNECTION_RETRIES, (ConnectionError,))


def connect(url: str, *, timeout: float = 1.0, max_connections: int = 50) -> redis.Redis:
    # A blocking pool: a burst waits briefly for a connection instead of failing the call.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=connection_retry(),
        retry_on_error=[ConnectionError],
    )
    client: redis.Redis = redis.Redis(connection_pool=pool)
    return client


async def close(client: redis.Redis) -> None:
    await client.aclose()
    await client.connection_pool.disconnect()


def as_text(value: bytes | str) -> str:
    """A value from a client that does not decode replies (bytes), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def store_unavailable(what: str, exc: RedisError) -> Unavailable:
    """The one error every Redis-backed store raises when Redis cannot be reached.

    The caller learns which store is down, not why: redis-py's messages name Redis's host and
    port, and exception class names are ours. Both go to the log line for the operator.
    """
    log.warning(
        "store unavailable", extra={"store": what, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    )
    return Unavailable(f"{what} unavailable (Redis)", reason="STORE_UNAVAILABLE")


class KeySpace:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def key(self, tag: str, what: str) -> str:
        return f"{self.namespace}:{{{tag}}}:{what}"


def traced(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """A client span for a store call to Redis: the operation, never keys' values."""
    # Hand-written, not opentelemetry-instrumentation-redis: its span per command costs ~4x this
    # one per operation (~70 µs vs ~17), and names every script just EVALSHA.

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
