"""Queued delivery through a real gateway (its workers in the same process), the sandbox and Redis:
a queued Send answers ACCEPTED at once, and the message moves to its outcome in its record.

What these show: the answer comes before any vendor call; the record moves ACCEPTED -> SENDING ->
SENT as WatchMessage sees it; a replay with the same key answers the same message; the queue bound
refuses with RetryInfo; a vendor that is down makes workers retry until the message expires, and
then it is EXPIRED; the worker's span links to the Send's trace. The crash, burst and Redis-restart
cases, with separate worker processes, are in test_queue_processes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import QueueSettings
from gateway.sandbox import SandboxServer
from gateway.sandbox.faults import Fault
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until
from tests.e2e.test_telemetry import total
from tests.rich_status import rich_error

QUEUED = pb.SendOptions(delivery=pb.DELIVERY_MODE_QUEUED)
FAST_RETRIES = QueueSettings(
    visibility_timeout_seconds=2, retry_base_seconds=0.1, retry_max_seconds=0.3, attempt_timeout_seconds=2
)


@pytest.fixture
async def queued(sandbox: SandboxServer, redis_url: str, namespace: str) -> AsyncIterator[Gateway]:
    config = gateway_config(
        sandbox.url,
        extra_accounts="""
        queued-wecom:
          channel: wecom_robot
          key: queued-wecom-key-17
          base_url: {url}
          delivery: queued
          queue_limit: 3
          rate_limit_per_minute: 0
        """.replace("{url}", sandbox.url),
        token_store=redis_url,
    )
    sandbox.state.add_wecom_robot("queued-wecom", "queued-wecom-key-17")
    config = configured(config, key_namespace=namespace, queue=FAST_RETRIES)
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


def text(account: str, content: str, **fields: object) -> pb.SendRequest:
    return pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content=content)), **fields)


async def final_record(gateway: Gateway, message_id: str, attempts: int = 500) -> pb.MessageRecord:
    found: list[pb.MessageRecord] = []

    async def check() -> bool:
        reply = await gateway.stub.GetMessage(pb.GetMessageRequest(message_id=message_id))
        found[:] = [reply.message]
        return reply.message.final

    for _ in range(attempts):
        if await check():
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {message_id} never reached a final state: {found}")


async def test_a_queued_send_answers_accepted_and_the_record_moves_to_sent(queued: Gateway) -> None:
    reply = await queued.stub.Send(text("team-wecom", "queued hello", options=QUEUED))
    assert reply.state == pb.MESSAGE_STATE_ACCEPTED and reply.message_id and not reply.duplicate

    record = await final_record(queued, reply.message_id)
    assert record.state == pb.MESSAGE_STATE_SENT
    assert record.delivery == pb.DELIVERY_MODE_QUEUED
    assert [pb.MessageState.Name(c.state) for c in record.history] == [
        "MESSAGE_STATE_ACCEPTED",
        "MESSAGE_STATE_SENDING",
        "MESSAGE_STATE_SENT",
    ]
    assert [a.outcome for a in record.attempts] == [pb.DeliveryAttempt.OUTCOME_ACCEPTED]
    delivered = [r for r in queued.sandbox.received(robot="team-wecom") if r.delivered]
    assert [r.body["text"]["content"] for r in delivered] == ["queued hello"]


async def test_the_accounts_default_mode_queues_and_sync_can_still_be_asked(queued: Gateway) -> None:
    reply = await queued.stub.Send(text("queued-wecom", "by default"))
    assert reply.state == pb.MESSAGE_STATE_ACCEPTED
    assert (await final_record(queued, reply.message_id)).state == pb.MESSAGE_STATE_SENT

    sync = pb.SendOptions(delivery=pb.DELIVERY_MODE_SYNC)
    reply = await queued.stub.Send(text("queued-wecom", "in the call", options=sync))
    assert reply.state == pb.MESSAGE_STATE_SENT


async def test_watch_sees_a_queued_message_move(queued: Gateway) -> None:
    queued.sandbox.faults.add("wecom_robot", "team-wecom", Fault(delay=0.5))
    reply = await queued.stub.Send(text("team-wecom", "watched", options=QUEUED))
    states = [
        update.message.state
        async for update in queued.stub.WatchMessage(pb.WatchMessageRequest(message_id=reply.message_id))
    ]
    assert states[-1] == pb.MESSAGE_STATE_SENT
    assert pb.MESSAGE_STATE_SENDING in states


async def test_a_replay_with_the_same_key_answers_the_same_queued_message(queued: Gateway) -> None:
    request = text("team-wecom", "once", options=QUEUED, idempotency_key="queued-order-1")
    first = await queued.stub.Send(request)
    again = await queued.stub.Send(request)
    assert again.message_id == first.message_id and again.duplicate
    await final_record(queued, first.message_id)
    third = await queued.stub.Send(request)
    assert third.message_id == first.message_id and third.state == pb.MESSAGE_STATE_SENT
    delivered = [r for r in queued.sandbox.received(robot="team-wecom") if r.delivered]
    assert len(delivered) == 1

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await queued.stub.Send(text("team-wecom", "other", options=QUEUED, idempotency_key="queued-order-1"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in (refused.value.details() or "")


async def test_past_the_queue_bound_send_is_refused_with_retry_info(queued: Gateway) -> None:
    # The vendor holds its answers, so the account's three queued messages stay queued for a while.
    queued.sandbox.faults.add("wecom_robot", "queued-wecom", Fault(delay=1.5), times=3)
    for n in range(3):
        await queued.stub.Send(text("queued-wecom", f"fill {n}"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await queued.stub.Send(text("queued-wecom", "one too many"))
    error = rich_error(refused.value)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.error_info is not None and error.error_info.reason == "QUEUE_FULL"
    assert error.retry_delay is not None and error.retry_delay >= 1.0


async def test_a_vendor_that_stays_down_makes_the_message_expired_not_dropped(queued: Gateway) -> None:
    queued.sandbox.faults.add("wecom_robot", "team-wecom", Fault(http_status=503), times=1000)
    expire = Duration(seconds=1)
    reply = await queued.stub.Send(
        text(
            "team-wecom",
            "never",
            options=pb.SendOptions(delivery=pb.DELIVERY_MODE_QUEUED, expire_after=expire),
        )
    )
    record = await final_record(queued, reply.message_id)
    assert record.state == pb.MESSAGE_STATE_EXPIRED
    assert record.attempts and all(a.outcome == pb.DeliveryAttempt.OUTCOME_REFUSED for a in record.attempts)
    states = [change.state for change in record.history]
    assert states.count(pb.MESSAGE_STATE_SENDING) >= 2  # tried again after the first refusal
    assert not [r for r in queued.sandbox.received(robot="team-wecom") if r.delivered]


async def test_an_ambiguous_attempt_is_unknown_and_not_resent(queued: Gateway) -> None:
    # WeCom robots do not drop repeats: after a timeout the message may have arrived; never resend.
    queued.sandbox.faults.add("wecom_robot", "team-wecom", Fault(delay=3.0))
    reply = await queued.stub.Send(text("team-wecom", "maybe", options=QUEUED))
    record = await final_record(queued, reply.message_id)
    assert record.state == pb.MESSAGE_STATE_UNKNOWN
    await asyncio.sleep(0.5)
    assert len(queued.sandbox.received(robot="team-wecom")) == 1


async def test_bad_queue_options_name_the_field(queued: Gateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await queued.stub.Send(
            text(
                "team-wecom",
                "x",
                options=pb.SendOptions(delivery=pb.DELIVERY_MODE_QUEUED, expire_after=Duration(seconds=-1)),
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "options.expire_after" in (refused.value.details() or "")


async def test_queued_delivery_needs_redis(gateway: Gateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gateway.stub.Send(text("team-wecom", "x", options=QUEUED))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = rich_error(refused.value).error_info
    assert info is not None and info.reason == "QUEUE_UNAVAILABLE"


async def test_the_workers_delivery_span_links_to_the_send(
    queued: Gateway, spans: InMemorySpanExporter
) -> None:
    reply = await queued.stub.Send(text("team-wecom", "traced", options=QUEUED))
    await final_record(queued, reply.message_id)
    await wait_until(
        lambda: any(s.name == "queue.deliver" for s in spans.get_finished_spans()), "the delivery span"
    )
    finished = spans.get_finished_spans()
    delivery = next(s for s in finished if s.name == "queue.deliver")
    send = next(
        s
        for s in finished
        if s.attributes
        and s.attributes.get("notify.message_id") == reply.message_id
        and s.name != "queue.deliver"
        and s.parent is None
    )
    assert [link.context.trace_id for link in delivery.links] == [send.context.trace_id]
    assert delivery.context.trace_id != send.context.trace_id
    inside = [s for s in finished if s.parent is not None and s.parent.span_id == delivery.context.span_id]
    assert [s.name for s in inside] == ["vendor wecom_robot /cgi-bin/webhook/send"], "the vendor call"
    # The delivery's Redis operations (its record, the stream) are counted on it, not spanned: the
    # take-over from the record the job carries (with the rate slot), and the outcome with the job's end.
    assert (delivery.attributes or {}).get("notify.redis.calls") == 2
    # Nor read or taken over outside it, by the loop that started the job.
    assert not [s.name for s in finished if s.name in ("redis HGETALL", "redis EVALSHA record+acquire")]
    assert isinstance((delivery.attributes or {}).get("notify.redis.duration_ms"), float)


async def test_list_messages_shows_a_queued_message_while_it_waits(queued: Gateway) -> None:
    queued.sandbox.faults.add("wecom_robot", "queued-wecom", Fault(delay=1.0))
    reply = await queued.stub.Send(text("queued-wecom", "listed", labels={"batch": "list-queued"}))
    listed = await queued.stub.ListMessages(pb.ListMessagesRequest(account="queued-wecom"))
    mine = [m for m in listed.messages if m.message_id == reply.message_id]
    assert len(mine) == 1
    assert mine[0].state in (pb.MESSAGE_STATE_ACCEPTED, pb.MESSAGE_STATE_SENDING)
    assert mine[0].delivery == pb.DELIVERY_MODE_QUEUED and mine[0].HasField("expire_time")


async def test_queue_metrics_count_accepts_and_outcomes(
    queued: Gateway, metric_reader: InMemoryMetricReader
) -> None:
    labels = {"notify.account": "queued-wecom"}
    accepted = total(metric_reader, "notify.queue.accepted", **labels)
    sent = total(metric_reader, "notify.queue.deliveries", outcome="sent", **labels)
    timed = total(metric_reader, "notify.queue.accept_to_final", outcome="sent", **labels)

    reply = await queued.stub.Send(text("queued-wecom", "counted"))
    await final_record(queued, reply.message_id)

    assert total(metric_reader, "notify.queue.accepted", **labels) - accepted == 1
    await wait_until(
        lambda: total(metric_reader, "notify.queue.deliveries", outcome="sent", **labels) - sent == 1,
        "the delivery to be counted",
    )
    assert total(metric_reader, "notify.queue.accept_to_final", outcome="sent", **labels) - timed == 1
