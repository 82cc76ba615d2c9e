"""What callers and robots see when the gateway's Redis stops and comes back.

- The first calls after Redis is back succeed: connections the pool held from before are dead,
  and a command on one is retried on a fresh connection instead of failing the call.
- A Redis without persistence comes back with empty rate windows, but the vendor still counts
  what it got before: the gateway lets no more than the limit per window reach a robot.
- While Redis is down, a caller is told which store is unavailable, never Redis's address or
  the gateway's exception classes (those go to the log).

Each test runs its own redis-server (``RedisProcess``), restarted on the same port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import grpc
import pytest

from gateway.sandbox import SandboxServer
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import configured, gateway_config, running_gateway
from tests.e2e.app_support import APPS, refused, text_request
from tests.redis_server import RedisProcess
from tests.rich_status import rich_error

ROBOT_LIMIT = 20  # both robot vendors: 20 messages a minute per robot
ROBOTS = [
    pytest.param("plain-dingtalk", "dingtalk_robot", id="dingtalk-robot"),
    pytest.param("team-wecom", "wecom_robot", id="wecom-robot"),
]
REDIS_ERRORS = ("ConnectionError", "TimeoutError", "RedisError", "Error ", "Errno", "Exception")


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.cleanup()


def restart(redis_process: RedisProcess) -> None:
    """Stops and starts the same redis-server: no persistence, so it comes back empty."""
    redis_process.stop()
    redis_process.start()


def robot_text(account: str, n: int) -> pb.SendRequest:
    return pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content=f"alert {n}")))


async def burst(stub: pb_grpc.NotificationServiceStub, requests: list[pb.SendRequest]) -> list[object]:
    return list(
        await asyncio.gather(
            *(stub.Send(request, timeout=10) for request in requests), return_exceptions=True
        )
    )


async def test_every_send_after_redis_comes_back_succeeds(
    sandbox: SandboxServer, redis_process: RedisProcess, namespace: str
) -> None:
    config = configured(gateway_config(sandbox.url), token_store=redis_process.url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        # Concurrent calls fill the pool with connections, all of which the restart kills.
        before = await burst(gateway.stub, [text_request(app, n) for app in APPS for n in range(10)])
        assert all(isinstance(reply, pb.SendResponse) for reply in before), before

        restart(redis_process)
        after = await burst(gateway.stub, [text_request(app, n) for app in APPS for n in range(10, 20)])
        stray = [rich_error(e).message for e in after if isinstance(e, grpc.aio.AioRpcError)]
        assert stray == [], "no call fails for a connection that died with the old Redis"
        sent = [reply for reply in after if isinstance(reply, pb.SendResponse)]
        record = await gateway.stub.GetMessage(
            pb.GetMessageRequest(message_id=sent[0].message_id), timeout=10
        )

    assert record.message.state == pb.MESSAGE_STATE_SENT
    for app in APPS:
        assert len(sandbox.state.delivered(app.channel, app.account)) == 20


@pytest.mark.parametrize(("account", "channel"), ROBOTS)
async def test_a_redis_restart_that_lost_the_rate_windows_lets_no_more_than_the_limit_reach_a_robot(
    sandbox: SandboxServer, redis_process: RedisProcess, namespace: str, account: str, channel: str
) -> None:
    config = configured(gateway_config(sandbox.url), token_store=redis_process.url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        first = await burst(gateway.stub, [robot_text(account, n) for n in range(ROBOT_LIMIT + 5)])
        restart(redis_process)  # the windows are gone; the vendor's are not
        second = await burst(gateway.stub, [robot_text(account, n) for n in range(100, 100 + ROBOT_LIMIT)])

    assert sum(isinstance(reply, pb.SendResponse) for reply in first) == ROBOT_LIMIT
    errors = [rich_error(e) for e in second if isinstance(e, grpc.aio.AioRpcError)]
    assert len(errors) == ROBOT_LIMIT, "nothing more within the window"
    for error in errors:
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED, error.message
        assert error.retry_delay is not None and 0 < error.retry_delay <= 61
    assert len(sandbox.state.received(channel, account)) == ROBOT_LIMIT, "the excess never reached the vendor"


async def test_with_redis_down_callers_are_told_which_store_but_not_where_it_is_or_why(
    sandbox: SandboxServer, redis_process: RedisProcess, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = configured(gateway_config(sandbox.url), token_store=redis_process.url, key_namespace=namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        sent = await gateway.stub.Send(text_request(APPS[0]), timeout=10)
        redis_process.stop()
        with caplog.at_level(logging.WARNING, logger="gateway"):
            errors = [
                await refused(gateway.stub.Send(robot_text("team-wecom", 1), timeout=10)),
                await refused(gateway.stub.Send(text_request(APPS[1]), timeout=10)),
                await refused(gateway.stub.GetMessage(pb.GetMessageRequest(message_id=sent.message_id))),
                await refused(gateway.stub.Recall(pb.RecallRequest(message_id=sent.message_id))),
            ]

    address = f"127.0.0.1:{redis_process.port}"
    for error in errors:
        assert error.code == grpc.StatusCode.UNAVAILABLE, error.message
        assert "unavailable (Redis)" in error.message
        assert str(redis_process.port) not in error.message
        assert not [name for name in REDIS_ERRORS if name in error.message], error.message
        assert error.error_info is not None
        for value in error.error_info.metadata.values():
            assert str(redis_process.port) not in value
    details = [getattr(r, "error", "") for r in caplog.records if r.getMessage() == "store unavailable"]
    assert any("ConnectionError" in detail and address in detail for detail in details), details
