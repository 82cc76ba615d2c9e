"""Idempotency bindings and the delivery-report queue, the same contract in memory and in Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.store.idempotency import (
    Binding,
    IdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    Scope,
)
from gateway.store.redis_connection import close, connect
from gateway.store.report_queue import MemoryReportQueue, RedisReportQueue, ReportQueue


@pytest.fixture(params=["memory", "redis"])
async def bindings(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore()
        return
    client = connect(redis_url)
    yield RedisIdempotencyStore(client, namespace)
    await close(client)


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> AsyncIterator[ReportQueue]:
    if request.param == "memory":
        yield MemoryReportQueue()
        return
    client = connect(redis_url)
    yield RedisReportQueue(client, namespace)
    await close(client)


def S(tenant: str, key: str, account: str = "robot") -> Scope:
    return Scope(tenant, account, key)


def binding(message_id: str, fingerprint: str = "fp-1") -> Binding:
    return Binding(fingerprint, message_id, 1_700_000_000.5)


# -- idempotency keys ----------------------------------------------------------------------------


async def test_the_first_bind_of_a_key_takes_it(bindings: IdempotencyStore) -> None:
    assert await bindings.bind(S("acme", "order-1"), binding("MSG-A")) is None


async def test_a_later_bind_of_the_same_key_gets_the_existing_binding(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))

    existing = await bindings.bind(S("acme", "order-1"), binding("MSG-B", "fp-2"))

    assert existing == binding("MSG-A")
    assert await bindings.bind(S("acme", "order-1"), binding("MSG-C")) == binding("MSG-A")


async def test_keys_are_bound_per_scope(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))
    assert await bindings.bind(S("globex", "order-1"), binding("MSG-B")) is None
    assert await bindings.bind(S("acme", "order-2"), binding("MSG-C")) is None
    assert await bindings.bind(S("acme", "order-1", account="other"), binding("MSG-D")) is None


async def test_rebind_replaces_a_binding_to_the_named_old_message(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))

    assert await bindings.rebind(S("acme", "order-1"), "MSG-A", binding("MSG-B"))

    assert await bindings.bind(S("acme", "order-1"), binding("MSG-C")) == binding("MSG-B")


async def test_rebind_leaves_a_key_bound_to_another_message_alone(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))
    # another Send got there first:
    assert await bindings.rebind(S("acme", "order-1"), "MSG-A", binding("MSG-B"))

    assert not await bindings.rebind(S("acme", "order-1"), "MSG-A", binding("MSG-C"))

    assert await bindings.bind(S("acme", "order-1"), binding("MSG-D")) == binding("MSG-B")


async def test_rebind_of_a_key_that_is_gone_binds_it(bindings: IdempotencyStore) -> None:
    assert await bindings.rebind(S("acme", "order-1"), "MSG-A", binding("MSG-B"))
    assert await bindings.bind(S("acme", "order-1"), binding("MSG-C")) == binding("MSG-B")


async def test_release_frees_a_key_still_bound_to_that_message(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))

    await bindings.release(S("acme", "order-1"), "MSG-A")

    assert await bindings.bind(S("acme", "order-1"), binding("MSG-B")) is None


async def test_release_leaves_a_key_bound_to_another_message_alone(bindings: IdempotencyStore) -> None:
    await bindings.bind(S("acme", "order-1"), binding("MSG-A"))
    await bindings.rebind(S("acme", "order-1"), "MSG-A", binding("MSG-B"))

    await bindings.release(S("acme", "order-1"), "MSG-A")  # the failed first Send, too late

    assert await bindings.bind(S("acme", "order-1"), binding("MSG-C")) == binding("MSG-B")


async def test_release_of_an_unbound_key_does_nothing(bindings: IdempotencyStore) -> None:
    await bindings.release(S("acme", "nothing"), "MSG-A")
    assert await bindings.bind(S("acme", "nothing"), binding("MSG-B")) is None


async def test_the_memory_store_stays_bounded_forgetting_the_oldest_keys() -> None:
    store = MemoryIdempotencyStore(max_keys=3)
    for n in range(5):
        assert await store.bind(S("acme", f"key-{n}"), binding(f"MSG-{n}")) is None

    # The three newest are still bound; the two oldest were forgotten to make room.
    for n in (2, 3, 4):
        assert await store.bind(S("acme", f"key-{n}"), binding("MSG-X")) == binding(f"MSG-{n}")
    assert await store.bind(S("acme", "key-0"), binding("MSG-X")) is None


# -- delivery-report queue -----------------------------------------------------------------------


async def test_take_due_returns_only_due_messages_oldest_first(queue: ReportQueue) -> None:
    now = time.time()
    await queue.schedule("MSG-LATER", now + 3600)
    await queue.schedule("MSG-2", now - 20)
    await queue.schedule("MSG-3", now - 10)
    await queue.schedule("MSG-1", now - 30)

    assert await queue.take_due(limit=10, hold=60) == ["MSG-1", "MSG-2", "MSG-3"]


async def test_take_due_returns_at_most_limit_and_leaves_the_rest_for_the_next_take(
    queue: ReportQueue,
) -> None:
    now = time.time()
    for n in range(5):
        await queue.schedule(f"MSG-{n}", now - 100 + n)

    assert await queue.take_due(limit=2, hold=60) == ["MSG-0", "MSG-1"]
    assert await queue.take_due(limit=2, hold=60) == ["MSG-2", "MSG-3"]
    assert await queue.take_due(limit=2, hold=60) == ["MSG-4"]


async def test_taken_messages_are_held_from_the_next_take(queue: ReportQueue) -> None:
    await queue.schedule("MSG-1", time.time() - 1)

    assert await queue.take_due(limit=10, hold=60) == ["MSG-1"]
    assert await queue.take_due(limit=10, hold=60) == []


async def test_a_taken_message_is_due_again_once_its_hold_has_passed(queue: ReportQueue) -> None:
    await queue.schedule("MSG-1", time.time() - 1)
    assert await queue.take_due(limit=10, hold=0) == ["MSG-1"]  # the poller died at once

    assert await queue.take_due(limit=10, hold=60) == ["MSG-1"]


async def test_scheduling_again_moves_the_message(queue: ReportQueue) -> None:
    await queue.schedule("MSG-1", time.time() - 1)
    await queue.schedule("MSG-1", time.time() + 3600)
    assert await queue.take_due(limit=10, hold=60) == []


async def test_a_removed_message_is_never_taken(queue: ReportQueue) -> None:
    now = time.time()
    await queue.schedule("MSG-1", now - 2)
    await queue.schedule("MSG-2", now - 1)

    await queue.remove("MSG-1")
    await queue.remove("MSG-NEVER-SCHEDULED")

    assert await queue.take_due(limit=10, hold=60) == ["MSG-2"]


async def test_an_empty_queue_has_nothing_due(queue: ReportQueue) -> None:
    assert await queue.take_due(limit=10, hold=60) == []
