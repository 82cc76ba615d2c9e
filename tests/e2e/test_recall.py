"""Recall withdraws an application message at the vendor and remembers that it did.

Both app channels (WeCom app, DingTalk work notification) are driven end to end: a real Send, a
real Recall, the sandbox's record of what the vendor withdrew, and the gateway's message record.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import grpc
import pytest

from gateway.config import Config, TenantSettings
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, gateway_config, running_gateway
from tests.rich_status import RichError, rich_error

DAY = 24 * 3600


@dataclass(frozen=True)
class App:
    account: str  # the gateway account, also the sandbox app's name
    channel: str
    recipient: str  # a user the sandbox app's directory knows
    sent_state: int  # where a delivered message stands
    recall_path: str


WECOM = App("corp-app", "wecom_app", "zhangsan", pb.MESSAGE_STATE_SENT, "/cgi-bin/message/recall")
DINGTALK = App(
    "ding-app",
    "dingtalk_work",
    "user01",
    pb.MESSAGE_STATE_SENT,
    "/topapi/message/corpconversation/recall",
)
APPS = pytest.mark.parametrize("app", [WECOM, DINGTALK], ids=lambda app: app.account)


async def send(gateway: Gateway, app: App, metadata: tuple[tuple[str, str], ...] = ()) -> pb.SendResponse:
    # Distinct content each time: DingTalk silently drops the same content to the same user.
    request = pb.SendRequest(
        account=app.account,
        recipients=pb.Recipients(user_ids=[app.recipient]),
        message=pb.Message(text=pb.Text(content=f"deploy {uuid.uuid4().hex[:8]} finished")),
    )
    sent = await gateway.stub.Send(request, metadata=metadata)
    assert sent.state == app.sent_state
    assert sent.recallable is True
    assert sent.vendor_message_id
    return sent


async def recall(
    gateway: Gateway, message_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> pb.RecallResponse:
    return await gateway.stub.Recall(pb.RecallRequest(message_id=message_id), metadata=metadata)


async def recall_refused(
    gateway: Gateway, message_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recall(gateway, message_id, metadata)
    return rich_error(caught.value)


def recall_calls(gateway: Gateway, app: App) -> int:
    return sum(1 for entry in gateway.sandbox.received(robot=app.account) if entry.msgtype == "recall")


async def record_state(gateway: Gateway, message_id: str) -> int:
    record = await gateway.server.stores.records.get(message_id)
    assert record is not None, f"no record of {message_id}"
    return record.record.state


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


# -- the happy path -------------------------------------------------------------------------------


@APPS
async def test_recall_withdraws_the_message_at_the_vendor_and_records_it(gateway: Gateway, app: App) -> None:
    sent = await send(gateway, app)

    recalled = await recall(gateway, sent.message_id)

    assert recalled.message_id == sent.message_id
    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert gateway.sandbox.recalled(app.account) == [sent.vendor_message_id]
    assert await record_state(gateway, sent.message_id) == pb.MESSAGE_STATE_RECALLED


@APPS
async def test_recalling_twice_answers_recalled_without_asking_the_vendor_again(
    gateway: Gateway, app: App
) -> None:
    sent = await send(gateway, app)
    await recall(gateway, sent.message_id)
    assert recall_calls(gateway, app) == 1

    again = await recall(gateway, sent.message_id)

    assert again.message_id == sent.message_id
    assert again.state == pb.MESSAGE_STATE_RECALLED
    assert recall_calls(gateway, app) == 1
    assert gateway.sandbox.recalled(app.account) == [sent.vendor_message_id]


# -- tenants ----------------------------------------------------------------------------------------

KEY_A = "tenant-a-key-5f0e2c91"
KEY_B = "tenant-b-key-a83d7b04"


def two_tenants(config: Config) -> Config:
    """Tenants alpha and beta, with keys of their own, may both use both app accounts."""
    tenants = [
        TenantSettings(name=name, api_keys=[hash_key(key)], accounts=[WECOM.account, DINGTALK.account])
        for name, key in (("alpha", KEY_A), ("beta", KEY_B))
    ]
    return config.model_copy(update={"auth": "api_keys", "tenants": tenants})


@pytest.fixture
async def tenant_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with running_gateway(two_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        yield gateway


async def test_a_tenant_recalls_its_own_message(tenant_gateway: Gateway) -> None:
    sent = await send(tenant_gateway, WECOM, bearer(KEY_A))

    recalled = await recall(tenant_gateway, sent.message_id, bearer(KEY_A))

    assert recalled.state == pb.MESSAGE_STATE_RECALLED
    assert tenant_gateway.sandbox.recalled(WECOM.account) == [sent.vendor_message_id]


async def test_another_tenants_message_is_not_found_exactly_like_an_unknown_one(
    tenant_gateway: Gateway,
) -> None:
    sent = await send(tenant_gateway, WECOM, bearer(KEY_A))
    unknown_id = "01J" + "0" * 23

    foreign = await recall_refused(tenant_gateway, sent.message_id, bearer(KEY_B))
    unknown = await recall_refused(tenant_gateway, unknown_id, bearer(KEY_B))

    assert foreign.code == unknown.code == grpc.StatusCode.NOT_FOUND
    # Nothing tells "exists, but not yours" from "does not exist": same text, same details.
    assert foreign.message.replace(sent.message_id, "<id>") == unknown.message.replace(unknown_id, "<id>")
    assert foreign.error_info is not None and unknown.error_info is not None
    assert foreign.error_info.reason == unknown.error_info.reason
    assert dict(foreign.error_info.metadata) == dict(unknown.error_info.metadata)
    assert tenant_gateway.sandbox.recalled(WECOM.account) == []
    assert recall_calls(tenant_gateway, WECOM) == 0
    assert await record_state(tenant_gateway, sent.message_id) == WECOM.sent_state


# -- the 24-hour window -------------------------------------------------------------------------------


@APPS
async def test_recall_past_24_hours_by_the_gateways_record_is_refused_without_a_vendor_call(
    gateway: Gateway, app: App
) -> None:
    sent = await send(gateway, app)
    records = gateway.server.stores.records
    record = await records.get(sent.message_id)
    assert record is not None
    record.record.create_time.FromSeconds(int(time.time() - 25 * 3600))
    assert await records.put(record)

    error = await recall_refused(gateway, sent.message_id)

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None and error.error_info.reason == "RECALL_WINDOW_PASSED"
    assert "24 hours" in error.message
    assert recall_calls(gateway, app) == 0
    assert await record_state(gateway, sent.message_id) == app.sent_state


@APPS
async def test_recall_the_vendor_says_is_too_late_is_a_failed_precondition(
    gateway: Gateway, app: App
) -> None:
    sent = await send(gateway, app)
    # The vendor's clock says a day and more has passed; the gateway's record does not.
    gateway.sandbox.clock.advance(25 * 3600)

    error = await recall_refused(gateway, sent.message_id)

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.error_info is not None and error.error_info.reason == "RECALL_WINDOW_PASSED"
    assert recall_calls(gateway, app) >= 1, "the refusal came from the vendor"
    assert gateway.sandbox.recalled(app.account) == []
    assert await record_state(gateway, sent.message_id) == app.sent_state


# -- other vendor refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "errcode", "status"),
    [
        (WECOM, 60011, grpc.StatusCode.PERMISSION_DENIED),
        (WECOM, 45009, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DINGTALK, 60011, grpc.StatusCode.PERMISSION_DENIED),
        (DINGTALK, 90018, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=["wecom-no-privilege", "wecom-rate-limited", "dingtalk-no-permission", "dingtalk-throttled"],
)
async def test_a_vendor_refusal_of_recall_maps_to_its_status_and_leaves_the_message_recallable(
    gateway: Gateway, app: App, errcode: int, status: grpc.StatusCode
) -> None:
    sent = await send(gateway, app)
    gateway.sandbox.inject_fault(app.channel, app.account, errcode=errcode, path=app.recall_path)

    error = await recall_refused(gateway, sent.message_id)

    assert error.code == status
    assert error.error_info is not None
    assert error.error_info.metadata["vendor_errcode"] == str(errcode)
    assert error.error_info.reason != "RECALL_WINDOW_PASSED"
    assert gateway.sandbox.recalled(app.account) == []
    assert await record_state(gateway, sent.message_id) == app.sent_state
    # Nothing was withdrawn, so once the vendor agrees the message can still be recalled.
    assert (await recall(gateway, sent.message_id)).state == pb.MESSAGE_STATE_RECALLED
    assert gateway.sandbox.recalled(app.account) == [sent.vendor_message_id]


# -- records in Redis ---------------------------------------------------------------------------------------


def redis_config(sandbox: SandboxServer, redis_url: str, namespace: str) -> Config:
    return gateway_config(sandbox.url).model_copy(
        update={"token_store": redis_url, "key_namespace": namespace}
    )


@APPS
async def test_with_records_in_redis_another_replica_recalls_what_one_sent(
    sandbox: SandboxServer, redis_url: str, namespace: str, app: App
) -> None:
    config = redis_config(sandbox, redis_url, namespace)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_gateway(config, sandbox.state))
        second = await stack.enter_async_context(running_gateway(config, sandbox.state))
        sent = await send(first, app)
        assert await record_state(second, sent.message_id) == app.sent_state

        recalled = await recall(second, sent.message_id)

        assert recalled.state == pb.MESSAGE_STATE_RECALLED
        assert sandbox.state.recalled(app.account) == [sent.vendor_message_id]
        assert await record_state(first, sent.message_id) == pb.MESSAGE_STATE_RECALLED
        # The first replica sees the recall too, and does not ask the vendor again.
        assert (await recall(first, sent.message_id)).state == pb.MESSAGE_STATE_RECALLED
        assert recall_calls(first, app) == 1


async def test_with_records_in_redis_send_and_recall_work_on_one_replica(
    sandbox: SandboxServer, redis_url: str, namespace: str
) -> None:
    async with running_gateway(redis_config(sandbox, redis_url, namespace), sandbox.state) as gateway:
        sent = await send(gateway, WECOM)
        assert (await recall(gateway, sent.message_id)).state == pb.MESSAGE_STATE_RECALLED
        assert await record_state(gateway, sent.message_id) == pb.MESSAGE_STATE_RECALLED
        assert sandbox.state.recalled(WECOM.account) == [sent.vendor_message_id]
