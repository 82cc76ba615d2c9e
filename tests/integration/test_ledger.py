"""The ledger, over the memory and the Redis record store: ownership and leases of a Send in
progress, resolution of records whose owner is gone, concurrent changes, watching, and draining
before shutdown.

A lease "runs out" here by the store being told so (``extend_lease`` to a past time), never by
waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.lifecycle.ledger import LeaseLost, Ledger, Mutation, busy, stale
from gateway.lifecycle.states import (
    ACCEPTED,
    FAILED,
    SENDING,
    SENT,
    UNKNOWN,
    IllegalTransition,
    State,
    advance,
)
from gateway.store.records import MemoryRecordStore, RedisRecordStore, StoredRecord
from gateway.store.redis_connection import close, connect
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import wait_until
from tests.message_records import accepted_record

LEASE = 30.0


@pytest.fixture(params=["memory", "redis"])
async def ledger(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield Ledger(MemoryRecordStore(), lease_seconds=LEASE, watch_poll=0.05)
        return
    client = connect(redis_url)
    yield Ledger(RedisRecordStore(client, namespace), lease_seconds=LEASE, watch_poll=0.05)
    await close(client)


def new_record(tenant: str = "acme") -> pb.MessageRecord:
    return accepted_record(tenant)


def soon() -> float:
    """A watch's deadline (monotonic) far beyond what any test here waits for."""
    return time.monotonic() + 10


def to(state: State, reason: str = "test", final: bool | None = None) -> Mutation:
    def mutate(record: pb.MessageRecord) -> None:
        advance(record, state, reason, final=final)

    return mutate


def label(key: str, value: str) -> Mutation:
    def mutate(record: pb.MessageRecord) -> None:
        record.labels[key] = value

    return mutate


async def owner_gone(ledger: Ledger, stored: StoredRecord) -> None:
    """The owner's replica died: its lease is in the past and nobody renews it."""
    assert await ledger.store.extend_lease(stored.message_id, stored.owner, time.time() - 1)


# -- ownership -----------------------------------------------------------------------------------


async def test_open_stores_the_record_owned_under_a_lease(ledger: Ledger) -> None:
    before = time.time()
    opened = await ledger.open(new_record(), "send-1")

    found = await ledger.get(opened.message_id)
    assert found is not None
    assert found.owner == "send-1"
    assert before + LEASE - 1 <= found.lease_until
    assert busy(found) and not stale(found)


async def test_opening_an_existing_message_id_is_refused(ledger: Ledger) -> None:
    record = new_record()
    await ledger.open(record, "send-1")
    with pytest.raises(RuntimeError, match="exists already"):
        await ledger.open(record, "send-2")


async def test_a_change_by_the_owner_keeps_ownership_and_pushes_the_lease(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    assert await ledger.store.extend_lease(opened.message_id, "send-1", time.time() + 1)

    changed = await ledger.change(opened, to(SENDING))

    found = await ledger.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.owner) == (SENDING, "send-1")
    assert found.lease_until > time.time() + LEASE / 2
    assert found.version == changed.version == 2


async def test_settle_writes_the_outcome_and_releases_ownership(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))

    settled = await ledger.settle(sending, to(SENT))

    found = await ledger.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.record.final, found.owner) == (SENT, True, "")
    assert settled.version == found.version
    assert not busy(found)


async def test_an_illegal_change_is_refused_and_nothing_is_written(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    with pytest.raises(IllegalTransition):
        await ledger.change(opened, to(SENT))
    found = await ledger.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.version) == (ACCEPTED, 1)


# -- an owner that is gone -----------------------------------------------------------------------


async def test_an_accepted_record_whose_owner_is_gone_reads_as_failed(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    await owner_gone(ledger, opened)

    found = await ledger.get(opened.message_id)

    assert found is not None
    assert (found.record.state, found.record.final, found.owner) == (FAILED, True, "")
    assert "stopped before calling the vendor" in found.record.history[-1].reason


async def test_a_sending_record_whose_owner_is_gone_reads_as_unknown(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))
    await owner_gone(ledger, sending)

    found = await ledger.get(opened.message_id)

    assert found is not None
    assert (found.record.state, found.owner) == (UNKNOWN, "")
    assert [c.state for c in found.record.history] == [ACCEPTED, SENDING, UNKNOWN]
    assert "stopped during the vendor call" in found.record.history[-1].reason


