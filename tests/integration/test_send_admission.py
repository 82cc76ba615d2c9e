"""A sync Send's admission (key, rate slot, record in one write), the same contract in memory and in
Redis: what it writes when the key is free, what it leaves alone when the key is bound, and how it
answers for the rate limit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.ids import new_message_id
from gateway.lifecycle.states import ACCEPTED, SENDING, advance, timestamp
from gateway.store.admission import Admit
from gateway.store.idempotency import Binding, Scope
from gateway.store.rate_limits import RateLimit
from gateway.store.stores import Stores, open_stores
from generated.notify.v1 import notification_service_pb2 as pb

ACCOUNT = "team-wecom"
SCOPE = Scope("acme", ACCOUNT, "order-1")


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> AsyncIterator[Stores]:
    opened = open_stores("memory://" if request.param == "memory" else redis_url, namespace)
    yield opened
    await opened.close()


def records(message_id: str) -> tuple[pb.MessageRecord, pb.MessageRecord]:
    now = timestamp(time.time())
    accepted = pb.MessageRecord(
        message_id=message_id,
        tenant="acme",
        account=ACCOUNT,
        state=ACCEPTED,
        create_time=now,
        update_time=now,
    )
    sending = pb.MessageRecord()
    sending.CopyFrom(accepted)
    advance(sending, SENDING, "calling the vendor")
    return accepted, sending


def admit(message_id: str, *, key: bool = True, limit: int | None = None) -> Admit:
    accepted, sending = records(message_id)
    return Admit(
        accepted,
        sending,
        owner="send-1",
        lease_until=time.time() + 30,
        claim=(SCOPE, Binding("fp", message_id, time.time()), 60.0) if key else None,
        rate=(f"account:{ACCOUNT}", RateLimit(limit, 60.0)) if limit is not None else None,
    )


async def test_a_free_key_is_claimed_and_the_record_written_sending(stores: Stores) -> None:
    message_id = new_message_id(ACCOUNT)
    admitted = await stores.admission.admit(admit(message_id, limit=5))

    assert admitted.bound is None and admitted.rate is not None and admitted.rate.wait == 0
    assert admitted.stored is not None and admitted.stored.record.state == SENDING
    stored = await stores.records.get(message_id)
    assert stored is not None and stored.record.state == SENDING and stored.owner == "send-1"
    assert (await stores.idempotency.bind(SCOPE, Binding("fp", "other", time.time()))) is not None


async def test_a_bound_key_writes_nothing_and_lists_nothing(stores: Stores) -> None:
    first = new_message_id(ACCOUNT)
    await stores.admission.admit(admit(first, limit=2))
    second = new_message_id(ACCOUNT)
    admitted = await stores.admission.admit(admit(second, limit=2))

    assert admitted.bound is not None and admitted.bound.message_id == first
    assert admitted.stored is None
    assert await stores.records.get(second) is None
    listed = await stores.records.newest("acme", None, "", 10)
    assert [s.message_id for s in listed] == [first]
    # The refused admission took no rate slot: of a limit of two, one is left.
    third = await stores.admission.admit(admit(new_message_id(ACCOUNT), key=False, limit=2))
    fourth = await stores.admission.admit(admit(new_message_id(ACCOUNT), key=False, limit=2))
    assert third.rate is not None and third.rate.wait == 0
    assert fourth.rate is not None and fourth.rate.wait > 0


async def test_over_the_rate_limit_the_record_is_written_accepted_and_the_wait_given(stores: Stores) -> None:
    await stores.admission.admit(admit(new_message_id(ACCOUNT), key=False, limit=1))
    message_id = new_message_id(ACCOUNT)
    admitted = await stores.admission.admit(admit(message_id, limit=1))

    assert admitted.rate is not None and 0 < admitted.rate.wait <= 60 and admitted.rate.ticket == ""
    assert admitted.stored is not None and admitted.stored.record.state == ACCEPTED
    stored = await stores.records.get(message_id)
    assert stored is not None and stored.record.state == ACCEPTED
