"""The gateway keeps robots under their vendor limit across replicas, and tenants under their quotas.

A robot that sees a 21st message in a minute answers a rate-limit errcode (DingTalk then throttles
it for ten minutes), so the gateway must refuse the excess itself, with RetryInfo, before the
vendor sees it: counted in the shared Redis, whichever replica takes the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as redis
import yaml

from gateway.config import Config
from gateway.sandbox import SandboxServer
from gateway.server import GatewayServer
from gateway.store.rate_limits import rate_keys
from gateway.store.redis_connection import KeySpace
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import Gateway, configured, gateway_config, running_gateway
from tests.gateway_process import free_port, gateway_process
from tests.rich_status import RichError, rich_error

ROBOT_LIMIT = 20  # both robot vendors: 20 messages a minute per robot
VENDOR_RATE_ERRCODES = {45009, 130101}  # WeCom "api freq out of limit", DingTalk "send too fast"
BATCH_KEY = "batch-tenant-key-0c7e5b"
OPS_KEY = "ops-tenant-key-9a14f2"

ROBOTS = [
    pytest.param("plain-dingtalk", "dingtalk_robot", id="dingtalk-robot"),
    pytest.param("team-wecom", "wecom_robot", id="wecom-robot"),
]


def text(account: str, n: int, **fields: object) -> pb.SendRequest:
    return pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content=f"alert {n}")), **fields)  # type: ignore[arg-type]


async def refused(call: object) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return rich_error(caught.value)


# -- a second replica, as a real process ------------------------------------------------------


def replica_config(directory: Path, sandbox_url: str, redis_url: str, namespace: str, port: int) -> Path:
    """A second replica's config: the two robots, sharing the test's Redis and key namespace."""
    config = directory / "replica.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 1
              drain_delay_seconds: 0
            auth: none
            token_store: {redis_url}
            key_namespace: {namespace}
            accounts:
              team-wecom:
                channel: wecom_robot
                key: ${{TEST_WECOM_KEY}}
                base_url: {sandbox_url}
              plain-dingtalk:
                channel: dingtalk_robot
                access_token: ${{TEST_DINGTALK_PLAIN_TOKEN}}
                base_url: {sandbox_url}
            """
        ),
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize(("account", "channel"), ROBOTS)
async def test_two_replicas_sharing_redis_deliver_only_the_robots_twenty_a_minute(
    sandbox: SandboxServer, redis_url: str, namespace: str, tmp_path: Path, account: str, channel: str
) -> None:
    config = configured(gateway_config(sandbox.url), token_store=redis_url, key_namespace=namespace)
    port = free_port()
    async with (
        GatewayServer(config) as server,
        grpc.aio.insecure_channel(server.address) as in_process_channel,
        gateway_process(replica_config(tmp_path, sandbox.url, redis_url, namespace, port), port) as process,
    ):
        replicas = [pb_grpc.NotificationServiceStub(in_process_channel), process.stub]
        outcomes = await asyncio.gather(
            *(replicas[n % 2].Send(text(account, n), timeout=10) for n in range(30)),
            return_exceptions=True,
        )

    for replica in (0, 1):  # each took 15 calls, so each delivered at least 5 of the 20
        assert any(isinstance(o, pb.SendResponse) for o in outcomes[replica::2]), replica
    sent = [o for o in outcomes if isinstance(o, pb.SendResponse)]
    errors = [rich_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(sent) + len(errors) == 30, [o for o in outcomes if not isinstance(o, pb.SendResponse)]
    assert len(sent) == ROBOT_LIMIT
    assert len(errors) == 30 - ROBOT_LIMIT
    for error in errors:
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED, error.message
        assert error.retry_delay is not None and error.retry_delay > 0
        assert account in error.message
    assert len(sandbox.state.delivered(channel, account)) == ROBOT_LIMIT
    received = sandbox.state.received(channel, account)
    assert len(received) == ROBOT_LIMIT, "the excess never reached the vendor"
    assert not [entry for entry in received if entry.errcode in VENDOR_RATE_ERRCODES]


async def test_waiting_for_the_rate_limit_fails_fast_when_the_deadline_is_too_short(
    gateway: Gateway,
) -> None:
    for n in range(ROBOT_LIMIT):
        await gateway.stub.Send(text("plain-dingtalk", n), timeout=5)

    error = await refused(
        gateway.stub.Send(
            text("plain-dingtalk", 21, options=pb.SendOptions(wait_for_rate_limit=True)), timeout=2
        )
    )

    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED  # not DEADLINE_EXCEEDED: it did not wait
    assert error.retry_delay is not None and error.retry_delay > 0
    assert len(gateway.sandbox.received("dingtalk_robot", "plain-dingtalk")) == ROBOT_LIMIT


LIMITED = """
    limited-wecom:
      channel: wecom_robot
      key: limited-wecom-key-4b7d
      base_url: {url}
      rate_limit_per_minute: 1
    """


async def take_slot_59_seconds_ago(redis_url: str, namespace: str, account: str) -> None:
    """Puts an admission 59 s old into the shared window, as another replica's Send would have.

    The window is a minute, so a slot frees in about a second: the waiting path runs without a
    minute-long sleep. (This writes the limiter's Redis layout, ``rate_keys``: a sorted set of
    admissions scored by Redis time in microseconds.)
    """
    client = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = await client.time()
        now_us = seconds * 1_000_000 + micros
        window, _ = rate_keys(KeySpace(namespace), f"account:{account}")
        await client.zadd(window, {"another-replica": now_us - 59_000_000})
    finally:
        await client.aclose()


@pytest.fixture
async def limited_gateway(sandbox: SandboxServer, redis_url: str, namespace: str) -> AsyncIterator[Gateway]:
    sandbox.state.add_wecom_robot("limited-wecom", "limited-wecom-key-4b7d")
    base = gateway_config(sandbox.url, extra_accounts=LIMITED.format(url=sandbox.url))
    config = configured(base, token_store=redis_url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        yield gateway


async def test_a_send_allowed_to_wait_is_delivered_when_a_slot_frees(
    limited_gateway: Gateway, redis_url: str, namespace: str
) -> None:
    await take_slot_59_seconds_ago(redis_url, namespace, "limited-wecom")

    reply = await limited_gateway.stub.Send(
        text("limited-wecom", 1, options=pb.SendOptions(wait_for_rate_limit=True)), timeout=10
    )

    assert reply.state == pb.MESSAGE_STATE_SENT
    assert len(limited_gateway.sandbox.delivered("wecom_robot", "limited-wecom")) == 1


async def test_a_send_not_allowed_to_wait_is_refused_with_the_time_until_a_slot_frees(
    limited_gateway: Gateway, redis_url: str, namespace: str
) -> None:
    await take_slot_59_seconds_ago(redis_url, namespace, "limited-wecom")

    error = await refused(limited_gateway.stub.Send(text("limited-wecom", 1), timeout=10))

    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_delay is not None and 0 < error.retry_delay <= 60
    assert limited_gateway.sandbox.received("wecom_robot", "limited-wecom") == []


async def test_an_account_rate_limit_per_minute_is_enforced(limited_gateway: Gateway) -> None:
    await limited_gateway.stub.Send(text("limited-wecom", 1), timeout=5)

    error = await refused(limited_gateway.stub.Send(text("limited-wecom", 2), timeout=5))

    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limited-wecom" in error.message
    assert len(limited_gateway.sandbox.received("wecom_robot", "limited-wecom")) == 1


async def test_rate_limit_per_minute_zero_turns_the_gateway_limit_off(sandbox: SandboxServer) -> None:
    sandbox.state.add_wecom_robot("unlimited-wecom", "unlimited-wecom-key-81aa")
    unlimited = f"""
        unlimited-wecom:
          channel: wecom_robot
          key: unlimited-wecom-key-81aa
          base_url: {sandbox.url}
          rate_limit_per_minute: 0
        """
    config = gateway_config(sandbox.url, extra_accounts=unlimited)
    async with running_gateway(config, sandbox.state) as gateway:
        for n in range(ROBOT_LIMIT):
            await gateway.stub.Send(text("unlimited-wecom", n), timeout=5)
        error = await refused(gateway.stub.Send(text("unlimited-wecom", 21), timeout=5))

    # The 21st went to the vendor, which refused it with its own code: the gateway did not count.
    received = sandbox.state.received("wecom_robot", "unlimited-wecom")
    assert len(received) == ROBOT_LIMIT + 1
    assert received[-1].errcode == 45009
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "45009"


# -- tenant quotas ----------------------------------------------------------------------------


def with_quota_tenants(base: Config) -> Config:
    tenants = yaml.safe_load(
        textwrap.dedent(
            f"""
            - name: batch
              api_keys: ["{hash_key(BATCH_KEY)}"]
              accounts: ["*"]
              quotas: {{sends_per_minute: 3}}
            - name: ops
              api_keys: ["{hash_key(OPS_KEY)}"]
              accounts: ["*"]
            """
        )
    )
    return configured(base, tenants=tenants)


def as_tenant(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def test_a_tenant_over_its_quota_is_refused_with_a_message_naming_it(sandbox: SandboxServer) -> None:
    async with running_gateway(with_quota_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        # The quota counts the tenant's Sends whatever account they use.
        for n, account in enumerate(("team-wecom", "plain-dingtalk", "team-wecom")):
            await gateway.stub.Send(text(account, n), metadata=as_tenant(BATCH_KEY), timeout=5)
        error = await refused(
            gateway.stub.Send(text("plain-dingtalk", 4), metadata=as_tenant(BATCH_KEY), timeout=5)
        )
        other = await gateway.stub.Send(text("plain-dingtalk", 5), metadata=as_tenant(OPS_KEY), timeout=5)

    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "batch" in error.message
    assert error.retry_delay is not None and error.retry_delay > 0
    assert error.error_info is not None and error.error_info.metadata["scope"] == "tenant"
    assert other.state == pb.MESSAGE_STATE_SENT, "another tenant is not held by batch's quota"
    assert len(sandbox.state.delivered()) == 4


async def test_sends_refused_by_a_tenant_quota_do_not_use_up_the_robots_limit(
    sandbox: SandboxServer,
) -> None:
    async with running_gateway(with_quota_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        for n in range(3 + 10):  # 3 within batch's quota, then 10 refused by it
            with contextlib.suppress(grpc.aio.AioRpcError):
                await gateway.stub.Send(text("team-wecom", n), metadata=as_tenant(BATCH_KEY), timeout=5)
        # The robot delivered 3 of its 20: another tenant may still use the other 17.
        for n in range(ROBOT_LIMIT - 3):
            await gateway.stub.Send(text("team-wecom", 100 + n), metadata=as_tenant(OPS_KEY), timeout=5)

    assert len(sandbox.state.delivered("wecom_robot", "team-wecom")) == ROBOT_LIMIT