async def test_the_resolution_is_written_for_every_later_reader(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    await owner_gone(ledger, opened)
    resolved = await ledger.get(opened.message_id)
    assert resolved is not None

    in_store = await ledger.store.get(opened.message_id)
    assert in_store is not None
    assert (in_store.record.state, in_store.owner, in_store.version) == (FAILED, "", resolved.version)
    again = await ledger.get(opened.message_id)
    assert again is not None
    assert again.version == resolved.version  # read, not resolved a second time
    assert len(again.record.history) == 2


async def test_a_live_owner_is_left_alone_by_readers(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    found = await ledger.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.owner, found.version) == (ACCEPTED, "send-1", 1)


async def test_a_send_whose_record_was_resolved_by_someone_else_loses_its_lease(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))
    await owner_gone(ledger, sending)
    await ledger.get(opened.message_id)  # a reader resolves it: UNKNOWN

    with pytest.raises(LeaseLost) as lost:
        await ledger.change(sending, to(SENT))

    assert lost.value.current.record.state == UNKNOWN
    found = await ledger.get(opened.message_id)
    assert found is not None
    assert found.record.state == UNKNOWN  # the late Send did not overwrite it


async def test_a_send_that_lost_its_lease_still_records_what_it_learned_where_the_states_allow(
    ledger: Ledger,
) -> None:
    sent = await ledger.open(new_record(), "send-1")
    sent = await ledger.change(sent, to(SENDING))
    failed = await ledger.open(new_record(), "send-2")
    failed = await ledger.change(failed, to(SENDING))
    for stored in (sent, failed):
        await owner_gone(ledger, stored)
        await ledger.get(stored.message_id)  # a reader resolves it: UNKNOWN

    late_sent = await ledger.settle(sent, to(SENT))  # the vendor's answer came after all
    late_failed = await ledger.settle(failed, to(FAILED))  # UNKNOWN never becomes FAILED

    assert (late_sent.record.state, late_sent.owner) == (SENT, "")
    assert late_failed.record.state == UNKNOWN


async def test_take_over_makes_a_new_owner_of_an_unowned_record_once(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))
    unknown = await ledger.settle(sending, to(UNKNOWN))

    first = await ledger.take_over(unknown, "send-2")
    second = await ledger.take_over(unknown, "send-3")

    assert first is not None and first.owner == "send-2"
    assert second is None
    found = await ledger.get(opened.message_id)
    assert found is not None
    assert found.owner == "send-2"


# -- concurrent changes --------------------------------------------------------------------------


