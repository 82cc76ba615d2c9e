"""What health checks say about the gateway's store, and about a gateway that is shutting down.

- ``notify.v1.NotificationService`` is NOT_SERVING while Redis does not answer and SERVING again once
  it does; the server's own health ("") stays SERVING while the process is up.
- A gateway started while Redis is down starts anyway, logs one line saying the store is
  unreachable and why (never the Redis password), and serves once Redis comes.
- On SIGTERM the process reports NOT_SERVING for the drain delay while its port still answers
  calls, so load balancers stop routing to it before it closes; then it exits.

Each Redis test runs its own redis-server (``RedisProcess``); the checks run every 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import Config
from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import configured, gateway_config, running_gateway, seed_sandbox
from tests.gateway_process import SERVICE, config_file, free_port, gateway_process
from tests.redis_server import RedisProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STATUS_NAMES = {SERVING: "SERVING", NOT_SERVING: "NOT_SERVING"}
PASSWORD = "redis-pass-4e1d7c"


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.cleanup()


def checked_often(config: Config, token_store: str, namespace: str) -> Config:
    server = config.server.model_copy(update={"health_check_seconds": 0.05})
    return configured(config, server=server, token_store=token_store, key_namespace=namespace)


class Health:
    """The gateway's health as a load balancer polls it: the latest status of each service."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = health_pb2_grpc.HealthStub(channel)

    async def status(self, service: str = SERVICE) -> int:
        reply = await self.stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)

    async def becomes(self, expected: int, service: str = SERVICE) -> None:
        """Polls until `service` reports `expected`; fails after a bounded number of polls."""
        latest: list[int] = []

        async def check() -> bool:
            latest.append(await self.status(service))
            return latest[-1] == expected

        for _ in range(250):
            if await check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{service or 'the server'} never reported {STATUS_NAMES[expected]}; "
            f"last: {STATUS_NAMES.get(latest[-1], latest[-1])}"
        )


async def test_the_service_is_not_serving_while_redis_is_down_and_serving_once_it_is_back(
    sandbox: SandboxServer, redis_process: RedisProcess, namespace: str
) -> None:
    config = checked_often(gateway_config(sandbox.url), redis_process.url, namespace)
    async with running_gateway(config, sandbox.state) as gateway:
        health = Health(gateway.channel)
        assert await health.status() == SERVING

        redis_process.stop()
        await health.becomes(NOT_SERVING)
        assert await health.status("") == SERVING, "the process is up: only the service follows Redis"

        redis_process.start()
        await health.becomes(SERVING)
        assert await health.status("") == SERVING


async def test_a_gateway_started_while_redis_is_down_says_so_and_serves_once_redis_comes(
    sandbox: SandboxServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.store")
    redis_process = RedisProcess()  # its port, not yet listening
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_process.port}/0"
    config = checked_often(gateway_config(sandbox.url), url, namespace)
    try:
        async with running_gateway(config, sandbox.state) as gateway:
            health = Health(gateway.channel)
            assert await health.status() == NOT_SERVING
            assert await health.status("") == SERVING

            start_lines = [r for r in caplog.records if r.getMessage().startswith("store unreachable")]
            assert len(start_lines) == 1
            line = start_lines[0]
            assert line.levelno == logging.ERROR
            assert line.__dict__["store"] == f"redis://127.0.0.1:{redis_process.port}/0"
            assert line.__dict__["error"].startswith("ConnectionError: ")

            redis_process.start()
            redis.Redis.from_url(redis_process.url).config_set("requirepass", PASSWORD)
            await health.becomes(SERVING)
            sent = await gateway.stub.Send(
                pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="back"))),
                timeout=10,
            )
            assert sent.message_id
    finally:
        redis_process.cleanup()

    assert any(r.getMessage() == "store reachable again" for r in caplog.records)
    for record in caplog.records:
        assert PASSWORD not in f"{record.getMessage()} {record.__dict__}"


async def test_on_sigterm_the_process_is_not_serving_for_the_drain_delay_while_its_port_answers(
    tmp_path: Path,
) -> None:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as sandbox:
        port = free_port()
        path = config_file(tmp_path, sandbox.url, port)
        path.write_text(
            path.read_text().replace("drain_delay_seconds: 0", "drain_delay_seconds: 3"), encoding="utf-8"
        )
        async with gateway_process(path, port) as gateway:
            health = Health(gateway.channel)
            gateway.send_signal(signal.SIGTERM)
            await health.becomes(NOT_SERVING)
            await health.becomes(NOT_SERVING, service="")

            sent = await gateway.stub.Send(
                pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="draining"))),
                timeout=5,
            )
            assert sent.message_id, "a call routed here before the balancer noticed still succeeds"
            assert await gateway.wait() == 0
        log = await gateway.log()

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    draining = [line for line in lines if line.get("msg") == "signal received; draining"]
    assert [(line["signal"], line["drain_seconds"]) for line in draining] == [("SIGTERM", 3)]
