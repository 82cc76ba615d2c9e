"""The gateway's Redis pool and its one-write command batches, against a real Redis: the pool stays
bounded, a burst waits its turn instead of failing, a wait that lasts too long fails, and a batch
answers every command in order even when one of them is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from gateway.store.redis_connection import close, connect
from gateway.store.redis_pool import WaitingConnectionPool, round_trip


@pytest.fixture
async def small(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = connect(redis_url, timeout=1.0, max_connections=2)
    yield client
    await close(client)


def pool_of(client: redis.Redis) -> WaitingConnectionPool:
    pool = client.connection_pool
    assert isinstance(pool, WaitingConnectionPool)
    return pool


async def test_a_burst_larger_than_the_pool_waits_and_every_call_succeeds(
    small: redis.Redis, namespace: str
) -> None:
    async def slow(i: int) -> object:
        return await small.eval(
            "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]", 1, f"{namespace}:{i}", i
        )

    replies = await asyncio.gather(*(slow(i) for i in range(40)))

    assert replies == [str(i).encode() for i in range(40)]
    assert len(pool_of(small)._in_use_connections) + len(pool_of(small)._available_connections) <= 2


async def test_waiters_are_served_first_come_first_served(small: redis.Redis) -> None:
    pool = pool_of(small)
    held = [await pool.get_connection(), await pool.get_connection()]
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        conn = await pool.get_connection()
        order.append(i)
        await pool.release(conn)

    waiting = [asyncio.create_task(wait_turn(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert order == []  # the pool is full: they wait rather than fail
    for conn in held:
        await pool.release(conn)
    await asyncio.gather(*waiting)

    assert order == [0, 1, 2, 3, 4]


async def test_a_wait_longer_than_the_timeout_fails_as_unavailable(redis_url: str) -> None:
    client = connect(redis_url, timeout=0.05, max_connections=1)
    pool = pool_of(client)
    try:
        held = await pool.get_connection()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await client.ping()
        assert 0.04 < time.monotonic() - started < 0.5
        await pool.release(held)
        assert await client.ping()  # the timed-out waiter left no trace in the line
    finally:
        await close(client)


async def test_a_cancelled_waiter_does_not_keep_the_connection_from_the_next(small: redis.Redis) -> None:
    pool = pool_of(small)
    held = [await pool.get_connection(), await pool.get_connection()]
    cancelled = asyncio.create_task(pool.get_connection())
    served = asyncio.create_task(pool.get_connection())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await pool.release(held[0])

    conn = await asyncio.wait_for(served, 1.0)

    await pool.release(conn)
    await pool.release(held[1])


async def test_a_batch_answers_every_command_in_order_even_after_an_error(
    small: redis.Redis, namespace: str
) -> None:
    key = f"{namespace}:batch"
    replies = await round_trip(small, [("EVALSHA", "0" * 40, 0), ("SET", key, "1"), ("INCR", key)])

    assert isinstance(replies[0], NoScriptError)
    assert replies[1:] == [b"OK", 2]
    assert await small.get(key) == b"2"  # the connection is in step: the next command reads its own reply


async def test_a_batch_error_reply_is_returned_not_raised(small: redis.Redis, namespace: str) -> None:
    key = f"{namespace}:text"
    (set_reply, error) = await round_trip(small, [("SET", key, "a"), ("INCR", key)])

    assert set_reply == b"OK" and isinstance(error, ResponseError)