async def test_concurrent_changes_from_readers_all_apply(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    settled = await ledger.settle(opened, to(FAILED))
    first_reader = await ledger.get(settled.message_id)
    second_reader = await ledger.get(settled.message_id)
    assert first_reader is not None and second_reader is not None

    await asyncio.gather(
        ledger.change(first_reader, label("seen-by", "reader-1")),
        ledger.change(second_reader, label("checked-by", "reader-2")),
    )

    found = await ledger.get(settled.message_id)
    assert found is not None
    assert dict(found.record.labels) == {"seen-by": "reader-1", "checked-by": "reader-2"}
    assert found.version == settled.version + 2


async def test_a_change_made_from_a_stale_copy_is_applied_to_the_fresh_record(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    settled = await ledger.settle(opened, to(FAILED))
    old_copy = await ledger.get(settled.message_id)
    assert old_copy is not None
    await ledger.change(old_copy, label("first", "1"))

    await ledger.change(old_copy, label("second", "2"))  # old_copy is one version behind

    found = await ledger.get(settled.message_id)
    assert found is not None
    assert dict(found.record.labels) == {"first": "1", "second": "2"}


# -- watching ------------------------------------------------------------------------------------


async def test_watch_yields_the_record_then_each_change_and_stops_when_final(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    seen: list[StoredRecord] = []

    async def follow() -> None:
        async for stored in ledger.watch(opened.message_id, opened, until=soon()):
            seen.append(stored)

    watcher = asyncio.create_task(follow())
    await wait_until(lambda: len(seen) == 1, "the current record")
    sending = await ledger.change(opened, to(SENDING))
    await wait_until(lambda: len(seen) == 2, "the SENDING change")
    await ledger.settle(sending, to(SENT))
    await asyncio.wait_for(watcher, 5)

    assert [s.record.state for s in seen] == [ACCEPTED, SENDING, SENT]
    assert [s.version for s in seen] == [1, 2, 3]
    assert seen[-1].record.final


async def test_watching_a_final_record_yields_it_once_and_ends(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    settled = await ledger.settle(opened, to(FAILED))

    seen = [s async for s in ledger.watch(settled.message_id, settled, until=soon())]

    assert [s.record.state for s in seen] == [FAILED]


async def test_watch_sees_a_change_made_by_another_replica(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    other_replica = Ledger(ledger.store, lease_seconds=LEASE)
    seen: list[State] = []

    async def follow() -> None:
        async for stored in ledger.watch(opened.message_id, opened, until=soon()):
            seen.append(stored.record.state)

    watcher = asyncio.create_task(follow())
    await wait_until(lambda: seen == [ACCEPTED], "the current record")
    await other_replica.settle(opened, to(FAILED))
    await asyncio.wait_for(watcher, 5)

    assert seen == [ACCEPTED, FAILED]


async def test_watch_resolves_a_record_whose_owner_is_gone(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))
    seen: list[State] = []

    async def follow() -> None:
        async for stored in ledger.watch(sending.message_id, sending, until=soon()):
            seen.append(stored.record.state)

    watcher = asyncio.create_task(follow())
    await wait_until(lambda: seen == [SENDING], "the current record")
    await owner_gone(ledger, sending)
    await asyncio.wait_for(watcher, 5)

    assert seen == [SENDING, UNKNOWN]


async def test_a_sent_message_awaiting_its_report_is_watched_until_it_is_final(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    sending = await ledger.change(opened, to(SENDING))
    seen: list[tuple[State, bool]] = []

    async def follow() -> None:
        async for stored in ledger.watch(sending.message_id, sending, until=soon()):
            seen.append((stored.record.state, stored.record.final))

    watcher = asyncio.create_task(follow())
    await wait_until(lambda: len(seen) == 1, "the current record")
    sent = await ledger.settle(sending, to(SENT, final=False))
    await wait_until(lambda: len(seen) == 2, "the SENT change")
    assert not watcher.done()
    await ledger.change(sent, to(pb.MESSAGE_STATE_DELIVERED))
    await asyncio.wait_for(watcher, 5)

    assert seen == [(SENDING, False), (SENT, False), (pb.MESSAGE_STATE_DELIVERED, True)]


async def test_a_watch_ends_by_itself_at_its_deadline_even_if_the_record_is_not_final(
    ledger: Ledger,
) -> None:
    opened = await ledger.open(new_record(), "send-1")

    seen = [s async for s in ledger.watch(opened.message_id, opened, until=time.monotonic() + 0.1)]

    assert [s.record.state for s in seen] == [ACCEPTED]


# -- draining ------------------------------------------------------------------------------------


async def test_drain_returns_only_after_a_held_send_has_written_its_outcome(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    vendor_answered = asyncio.Event()
    holding = asyncio.Event()

    async def send() -> None:
        async with ledger.hold(opened):
            holding.set()
            sending = await ledger.change(opened, to(SENDING))
            await vendor_answered.wait()
            await ledger.settle(sending, to(SENT))

    sender = asyncio.create_task(send())
    await holding.wait()
    drained = asyncio.create_task(ledger.drain(timeout=5))
    await asyncio.sleep(0.05)
    assert not drained.done()  # the Send is still waiting for the vendor

    vendor_answered.set()
    await drained

    found = await ledger.store.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.owner) == (SENT, "")
    await sender


async def test_drain_waits_for_a_settle_whose_send_was_cancelled(ledger: Ledger) -> None:
    opened = await ledger.open(new_record(), "send-1")
    settling = asyncio.Event()

    async def send() -> None:
        async with ledger.hold(opened):
            settling.set()
            await ledger.settle(opened, to(FAILED, "not sent: the call ended first"))

    sender = asyncio.create_task(send())
    await settling.wait()
    sender.cancel()  # the client went away while the Send wrote its outcome
    await ledger.drain(timeout=5)

    found = await ledger.store.get(opened.message_id)
    assert found is not None
    assert (found.record.state, found.owner) == (FAILED, "")
    with pytest.raises(asyncio.CancelledError):
        await sender


async def test_drain_with_nothing_in_progress_returns_at_once(ledger: Ledger) -> None:
    await asyncio.wait_for(ledger.drain(timeout=5), 1)


async def test_a_held_record_keeps_its_lease_beyond_its_first_term(ledger: Ledger) -> None:
    short = Ledger(ledger.store, lease_seconds=0.3)
    opened = await short.open(new_record(), "send-1")
    async with short.hold(opened):
        await asyncio.sleep(0.45)  # a beat every third of a lease: several by now
        found = await short.store.get(opened.message_id)
        assert found is not None and not stale(found), "the heartbeat pushed the lease forward"
    ended = await short.store.get(opened.message_id)
    assert ended is not None
    await asyncio.sleep(0.2)
    assert await short.store.get(opened.message_id) == ended, "no beat once the hold ended"
