"""A Send with an idempotency_key is delivered once, however often and however concurrently it is repeated.

The WeCom robot is used: it has no vendor-side de-duplication (unlike DingTalk's msgUuid), so what
the sandbox received is exactly what the gateway let through. Every case runs with the in-process
memory store and with the shared Redis store.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator

import grpc
import pytest
import yaml

from gateway.config import Config
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway
from tests.rich_status import rich_error

CHANNEL = "wecom_robot"
ROBOT = "team-wecom"
CONCURRENT = 50
RED_KEY = "red-team-api-key-7d1c90"
BLUE_KEY = "blue-team-api-key-e3a514"


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, str]:
    """The store settings of the parametrized backend."""
    if request.param == "memory":
        return {"token_store": "memory://"}
    return {
        "token_store": request.getfixturevalue("redis_url"),
        "key_namespace": request.getfixturevalue("namespace"),
    }


@pytest.fixture
async def gateway_on_store(sandbox: SandboxServer, store: dict[str, str]) -> AsyncIterator[Gateway]:
    async with running_gateway(configured(gateway_config(sandbox.url), **store), sandbox.state) as gateway:
        yield gateway


def request(key: str, content: str = "deploy finished") -> pb.SendRequest:
    return pb.SendRequest(
        account=ROBOT, message=pb.Message(text=pb.Text(content=content)), idempotency_key=key
    )


def vendor_calls(gateway: Gateway) -> int:
    return len(gateway.sandbox.received(CHANNEL, ROBOT))


async def test_a_repeated_send_replays_the_first_answer_and_delivers_once(gateway_on_store: Gateway) -> None:
    first = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)
    again = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)

    assert first.duplicate is False
    assert again.duplicate is True
    assert again.message_id == first.message_id
    assert again.state == first.state == pb.MESSAGE_STATE_SENT
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 1
    assert vendor_calls(gateway_on_store) == 1, "the repeat never reached the vendor"


async def test_sends_with_different_keys_are_each_delivered(gateway_on_store: Gateway) -> None:
    first = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)
    second = await gateway_on_store.stub.Send(request("deploy-43"), timeout=5)

    assert not first.duplicate and not second.duplicate
    assert first.message_id != second.message_id
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 2


async def test_fifty_concurrent_repeats_deliver_once_and_all_answer_the_same_message(
    gateway_on_store: Gateway,
) -> None:
    # Hold the vendor's answer a little, so the repeats arrive while the first is in flight.
    gateway_on_store.sandbox.inject_fault(CHANNEL, ROBOT, delay=0.3)

    replies = await asyncio.gather(
        *(gateway_on_store.stub.Send(request("incident-7"), timeout=10) for _ in range(CONCURRENT))
    )

    assert len({reply.message_id for reply in replies}) == 1
    assert sum(reply.duplicate for reply in replies) == CONCURRENT - 1
    assert all(reply.state == pb.MESSAGE_STATE_SENT for reply in replies)
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 1
    assert vendor_calls(gateway_on_store) == 1


async def test_the_same_key_with_a_different_request_is_invalid_argument(gateway_on_store: Gateway) -> None:
    await gateway_on_store.stub.Send(request("deploy-42", "deploy finished"), timeout=5)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_on_store.stub.Send(request("deploy-42", "deploy FAILED"), timeout=5)

    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in error.violations
    assert vendor_calls(gateway_on_store) == 1


async def test_a_failed_first_attempt_does_not_poison_the_key(gateway_on_store: Gateway) -> None:
    gateway_on_store.sandbox.inject_fault(CHANNEL, ROBOT, errcode=45009, errmsg="api freq out of limit")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert gateway_on_store.sandbox.delivered(CHANNEL, ROBOT) == []

    retry = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)

    assert retry.duplicate is False
    assert retry.state == pb.MESSAGE_STATE_SENT
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 1
    again = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)
    assert again.duplicate is True and again.message_id == retry.message_id


async def test_a_vendor_outage_on_the_first_attempt_leaves_the_key_free_for_a_retry(
    gateway_on_store: Gateway,
) -> None:
    gateway_on_store.sandbox.inject_fault(CHANNEL, ROBOT, http_status=503, times=3)  # every attempt
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    retry = await gateway_on_store.stub.Send(request("deploy-42"), timeout=5)

    assert retry.duplicate is False
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 1


# -- tenants ----------------------------------------------------------------------------------


def with_two_tenants(base: Config, store: dict[str, str]) -> Config:
    tenants = yaml.safe_load(
        textwrap.dedent(
            f"""
            - name: red
              api_keys: ["{hash_key(RED_KEY)}"]
              accounts: ["*"]
            - name: blue
              api_keys: ["{hash_key(BLUE_KEY)}"]
              accounts: ["*"]
            """
        )
    )
    return configured(base, tenants=tenants, **store)


async def test_idempotency_keys_are_scoped_per_tenant(sandbox: SandboxServer, store: dict[str, str]) -> None:
    config = with_two_tenants(gateway_config(sandbox.url), store)
    async with running_gateway(config, sandbox.state) as gateway:
        red = await gateway.stub.Send(
            request("nightly-report"), metadata=(("authorization", f"Bearer {RED_KEY}"),), timeout=5
        )
        blue = await gateway.stub.Send(
            request("nightly-report"), metadata=(("authorization", f"Bearer {BLUE_KEY}"),), timeout=5
        )

    assert red.duplicate is False
    assert blue.duplicate is False
    assert blue.message_id != red.message_id
    assert len(sandbox.state.delivered(CHANNEL, ROBOT)) == 2


async def test_with_tenants_a_repeat_by_the_same_tenant_is_still_a_duplicate(
    sandbox: SandboxServer, store: dict[str, str]
) -> None:
    config = with_two_tenants(gateway_config(sandbox.url), store)
    red_key = (("authorization", f"Bearer {RED_KEY}"),)
    async with running_gateway(config, sandbox.state) as gateway:
        first = await gateway.stub.Send(request("nightly-report"), metadata=red_key, timeout=5)
        again = await gateway.stub.Send(request("nightly-report"), metadata=red_key, timeout=5)

    assert again.duplicate is True and again.message_id == first.message_id
    assert len(sandbox.state.delivered(CHANNEL, ROBOT)) == 1


async def test_concurrent_repeats_take_over_when_the_first_attempt_fails(gateway_on_store: Gateway) -> None:
    # The first attempt is held, then refused; the repeats waiting on it must not all fail with it.
    gateway_on_store.sandbox.inject_fault(
        CHANNEL, ROBOT, errcode=45009, errmsg="api freq out of limit", delay=0.3
    )

    async def send() -> pb.SendResponse:
        return await gateway_on_store.stub.Send(request("incident-9"), timeout=10)

    first = asyncio.create_task(send())
    for _ in range(250):
        if gateway_on_store.sandbox.received(CHANNEL, ROBOT):
            break
        await asyncio.sleep(0.02)
    repeats = await asyncio.gather(*(send() for _ in range(9)))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await first
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len({reply.message_id for reply in repeats}) == 1
    assert sum(reply.duplicate for reply in repeats) == len(repeats) - 1
    assert len(gateway_on_store.sandbox.delivered(CHANNEL, ROBOT)) == 1
