"""The token manager against real stores: one fetch per account, however many tasks and replicas ask.

The fetcher here stands in for a vendor's gettoken and counts its calls; the end-to-end tests do
the same through the sandbox's real HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.errors import GatewayError, Unavailable, VendorError, VendorOutcome
from gateway.tokens import (
    MemoryTokenStore,
    RedisTokenStore,
    StoredToken,
    TokenManager,
    TokenPolicy,
    TokenStore,
)
from tests.redis_server import RedisProcess


class Vendor:
    """Issues numbered tokens and counts gettoken calls; can be told to fail or be slow."""

    def __init__(self, expires_in: float = 7200, delay: float = 0.05) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.delay = delay
        self.failure: GatewayError | None = None
        self._numbers = itertools.count(1)

    async def gettoken(self, deadline: float | None) -> tuple[str, float]:
        self.calls += 1
        await asyncio.sleep(self.delay)  # a fetch takes time: that is when stampedes happen
        if self.failure is not None:
            raise self.failure
        return f"token-{next(self._numbers)}", self.expires_in


@pytest.fixture(params=["memory", "redis"])
async def store_factory(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Callable[[], TokenStore]]:
    made: list[TokenStore] = []

    def make() -> TokenStore:
        store: TokenStore = (
            MemoryTokenStore()
            if request.param == "memory"
            else RedisTokenStore(redis_url, namespace=namespace)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_concurrent_requests_on_a_cold_account_fetch_once(
    store_factory: Callable[[], TokenStore],
) -> None:
    vendor = Vendor()
    manager = TokenManager(store_factory())
    manager.register("app", vendor.gettoken)

    tokens = await asyncio.gather(*(manager.get("app") for _ in range(200)))

    assert vendor.calls == 1
    assert set(tokens) == {"token-1"}


async def test_two_replicas_sharing_redis_fetch_once(redis_url: str, namespace: str) -> None:
    vendor = Vendor(delay=0.2)
    replicas = [TokenManager(RedisTokenStore(redis_url, namespace=namespace)) for _ in range(2)]
    for replica in replicas:
        replica.register("app", vendor.gettoken)

    tokens = await asyncio.gather(*(replica.get("app") for replica in replicas for _ in range(100)))

    assert vendor.calls == 1
    assert set(tokens) == {"token-1"}
    for replica in replicas:
        await replica.close()


async def test_a_known_valid_token_is_served_from_the_hot_cache(
    store_factory: Callable[[], TokenStore],
) -> None:
    vendor = Vendor()
    store = store_factory()
    manager = TokenManager(store)
    manager.register("app", vendor.gettoken)
    await manager.get("app")
    await store.delete_if("app", "token-1")  # gone from the store: only the hot cache has it

    assert await manager.get("app") == "token-1"
    assert vendor.calls == 1


async def test_token_is_kept_for_expires_in_minus_the_safety_margin(
    store_factory: Callable[[], TokenStore],
) -> None:
    store = store_factory()
    manager = TokenManager(store, TokenPolicy(safety_margin=300))
    manager.register("app", Vendor(expires_in=7200).gettoken)
    before = time.time()
    await manager.get("app")
    stored = await store.get("app")
    assert stored is not None
    assert before + 6900 - 5 <= stored.expires_at <= time.time() + 6900


@pytest.mark.parametrize("expires_in", [0, -30])
async def test_a_token_that_expires_at_once_serves_the_waiting_calls_and_is_never_kept(
    store_factory: Callable[[], TokenStore], expires_in: float
) -> None:
    vendor = Vendor(expires_in=expires_in)
    store = store_factory()
    manager = TokenManager(store)
    manager.register("app", vendor.gettoken)

    waiting = await asyncio.gather(*(manager.get("app") for _ in range(20)))
    assert set(waiting) == {"token-1"} and vendor.calls == 1, "one fetch for the calls waiting"
    assert await store.get("app") is None, "not kept for other calls or replicas"

    assert await manager.get("app") == "token-2"
    assert vendor.calls == 2


async def test_invalidate_removes_only_the_token_that_failed(store_factory: Callable[[], TokenStore]) -> None:
    store = store_factory()
    manager = TokenManager(store)
    manager.register("app", Vendor().gettoken)
    stale = await manager.get("app")
    # Another replica already replaced it with a fresh one.
    await store.put("app", StoredToken("fresh-from-replica-2", time.time() + 600, time.time()))

    await manager.invalidate("app", stale)

    stored = await store.get("app")
    assert stored is not None and stored.token == "fresh-from-replica-2"
    assert await manager.get("app") == "fresh-from-replica-2"


async def test_after_invalidation_the_next_get_fetches_a_new_token(
    store_factory: Callable[[], TokenStore],
) -> None:
    vendor = Vendor()
    manager = TokenManager(store_factory())
    manager.register("app", vendor.gettoken)
    first = await manager.get("app")
    await manager.invalidate("app", first)

    tokens = await asyncio.gather(*(manager.get("app") for _ in range(50)))

    assert set(tokens) == {"token-2"}
    assert vendor.calls == 2


async def test_a_failed_fetch_is_shared_and_not_repeated_at_once(
    store_factory: Callable[[], TokenStore],
) -> None:
    vendor = Vendor()
    vendor.failure = VendorError(
        "wrong secret",
        outcome=VendorOutcome.CONFIGURATION,
        channel="wecom_app",
        account="app",
        errcode=40001,
        errmsg="invalid credential",
    )
    manager = TokenManager(store_factory(), TokenPolicy(failure_cooldown=30))
    manager.register("app", vendor.gettoken)

    results = await asyncio.gather(*(manager.get("app") for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, VendorError) for r in results)
    with pytest.raises(VendorError):
        await manager.get("app")

    assert vendor.calls == 1


async def test_tokens_are_refreshed_in_the_background_before_they_expire(
    store_factory: Callable[[], TokenStore],
) -> None:
    vendor = Vendor(expires_in=2.0, delay=0)
    manager = TokenManager(store_factory(), TokenPolicy(refresh_ahead_ratio=0.5))
    manager.register("app", vendor.gettoken)
    assert await manager.get("app") == "token-1"  # kept 1.6 s; refreshed in its last 0.8 s
    manager.start(interval=0.05)
    try:
        for _ in range(100):  # bounded wait, 5 s at most
            if vendor.calls >= 2:
                break
            await asyncio.sleep(0.05)
        assert vendor.calls >= 2
        assert await manager.get("app") == f"token-{vendor.calls}"
    finally:
        await manager.close()


async def test_redis_down_serves_known_tokens_then_fails_clearly_then_recovers() -> None:
    redis_process = RedisProcess().start()
    try:
        vendor = Vendor(expires_in=7200, delay=0)
        manager = TokenManager(RedisTokenStore(redis_process.url, timeout=0.5))
        manager.register("app", vendor.gettoken)
        manager.register("cold", vendor.gettoken)
        assert await manager.get("app") == "token-1"

        redis_process.stop()
        assert await manager.get("app") == "token-1", "a token known valid needs no Redis"
        with pytest.raises(Unavailable) as caught:
            await manager.get("cold")
        assert "Redis" in caught.value.message and "'cold'" in caught.value.message
        # Where Redis is and what failed go to the log; the caller learns only that it is down.
        assert str(redis_process.port) not in caught.value.message
        assert "Error" not in caught.value.message

        redis_process.start()
        assert await manager.get("cold") == "token-2"
        await manager.close()
    finally:
        redis_process.cleanup()
