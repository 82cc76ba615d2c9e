"""ListMessages over the ledger, on the memory and the Redis record store: newest first, filtered,
in pages whose tokens only work with the filters they were made for."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import pytest

from gateway.errors import InvalidArgument
from gateway.ids import new_message_id
from gateway.lifecycle import listing
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.listing import list_messages
from gateway.lifecycle.states import ACCEPTED, FAILED, SENDING, SENT, UNKNOWN, State, advance, timestamp
from gateway.store.records import MemoryRecordStore, RedisRecordStore, StoredRecord
from gateway.store.redis_connection import close, connect
from generated.notify.v1 import notification_service_pb2 as pb
from tests.message_records import accepted_record


@pytest.fixture(params=["memory", "redis"])
async def ledger(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        yield Ledger(MemoryRecordStore())
        return
    client = connect(redis_url)
    yield Ledger(RedisRecordStore(client, namespace))
    await close(client)


async def add(
    ledger: Ledger,
    tenant: str = "acme",
    *,
    state: State = SENT,
    account: str = "team-wecom",
    labels: dict[str, str] | None = None,
) -> str:
    """Stores a finished message (as a Send leaves it) and returns its id."""
    record = accepted_record(tenant, account=account, labels=labels)
    if state != ACCEPTED:
        advance(record, SENDING if state in (SENT, UNKNOWN) else state, "test")
    if state in (SENT, UNKNOWN):
        advance(record, state, "test")
    assert await ledger.store.put(StoredRecord(record))
    return record.message_id


def listed(page: listing.Page) -> list[str]:
    return [r.message_id for r in page.records]


def field_of(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


async def every_page(ledger: Ledger, request: pb.ListMessagesRequest) -> list[list[str]]:
    pages: list[list[str]] = []
    while True:
        page = await list_messages(ledger, "acme", request)
        pages.append(listed(page))
        if not page.next_token:
            return pages
        request.page_token = page.next_token
        assert len(pages) < 50, "the pages never end"


# -- pages ---------------------------------------------------------------------------------------


async def test_messages_are_listed_newest_first(ledger: Ledger) -> None:
    made = [await add(ledger) for _ in range(4)]

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest())

    assert listed(page) == made[::-1]
    assert page.next_token == ""


async def test_page_tokens_walk_every_message_once_in_order(ledger: Ledger) -> None:
    made = [await add(ledger) for _ in range(7)]

    pages = await every_page(ledger, pb.ListMessagesRequest(page_size=3))

    assert [m for page in pages for m in page] == made[::-1]
    assert [len(page) for page in pages] == [3, 3, 1]


async def test_the_page_size_may_change_between_pages(ledger: Ledger) -> None:
    made = [await add(ledger) for _ in range(5)]
    first = await list_messages(ledger, "acme", pb.ListMessagesRequest(page_size=2))

    rest = await list_messages(
        ledger, "acme", pb.ListMessagesRequest(page_size=10, page_token=first.next_token)
    )

    assert listed(first) + listed(rest) == made[::-1]


async def test_only_the_callers_tenant_is_listed(ledger: Ledger) -> None:
    mine = [await add(ledger, "acme") for _ in range(2)]
    await add(ledger, "globex")

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest())

    assert listed(page) == mine[::-1]


async def test_a_page_size_of_zero_means_fifty(ledger: Ledger) -> None:
    for _ in range(51):
        await add(ledger)
    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(page_size=0))
    assert len(page.records) == 50
    assert page.next_token


async def test_a_page_size_over_five_hundred_is_clamped_to_five_hundred(ledger: Ledger) -> None:
    for _ in range(501):
        await add(ledger)
    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(page_size=10_000))
    assert len(page.records) == 500
    assert page.next_token


async def test_a_negative_page_size_is_invalid(ledger: Ledger) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await list_messages(ledger, "acme", pb.ListMessagesRequest(page_size=-1))
    assert field_of(refused.value) == ["page_size"]


# -- tokens --------------------------------------------------------------------------------------


async def test_a_token_used_with_other_filters_is_refused_naming_page_token(ledger: Ledger) -> None:
    for _ in range(3):
        await add(ledger, labels={"team": "payments"})
    first = await list_messages(
        ledger, "acme", pb.ListMessagesRequest(page_size=1, labels={"team": "payments"})
    )

    for other in (
        pb.ListMessagesRequest(page_token=first.next_token),
        pb.ListMessagesRequest(page_token=first.next_token, labels={"team": "search"}),
        pb.ListMessagesRequest(page_token=first.next_token, labels={"team": "payments"}, account="x"),
        pb.ListMessagesRequest(page_token=first.next_token, labels={"team": "payments"}, states=[SENT]),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await list_messages(ledger, "acme", other)
        assert field_of(refused.value) == ["page_token"]


@pytest.mark.parametrize(
    "forged",
    [
        "not-a-token",
        "!!!",
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
        base64.urlsafe_b64encode(b'"just a string"').decode(),
        base64.urlsafe_b64encode(b'{"after": 5, "f": "x"}').decode(),
        base64.urlsafe_b64encode(b'{"after": "01HZX"}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe binary").decode(),
    ],
)
async def test_a_forged_token_is_refused_naming_page_token(ledger: Ledger, forged: str) -> None:
    await add(ledger)
    with pytest.raises(InvalidArgument) as refused:
        await list_messages(ledger, "acme", pb.ListMessagesRequest(page_token=forged))
    assert field_of(refused.value) == ["page_token"]


async def test_a_token_names_no_more_than_where_to_continue(ledger: Ledger) -> None:
    await add(ledger)
    await add(ledger)
    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(page_size=1))
    token = page.next_token
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded["after"] == page.records[-1].message_id


# -- filters -------------------------------------------------------------------------------------


async def test_filter_by_states(ledger: Ledger) -> None:
    sent = await add(ledger, state=SENT)
    failed = await add(ledger, state=FAILED)
    await add(ledger, state=ACCEPTED)
    unknown = await add(ledger, state=UNKNOWN)

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(states=[FAILED, UNKNOWN, SENT]))
    assert listed(page) == [unknown, failed, sent]

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(states=[UNKNOWN]))
    assert listed(page) == [unknown]


async def test_filter_by_account(ledger: Ledger) -> None:
    wecom = await add(ledger, account="team-wecom")
    await add(ledger, account="ops-dingtalk")

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest(account="team-wecom"))

    assert listed(page) == [wecom]


async def test_filter_by_labels_needs_every_label_with_its_value(ledger: Ledger) -> None:
    both = await add(ledger, labels={"team": "payments", "env": "prod", "extra": "1"})
    await add(ledger, labels={"team": "payments", "env": "staging"})
    await add(ledger, labels={"team": "payments"})
    await add(ledger)

    page = await list_messages(
        ledger, "acme", pb.ListMessagesRequest(labels={"team": "payments", "env": "prod"})
    )

    assert listed(page) == [both]


async def test_filter_by_creation_time_window(ledger: Ledger) -> None:
    older = [await add(ledger) for _ in range(2)]
    await asyncio.sleep(0.003)  # the ids below start in a later millisecond
    boundary = timestamp(time.time())
    newer = [await add(ledger) for _ in range(2)]

    since = await list_messages(ledger, "acme", pb.ListMessagesRequest(start_time=boundary))
    until = await list_messages(ledger, "acme", pb.ListMessagesRequest(end_time=boundary))

    assert listed(since) == newer[::-1]
    assert listed(until) == older[::-1]


async def test_a_record_whose_owner_is_gone_is_listed_resolved(ledger: Ledger) -> None:
    now = timestamp(time.time())
    record = pb.MessageRecord(
        message_id=new_message_id(), tenant="acme", state=ACCEPTED, create_time=now, update_time=now
    )
    opened = await ledger.open(record, "send-1")
    sending = await ledger.change(opened, lambda r: advance(r, SENDING, "calling"))
    assert await ledger.store.extend_lease(sending.message_id, "send-1", time.time() - 1)

    page = await list_messages(ledger, "acme", pb.ListMessagesRequest())

    assert [(r.message_id, r.state) for r in page.records] == [(opened.message_id, UNKNOWN)]


# -- bounded scans -------------------------------------------------------------------------------


async def test_a_page_is_short_when_the_scan_limit_is_reached_and_its_token_continues_after_it(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SCAN_LIMIT", 4)
    made = [
        await add(ledger, labels={"team": "payments"} if n in (0, 9) else {"team": "search"})
        for n in range(10)
    ]
    request = pb.ListMessagesRequest(page_size=3, labels={"team": "payments"})

    first = await list_messages(ledger, "acme", request)
    assert listed(first) == [made[9]]  # short: 4 records read, 1 matched
    assert first.next_token

    pages = await every_page(ledger, request)

    assert [m for page in pages for m in page] == [made[9], made[0]]
    assert pages[1] == []  # the second batch of 4 matched nothing, and the listing still goes on


async def test_a_short_page_token_continues_after_the_last_scanned_message(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "SCAN_LIMIT", 3)
    made = [await add(ledger, state=FAILED if n == 0 else SENT) for n in range(5)]

    first = await list_messages(ledger, "acme", pb.ListMessagesRequest(states=[FAILED]))
    assert listed(first) == []
    token = first.next_token
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded["after"] == made[2]  # 4, 3 and 2 were read

    second = await list_messages(ledger, "acme", pb.ListMessagesRequest(states=[FAILED], page_token=token))
    assert listed(second) == [made[0]]
