"""A message's fate can be asked for later: GetMessage, ListMessages and WatchMessage.

Each test drives a real gateway (records in memory and in a real Redis) against the sandbox over
HTTP, and reads the record the way a caller would: by message_id, within its own tenant.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from gateway.config import Config, MessageSettings, TenantSettings
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until
from tests.e2e.test_telemetry import total
from tests.rich_status import rich_error

KEY_A = "status-key-alpha-5c1e"
KEY_B = "status-key-beta-93d0"
ALPHA = (("authorization", f"Bearer {KEY_A}"),)
BETA = (("authorization", f"Bearer {KEY_B}"),)
FAST_REPORTS = MessageSettings(report_first_poll_seconds=0.05)


def with_tenants(config: Config) -> Config:
    tenants = [
        TenantSettings(name=name, api_keys=[hash_key(key)], accounts=["*"])
        for name, key in (("alpha", KEY_A), ("beta", KEY_B))
    ]
    return configured(config, tenants=tenants, messages=FAST_REPORTS)


@pytest.fixture(params=["memory", "redis"])
async def gateway(request: pytest.FixtureRequest, sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    config = with_tenants(gateway_config(sandbox.url))
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("namespace")
        config = configured(config, token_store=redis_url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


def text(account: str, content: str, **fields: object) -> pb.SendRequest:
    users = {"corp-app": ["zhangsan"], "ding-app": ["user01"]}.get(account, [])
    fields.setdefault("recipients", pb.Recipients(user_ids=users))
    return pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content=content)), **fields)


async def get(gateway: Gateway, message_id: str, metadata: object = ALPHA) -> pb.MessageRecord:
    response = await gateway.stub.GetMessage(
        pb.GetMessageRequest(message_id=message_id), metadata=metadata, timeout=5
    )
    return response.message


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# -- GetMessage -------------------------------------------------------------------------------------


async def test_get_message_returns_the_record_of_a_sent_message(gateway: Gateway) -> None:
    request = text("team-wecom", "record me", labels={"team": "payments"}, idempotency_key="k-1")
    sent = await gateway.stub.Send(request, metadata=ALPHA, timeout=5)

    record = await get(gateway, sent.message_id)

    assert record.message_id == sent.message_id
    assert (record.tenant, record.account, record.channel, record.kind) == (
        "alpha",
        "team-wecom",
        "wecom_robot",
        "text",
    )
    assert record.state == pb.MESSAGE_STATE_SENT and record.final
    assert dict(record.labels) == {"team": "payments"}
    assert record.idempotency_key == "k-1"
    assert [h.state for h in record.history] == [
        pb.MESSAGE_STATE_ACCEPTED,
        pb.MESSAGE_STATE_SENDING,
        pb.MESSAGE_STATE_SENT,
    ]
    assert [(a.outcome, a.http_status) for a in record.attempts] == [
        (pb.DeliveryAttempt.OUTCOME_ACCEPTED, 200)
    ]
    assert (
        record.create_time.seconds > 0
        and record.update_time.ToNanoseconds() >= record.create_time.ToNanoseconds()
    )


async def test_another_tenants_message_is_not_found_exactly_like_an_unknown_one(gateway: Gateway) -> None:
    sent = await gateway.stub.Send(text("team-wecom", "mine"), metadata=ALPHA, timeout=5)

    theirs = await refused(get(gateway, sent.message_id, BETA))
    unknown = await refused(get(gateway, "01ARZ3NDEKTSV4RRFFQ69G5FAV", ALPHA))

    assert theirs.code() == unknown.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.details() == unknown.details().replace("01ARZ3NDEKTSV4RRFFQ69G5FAV", sent.message_id)


async def test_get_message_without_an_id_names_the_field(gateway: Gateway) -> None:
    error = rich_error(await refused(get(gateway, "")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "message_id" in error.violations


async def test_a_vendor_refusal_is_recorded_failed_with_the_vendors_errcode(gateway: Gateway) -> None:
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=93000)
    error = rich_error(await refused(gateway.stub.Send(text("team-wecom", "refused"), metadata=ALPHA)))
    assert error.error_info is not None
    message_id = error.error_info.metadata["message_id"]
    assert error.error_info.metadata["message_state"] == "MESSAGE_STATE_FAILED"

    record = await get(gateway, message_id)

    assert record.state == pb.MESSAGE_STATE_FAILED and record.final
    [attempt] = record.attempts
    assert attempt.outcome == pb.DeliveryAttempt.OUTCOME_REFUSED
    assert attempt.vendor_errcode == 93000 and attempt.vendor_errmsg


async def test_wecom_app_recipients_the_vendor_refused_are_final_in_the_record(gateway: Gateway) -> None:
    request = text("corp-app", "partly", recipients=pb.Recipients(user_ids=["zhangsan", "nobody-here"]))
    sent = await gateway.stub.Send(request, metadata=ALPHA, timeout=5)

    record = await get(gateway, sent.message_id)

    assert record.state == pb.MESSAGE_STATE_SENT and record.final  # WeCom gives no later report
    assert [(r.kind, r.id) for r in record.rejected_recipients] == [(pb.RECIPIENT_KIND_USER, "nobody-here")]
    assert record.recallable and record.vendor_message_id


# -- DingTalk work notifications: the vendor's delivery report ------------------------------------


async def test_a_dingtalk_work_notification_becomes_delivered_with_the_vendors_report(
    gateway: Gateway,
) -> None:
    request = text("ding-app", "report me", recipients=pb.Recipients(user_ids=["user01", "ghost"]))
    sent = await gateway.stub.Send(request, metadata=ALPHA, timeout=5)
    assert sent.state == pb.MESSAGE_STATE_SENT

    states = []
    async for change in gateway.stub.WatchMessage(
        pb.WatchMessageRequest(message_id=sent.message_id), metadata=ALPHA, timeout=10
    ):
        states.append(change.message.state)
        last = change.message

    assert states[-1] == pb.MESSAGE_STATE_DELIVERED and last.final
    assert pb.MESSAGE_STATE_SENT in states[:-1]
    report = last.delivery_report
    assert list(report.unread_user_ids) == ["user01"]
    assert list(report.invalid_user_ids) == ["ghost"]
    assert report.report_time.seconds > 0
    calls = {r.msgtype for r in gateway.sandbox.received(robot="ding-app")}
    assert {"getsendprogress", "getsendresult"} <= calls


async def test_a_recalled_message_stays_recalled_whatever_its_report_says(gateway: Gateway) -> None:
    sent = await gateway.stub.Send(text("ding-app", "recall me first"), metadata=ALPHA, timeout=5)
    await gateway.stub.Recall(pb.RecallRequest(message_id=sent.message_id), metadata=ALPHA, timeout=5)
    await asyncio.sleep(0.3)  # several report polls' worth

    record = await get(gateway, sent.message_id)

    assert record.state == pb.MESSAGE_STATE_RECALLED and not record.recallable


# -- WatchMessage ---------------------------------------------------------------------------------------


async def test_watch_of_a_final_message_sends_it_once_and_ends(gateway: Gateway) -> None:
    sent = await gateway.stub.Send(text("team-wecom", "done already"), metadata=ALPHA, timeout=5)

    seen = [
        change.message
        async for change in gateway.stub.WatchMessage(
            pb.WatchMessageRequest(message_id=sent.message_id), metadata=ALPHA, timeout=5
        )
    ]

    assert [m.state for m in seen] == [pb.MESSAGE_STATE_SENT]


async def test_watch_needs_the_callers_key_and_its_own_tenants_message(gateway: Gateway) -> None:
    sent = await gateway.stub.Send(text("team-wecom", "watched"), metadata=ALPHA, timeout=5)
    watch = pb.WatchMessageRequest(message_id=sent.message_id)

    anonymous = await refused(_drain(gateway.stub.WatchMessage(watch, timeout=5)))
    theirs = await refused(_drain(gateway.stub.WatchMessage(watch, metadata=BETA, timeout=5)))

    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    assert theirs.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_ends_at_the_callers_deadline_while_the_message_is_not_final(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # A report that never comes: the vendor is down for getsendprogress, so the record stays SENT.
    gateway.sandbox.inject_fault(
        "dingtalk_work",
        "ding-app",
        http_status=503,
        times=100,
        path="/topapi/message/corpconversation/getsendprogress",
    )
    sent = await gateway.stub.Send(text("ding-app", "no report"), metadata=ALPHA, timeout=5)
    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for change in gateway.stub.WatchMessage(
                pb.WatchMessageRequest(message_id=sent.message_id), metadata=ALPHA, timeout=0.5
            ):
                seen.append(change.message.state)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert seen == [pb.MESSAGE_STATE_SENT]
        await wait_until(
            lambda: any(getattr(r, "rpc", "").endswith("WatchMessage") for r in caplog.records),
            "the access log",
        )
    [line] = [r for r in caplog.records if getattr(r, "rpc", "").endswith("WatchMessage")]
    assert line.status == "DEADLINE_EXCEEDED"


async def _drain(stream: AsyncIterator[pb.WatchMessageResponse]) -> None:
    async for _ in stream:
        pass


# -- ListMessages ---------------------------------------------------------------------------------------


async def send_batch(gateway: Gateway, label: str, count: int, account: str = "team-wecom") -> list[str]:
    ids = []
    for n in range(count):
        request = text(account, f"{label} {n}", labels={"batch": label, "n": str(n)})
        ids.append((await gateway.stub.Send(request, metadata=ALPHA, timeout=5)).message_id)
    return ids


async def list_all(
    gateway: Gateway, request: pb.ListMessagesRequest, metadata: object = ALPHA
) -> list[list[str]]:
    pages: list[list[str]] = []
    while True:
        page = await gateway.stub.ListMessages(request, metadata=metadata, timeout=5)
        pages.append([m.message_id for m in page.messages])
        if not page.next_page_token:
            return pages
        request.page_token = page.next_page_token


async def test_list_messages_pages_the_tenants_messages_newest_first(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]
    ids = await send_batch(gateway, label, 5)

    pages = await list_all(gateway, pb.ListMessagesRequest(page_size=2, labels={"batch": label}))

    flat = [i for page in pages for i in page]
    assert flat == list(reversed(ids))
    assert [len(p) for p in pages if p] == [2, 2, 1]


async def test_list_messages_filters_by_account_state_label_and_time(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]
    robot = await send_batch(gateway, label, 2)
    await asyncio.sleep(0.01)
    middle = time.time()
    await asyncio.sleep(0.01)
    app = await send_batch(gateway, label, 2, account="corp-app")
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=93000)
    with pytest.raises(grpc.aio.AioRpcError):
        await gateway.stub.Send(text("team-wecom", label, labels={"batch": label}), metadata=ALPHA)

    def only(**fields: object) -> pb.ListMessagesRequest:
        fields.setdefault("labels", {"batch": label})
        return pb.ListMessagesRequest(**fields)

    def flat(pages: list[list[str]]) -> list[str]:
        return [i for page in pages for i in page]

    assert flat(await list_all(gateway, only(account="corp-app"))) == list(reversed(app))
    sent = flat(await list_all(gateway, only(states=[pb.MESSAGE_STATE_SENT])))
    assert sorted(sent) == sorted(robot + app)
    failed = flat(await list_all(gateway, only(states=[pb.MESSAGE_STATE_FAILED])))
    assert len(failed) == 1 and failed[0] not in robot + app
    cut = Timestamp()
    cut.FromNanoseconds(int(middle * 1e9))
    assert flat(await list_all(gateway, only(end_time=cut))) == list(reversed(robot))
    later = flat(await list_all(gateway, only(start_time=cut, account="corp-app")))
    assert later == list(reversed(app))
    assert flat(await list_all(gateway, only(labels={"batch": label, "n": "1"}))) == [app[1], robot[1]]
    assert (
        flat(await list_all(gateway, only(labels={"batch": label, "n": "9"}))) == []
    )  # every label must match
    one = pb.ListMessagesRequest(labels={"batch": label, "n": "1"}, account="corp-app")
    assert flat(await list_all(gateway, one)) == [app[1]]


async def test_list_messages_shows_only_the_callers_tenant(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]
    await send_batch(gateway, label, 2)

    theirs = await list_all(gateway, pb.ListMessagesRequest(labels={"batch": label}), BETA)

    assert theirs == [[]]


async def test_a_page_token_is_refused_with_other_filters_or_when_not_ours(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]
    await send_batch(gateway, label, 3)
    page = await gateway.stub.ListMessages(
        pb.ListMessagesRequest(page_size=1, labels={"batch": label}), metadata=ALPHA, timeout=5
    )
    assert page.next_page_token

    other_filter = pb.ListMessagesRequest(page_token=page.next_page_token, account="corp-app")
    forged = pb.ListMessagesRequest(page_token="not-a-token")
    negative = pb.ListMessagesRequest(page_size=-1)
    for request in (other_filter, forged, negative):
        error = rich_error(await refused(gateway.stub.ListMessages(request, metadata=ALPHA, timeout=5)))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert set(error.violations) <= {"page_token", "page_size"} and error.violations


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(0, -1), (0, 1_000_000_000), (-62_135_596_801, 0), (253_402_300_800, 0)],
    ids=["negative nanos", "a whole second of nanos", "before year 1", "after year 9999"],
)
@pytest.mark.parametrize("field", ["start_time", "end_time"])
async def test_a_time_filter_outside_what_a_timestamp_allows_names_the_field(
    gateway: Gateway, field: str, seconds: int, nanos: int
) -> None:
    request = pb.ListMessagesRequest(**{field: Timestamp(seconds=seconds, nanos=nanos)})
    error = rich_error(await refused(gateway.stub.ListMessages(request, metadata=ALPHA, timeout=5)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.violations) == [field]


# -- deadlines ----------------------------------------------------------------------------------------


async def test_a_send_whose_deadline_leaves_no_time_for_the_vendor_is_not_sent(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]
    request = text("team-wecom", "too late", labels={"batch": label})

    error = rich_error(await refused(gateway.stub.Send(request, metadata=ALPHA, timeout=0.15)))

    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert gateway.sandbox.delivered("wecom_robot", "team-wecom") == []
    [[message_id]] = await list_all(gateway, pb.ListMessagesRequest(labels={"batch": label}))
    record = await get(gateway, message_id)
    assert record.state == pb.MESSAGE_STATE_FAILED and not record.attempts


async def test_a_deadline_that_passes_during_the_vendor_call_leaves_the_message_unknown(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, metric_reader: InMemoryMetricReader
) -> None:
    deadline_exceeded = {
        "rpc.method": "Send",
        "rpc.grpc.status_code": grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
    }
    counted_before = total(metric_reader, "notify.rpc.calls", **deadline_exceeded)
    label = uuid.uuid4().hex[:8]
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", delay=1.0)  # delivered, answered late
    request = text("team-wecom", "slow vendor", labels={"batch": label}, idempotency_key=label)

    with caplog.at_level(logging.INFO, logger="gateway.access"):
        error = await refused(gateway.stub.Send(request, metadata=ALPHA, timeout=0.5))
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        [[message_id]] = await list_all(gateway, pb.ListMessagesRequest(labels={"batch": label}))
        await wait_until(lambda: _access_line(caplog, message_id) is not None, "the Send's access log line")

    record = await get(gateway, message_id)
    assert record.state == pb.MESSAGE_STATE_UNKNOWN, record
    assert [a.outcome for a in record.attempts] == [pb.DeliveryAttempt.OUTCOME_AMBIGUOUS]
    assert len(gateway.sandbox.delivered("wecom_robot", "team-wecom")) == 1
    line = _access_line(caplog, message_id)
    assert line is not None and line.status == "DEADLINE_EXCEEDED"
    assert total(metric_reader, "notify.rpc.calls", **deadline_exceeded) - counted_before == 1

    retry = await gateway.stub.Send(request, metadata=ALPHA, timeout=5)
    assert (retry.message_id, retry.state, retry.duplicate) == (message_id, pb.MESSAGE_STATE_UNKNOWN, True)
    assert len(gateway.sandbox.delivered("wecom_robot", "team-wecom")) == 1


def _access_line(caplog: pytest.LogCaptureFixture, message_id: str) -> logging.LogRecord | None:
    return next((r for r in caplog.records if getattr(r, "message_id", "") == message_id), None)


# -- vendor dedup keys ----------------------------------------------------------------------------------


async def test_two_tenants_using_one_key_both_deliver_with_distinct_msg_uuids(gateway: Gateway) -> None:
    request = text("ops-dingtalk", "same key, two tenants", idempotency_key="shared-key")

    first = await gateway.stub.Send(request, metadata=ALPHA, timeout=5)
    second = await gateway.stub.Send(request, metadata=BETA, timeout=5)

    assert first.message_id != second.message_id and not second.duplicate
    delivered = gateway.sandbox.delivered("dingtalk_robot", "ops-dingtalk")
    assert [d.body["msgUuid"] for d in delivered] == [first.message_id, second.message_id]
    assert not any(d.duplicate for d in delivered)


async def test_sends_with_deadlines_of_a_few_milliseconds_never_reach_the_vendor(gateway: Gateway) -> None:
    label = uuid.uuid4().hex[:8]

    async def tiny(n: int) -> None:
        request = text("team-wecom", f"{label} {n}", labels={"batch": label})
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.stub.Send(request, metadata=ALPHA, timeout=0.001 * (1 + n % 3))
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    await asyncio.gather(*(tiny(n) for n in range(40)))
    await asyncio.sleep(0.3)  # anything still running on the gateway's side has ended

    assert gateway.sandbox.delivered("wecom_robot", "team-wecom") == []
    records = [
        m for page in await list_all(gateway, pb.ListMessagesRequest(labels={"batch": label})) for m in page
    ]
    for message_id in records:  # those that got as far as a record say so, and were not sent
        record = await get(gateway, message_id)
        assert record.state == pb.MESSAGE_STATE_FAILED and not record.attempts
