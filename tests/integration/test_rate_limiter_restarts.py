"""The Redis rate limiter across Redis restarts: a store that lost its windows admits nothing for one
window length, since the vendor still counts what was sent before; a store that kept them (AOF)
carries on as if nothing happened; a scope nobody used before is not a loss.

Each test runs its own redis-server (``RedisProcess``), restarted on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.store.rate_limits import RateLimit, RedisRateLimiter
from gateway.store.redis_connection import close, connect
from tests.redis_server import RedisProcess

SCOPE = "account:ops-robot"
RATE = RateLimit(3, 1.0)  # a one-second window keeps "one window length" short


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.cleanup()


async def admitted(limiter: RedisRateLimiter, count: int) -> int:
    admissions = [await limiter.acquire(SCOPE, RATE) for _ in range(count)]
    return sum(1 for admission in admissions if admission.wait == 0)


async def test_windows_lost_in_a_restart_count_as_full_for_one_window_on_every_replica(
    redis_process: RedisProcess,
) -> None:
    first, second = connect(redis_process.url), connect(redis_process.url)
    try:
        replica = RedisRateLimiter(first, "notify")
        assert await admitted(replica, 3) == 3

        redis_process.stop()
        redis_process.start()  # no persistence: the window and its marker are gone
        refused = await replica.acquire(SCOPE, RATE)
        # A replica started after the loss, which never saw the store before it, is refused too.
        newcomer = await RedisRateLimiter(second, "notify").acquire(SCOPE, RATE)

        assert 0 < refused.wait <= RATE.window_seconds
        assert 0 < newcomer.wait <= RATE.window_seconds
        await asyncio.sleep(refused.wait + 0.05)  # one window length after the loss...
        assert await admitted(replica, 4) == 3, "...a full window again, and no more"
    finally:
        await close(first)
        await close(second)


async def test_a_redis_that_kept_its_state_is_not_a_loss() -> None:
    redis_process = RedisProcess(persistent=True).start()
    client = connect(redis_process.url)
    try:
        limiter = RedisRateLimiter(client, "notify")
        assert await admitted(limiter, 2) == 2

        redis_process.stop()
        redis_process.start()  # the append-only file brings every key back

        assert await admitted(limiter, 2) == 1, "the window still holds the two taken before"
    finally:
        await close(client)
        redis_process.cleanup()


async def test_a_scope_no_replica_used_before_starts_with_an_empty_window(
    redis_process: RedisProcess,
) -> None:
    client = connect(redis_process.url)
    try:
        assert await admitted(RedisRateLimiter(client, "notify"), 4) == 3
    finally:
        await close(client)
