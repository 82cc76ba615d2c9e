"""One Redis connection pool per gateway, shared by the token store, records and caches.

Keys are ``<namespace>:{<tag>}:<what>``: the braces make a Redis Cluster hash tag, so keys that a
Lua script touches together (an account's token and its lock) sit in one slot.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from opentelemetry.trace import SpanKind
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError

from gateway.errors import Unavailable
from gateway.store.redis_pool import WaitingConnectionPool
from gateway.telemetry import UNRECORDED, current_span, redis_tally

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
    # Bounded, and a burst waits briefly (first come, first served) for a connection instead of
    # failing the call; cheaper per command than redis-py's BlockingConnectionPool (redis_pool).
    pool = WaitingConnectionPool.from_url(
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
    """Counts a store call to Redis into the current call's tally, or gives it a client span.

    Inside a call (an RPC, a queued delivery) the operation is counted and timed into the call's
    ``RedisTally``, which its span carries; a call that is not recorded pays one context lookup.
    Outside any call, or after the call's span has ended, the operation gets a client span naming
    the operation, never keys' values.
    """
    # Hand-written, not opentelemetry-instrumentation-redis: its span per command costs ~4x this
    # one per operation (~70 µs vs ~17), and names every script just EVALSHA.
    name = f"redis {operation}"
    attributes = {"db.system": "redis", "db.operation.name": operation}

    def decorate(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def traced_call(*args: P.args, **kwargs: P.kwargs) -> R:
            tally = redis_tally.get()
            if tally is UNRECORDED:
                return await method(*args, **kwargs)
            if tally is None or tally.closed:
                with current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
                    return await method(*args, **kwargs)
            started = perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                tally.calls += 1
                tally.seconds += perf_counter() - started

        return traced_call

    return decorate
