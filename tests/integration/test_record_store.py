"""Message records, the same contract in memory and in Redis: compare-and-set writes, copies on
read, leases, the tenant's newest-first index and retention."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from gateway.ids import min_id_at, new_message_id
from gateway.store import records as records_module
from gateway.store.records import (
    DEFAULT_RETENTION,
    INDEX_UPKEEP_SECONDS,
    MemoryRecordStore,
    RecordStore,
    RedisRecordStore,
    StoredRecord,
)
from gateway.store.redis_connection import close, connect
from generated.notify.v1 import notification_service_pb2 as pb
from tests.message_records import accepted_record

StoreFactory = Callable[..., RecordStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[StoreFactory]:
    """Makes a store of the parametrized kind; Redis stores made here share one namespace."""
    client = connect(redis_url) if request.param == "redis" else None

    def make(retention: float = DEFAULT_RETENTION) -> RecordStore:
        if client is None:
            return MemoryRecordStore(retention)
        return RedisRecordStore(client, namespace, retention)

    yield make
    if client is not None:
        await close(client)


@pytest.fixture
def store(make_store: StoreFactory) -> RecordStore:
    return make_store()


def record(tenant: str = "acme", message_id: str | None = None, created: float | None = None) -> StoredRecord:
    return StoredRecord(accepted_record(tenant, message_id=message_id, created=created))


async def stored(store: RecordStore, tenant: str = "acme") -> StoredRecord:
    new = record(tenant)
    assert await store.put(new)
    return new


def ids(records: list[StoredRecord]) -> list[str]:
    return [r.message_id for r in records]


# -- compare-and-set -----------------------------------------------------------------------------


async def test_creating_a_record_stores_it_at_version_one(store: RecordStore) -> None:
    new = record()

    assert await store.put(new)

    assert new.version == 1
    found = await store.get(new.message_id)
    assert found is not None
    assert (found.record, found.version) == (new.record, 1)


async def test_a_second_create_of_the_same_id_fails_and_changes_nothing(store: RecordStore) -> None:
    first = await stored(store)
    again = record(message_id=first.message_id)
    again.record.kind = "markdown"

    assert not await store.put(again)

    assert again.version == 0
    found = await store.get(first.message_id)
    assert found is not None
    assert (found.record.kind, found.version) == ("text", 1)


async def test_a_write_on_the_current_version_succeeds_and_bumps_it(store: RecordStore) -> None:
    current = await stored(store)
    current.record.vendor_message_id = "msg-1"

    assert await store.put(current)

    assert current.version == 2
    found = await store.get(current.message_id)
    assert found is not None
    assert (found.record.vendor_message_id, found.version) == ("msg-1", 2)


async def test_a_write_on_a_stale_version_fails_and_keeps_the_other_writers_change(
    store: RecordStore,
) -> None:
    mine = await stored(store)
    theirs = await store.get(mine.message_id)
    assert theirs is not None
    theirs.record.labels["by"] = "them"
    assert await store.put(theirs)

    mine.record.labels["by"] = "me"
    assert not await store.put(mine)

    assert mine.version == 1
    found = await store.get(mine.message_id)
    assert found is not None
    assert (dict(found.record.labels), found.version) == ({"by": "them"}, 2)


async def test_a_write_on_a_record_that_does_not_exist_fails(store: RecordStore) -> None:
    ghost = record()
    ghost.version = 3
    assert not await store.put(ghost)
    assert await store.get(ghost.message_id) is None


async def test_an_unknown_message_id_reads_as_none(store: RecordStore) -> None:
    assert await store.get(new_message_id()) is None


async def test_get_returns_a_copy_that_can_be_changed_without_changing_the_store(store: RecordStore) -> None:
    original = await stored(store)
    copy = await store.get(original.message_id)
    assert copy is not None

    copy.record.labels["mutated"] = "yes"
    copy.record.state = pb.MESSAGE_STATE_SENT
    copy.owner = "someone"
    copy.version = 99

    again = await store.get(original.message_id)
    assert again is not None
    assert (again.record, again.owner, again.version) == (original.record, "", 1)


async def test_changing_the_written_object_after_put_changes_nothing_stored(store: RecordStore) -> None:
    written = await stored(store)
    written.record.labels["after"] = "put"
    found = await store.get(written.message_id)
    assert found is not None
    assert "after" not in found.record.labels


async def test_owner_and_lease_are_stored_with_the_record(store: RecordStore) -> None:
    owned = record()
    owned.owner, owned.lease_until = "send-1", 1_800_000_000.5
    assert await store.put(owned)
    found = await store.get(owned.message_id)
    assert found is not None
    assert (found.owner, found.lease_until) == ("send-1", 1_800_000_000.5)


# -- leases --------------------------------------------------------------------------------------


async def test_the_owner_can_extend_its_lease_without_bumping_the_version(store: RecordStore) -> None:
    owned = record()
    owned.owner, owned.lease_until = "send-1", time.time() + 30
    assert await store.put(owned)

    assert await store.extend_lease(owned.message_id, "send-1", 1_900_000_000.0)

    found = await store.get(owned.message_id)
    assert found is not None
    assert (found.lease_until, found.version, found.owner) == (1_900_000_000.0, 1, "send-1")


async def test_nobody_but_the_owner_can_extend_the_lease(store: RecordStore) -> None:
    owned = record()
    owned.owner, owned.lease_until = "send-1", 1_800_000_000.0
    assert await store.put(owned)

    assert not await store.extend_lease(owned.message_id, "send-2", 1_900_000_000.0)

    found = await store.get(owned.message_id)
    assert found is not None
    assert found.lease_until == 1_800_000_000.0


async def test_a_lease_on_a_record_that_does_not_exist_cannot_be_extended(store: RecordStore) -> None:
    assert not await store.extend_lease(new_message_id(), "send-1", time.time() + 30)


# -- the tenant's index --------------------------------------------------------------------------


async def test_newest_returns_the_tenants_records_newest_first(store: RecordStore) -> None:
    made = [await stored(store) for _ in range(5)]

    found = await store.newest("acme", None, "", 10)

    assert ids(found) == ids(made)[::-1]


async def test_newest_pages_with_before_and_never_repeats_or_skips(store: RecordStore) -> None:
    made = ids([await stored(store) for _ in range(7)])
    pages: list[list[str]] = []
    before: str | None = None
    while page := ids(await store.newest("acme", before, "", 3)):
        pages.append(page)
        before = page[-1]

    assert pages == [made[6:3:-1], made[3:0:-1], made[0:1]]


async def test_newest_stops_at_not_before(store: RecordStore) -> None:
    older = [await stored(store) for _ in range(3)]
    await asyncio.sleep(0.003)  # a later millisecond: the ids below start at a later time
    boundary = time.time()
    newer = [await stored(store) for _ in range(3)]

    found = await store.newest("acme", None, min_id_at(boundary), 10)

    assert ids(found) == ids(newer)[::-1]
    assert not set(ids(found)) & set(ids(older))


async def test_newest_never_returns_another_tenants_records(store: RecordStore) -> None:
    mine = [await stored(store, "acme") for _ in range(3)]
    theirs = [await stored(store, "globex") for _ in range(3)]

    assert ids(await store.newest("acme", None, "", 10)) == ids(mine)[::-1]
    assert ids(await store.newest("globex", None, "", 10)) == ids(theirs)[::-1]
    assert await store.newest("initech", None, "", 10) == []


async def test_newest_returns_copies(store: RecordStore) -> None:
    original = await stored(store)
    (found,) = await store.newest("acme", None, "", 10)
    found.record.labels["mutated"] = "yes"
    again = await store.get(original.message_id)
    assert again is not None
    assert "mutated" not in again.record.labels


async def test_newest_orders_by_id_even_when_records_were_created_out_of_id_order(store: RecordStore) -> None:
    # Ids are assigned when a Send arrives; a Send that waits (an idempotency key in use) creates
    # its record after a later Send has created its own.
    first, second, third = record(), record(), record()
    for stored_out_of_order in (second, first, third):
        assert await store.put(stored_out_of_order)

    assert ids(await store.newest("acme", None, "", 10)) == ids([third, second, first])
    assert ids(await store.newest("acme", None, "", 2)) == ids([third, second])
    assert ids(await store.newest("acme", second.message_id, "", 2)) == ids([first])


async def test_a_refused_create_does_not_put_the_id_in_another_tenants_index(store: RecordStore) -> None:
    theirs = await stored(store, "globex")
    impostor = record("acme", message_id=theirs.message_id)

    assert not await store.put(impostor)

    assert await store.newest("acme", None, "", 10) == []


# -- retention -----------------------------------------------------------------------------------


async def test_a_record_older_than_the_retention_is_gone(make_store: StoreFactory) -> None:
    store = make_store(retention=3600)
    old = record(created=time.time() - 3600 - 60)
    await store.put(old)
    await asyncio.sleep(0.01)  # Redis: the key was written with the 1 ms left to it

    assert await store.get(old.message_id) is None
    assert await store.newest("acme", None, "", 10) == []


async def test_a_record_within_the_retention_is_kept(make_store: StoreFactory) -> None:
    store = make_store(retention=3600)
    recent = record(created=time.time() - 3000)
    assert await store.put(recent)
    assert await store.get(recent.message_id) is not None
    assert ids(await store.newest("acme", None, "", 10)) == [recent.message_id]


# -- the index's upkeep (Redis) ------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    await close(client)


async def test_the_first_write_of_a_tenant_trims_its_index_and_sets_its_expiry(
    redis_client: redis.Redis, namespace: str
) -> None:
    store = RedisRecordStore(redis_client, namespace, retention=3600)
    index = f"{namespace}:{{tenant:acme}}:messages"
    stale = min_id_at(time.time() - 3600 - 60)
    await redis_client.zadd(index, {stale: 0})

    assert await store.put(record())

    assert await redis_client.zscore(index, stale) is None
    ttl_ms = await redis_client.pttl(index)
    assert 3600_000 < ttl_ms <= (3600 + INDEX_UPKEEP_SECONDS) * 1000  # outlives the newest record


async def test_later_writes_within_the_interval_only_list_then_upkeep_comes_back(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisRecordStore(redis_client, namespace, retention=3600)
    index = f"{namespace}:{{tenant:acme}}:messages"
    assert await store.put(record())
    stale = min_id_at(time.time() - 3600 - 60)
    await redis_client.zadd(index, {stale: 0})
    await redis_client.persist(index)

    listed = record()
    assert await store.put(listed)
    assert await redis_client.zscore(index, listed.message_id) is not None
    assert await redis_client.zscore(index, stale) is not None  # no upkeep: within the interval
    assert await redis_client.pttl(index) == -1

    monkeypatch.setattr(records_module, "INDEX_UPKEEP_SECONDS", 0.0)  # the interval has passed
    assert await store.put(record())
    assert await redis_client.zscore(index, stale) is None
    assert await redis_client.pttl(index) > 0


async def test_upkeep_is_per_tenant(redis_client: redis.Redis, namespace: str) -> None:
    store = RedisRecordStore(redis_client, namespace, retention=3600)
    assert await store.put(record("acme"))
    index = f"{namespace}:{{tenant:globex}}:messages"
    stale = min_id_at(time.time() - 3600 - 60)
    await redis_client.zadd(index, {stale: 0})

    assert await store.put(record("globex"))  # globex's first write, although acme wrote just now

    assert await redis_client.zscore(index, stale) is None


async def test_a_record_is_written_after_redis_forgot_the_scripts(
    redis_client: redis.Redis, namespace: str
) -> None:
    store = RedisRecordStore(redis_client, namespace)
    new = record()
    await redis_client.script_flush()

    assert await store.put(new)  # new: the script with its index commands
    await redis_client.script_flush()
    assert await store.put(new)  # an update: the script alone

    found = await store.get(new.message_id)
    assert found is not None and found.version == 2
    assert ids(await store.newest("acme", None, "", 10)) == [new.message_id]


async def test_a_process_remembers_the_upkeep_of_a_bounded_number_of_tenants(
    redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_module, "_UPKEEP_TENANTS", 3)
    store = RedisRecordStore(redis_client, namespace)
    for tenant in ("a", "b", "c", "d", "e"):
        assert await store.put(record(tenant))

    assert list(store._upkept) == ["c", "d", "e"]  # the longest since their upkeep forgotten first
