"""The gateway's life as an operator sees it: probes answer, reflection lists the API, and a stop
(in-process or SIGTERM to the real process) lets in-flight Sends finish and reach the vendor."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.config import CONFIG_ENV
from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import (
    DINGTALK_PLAIN_TOKEN,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    SECRETS,
    WECOM_KEY,
    Gateway,
    seed_sandbox,
)

SERVICE = "notify.v1.NotificationService"
CHANNEL = "dingtalk_robot"
ROBOT = "plain-dingtalk"  # no signing: the simplest robot to hold in flight
IN_FLIGHT = 5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REPO = Path(__file__).resolve().parents[2]


def text_request(n: int) -> pb.SendRequest:
    return pb.SendRequest(account=ROBOT, message=pb.Message(text=pb.Text(content=f"drain {n}")))


def hold_robot(state: SandboxState, count: int, delay: float) -> None:
    """Holds the first count-1 requests to the robot for `delay` s and answers the last at once.

    Faults are taken in arrival order, so once the sandbox has recorded a request, all `count`
    requests have reached it and the others are still held: they are in flight.
    """
    state.inject_fault(CHANNEL, ROBOT, delay=delay, times=count - 1)
    state.inject_fault(CHANNEL, ROBOT, delay=0.0)


async def wait_until(condition: Callable[[], object], what: str, attempts: int = 250) -> None:
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


async def test_health_reports_serving_for_the_server_and_the_notification_service(
    gateway: Gateway,
) -> None:
    health = health_pb2_grpc.HealthStub(gateway.channel)
    for service in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == SERVING, service


async def test_reflection_lists_the_notification_and_health_services(gateway: Gateway) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(gateway.channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services: set[str] = set()
    async for reply in call:
        services |= {s.name for s in reply.list_services_response.service}
        break
    assert {SERVICE, "grpc.health.v1.Health"} <= services


async def test_stop_lets_in_flight_sends_finish_while_health_says_not_serving(gateway: Gateway) -> None:
    health = health_pb2_grpc.HealthStub(gateway.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
    assert (await watch.read()).status == SERVING

    hold_robot(gateway.sandbox, IN_FLIGHT, delay=1.0)

    async def send(n: int) -> pb.SendResponse:
        return await gateway.stub.Send(text_request(n), timeout=10)

    sends = [asyncio.create_task(send(n)) for n in range(IN_FLIGHT)]
    await wait_until(lambda: gateway.sandbox.received(CHANNEL, ROBOT), "the Sends to reach the sandbox")
    assert not all(task.done() for task in sends), "the held Sends must still be in flight"

    stopping = asyncio.create_task(gateway.server.stop(grace=5))
    assert (await watch.read()).status == NOT_SERVING  # load balancers stop routing here
    watch.cancel()

    replies = await asyncio.gather(*sends)
    await stopping
    assert all(reply.state == pb.MESSAGE_STATE_SENT for reply in replies)
    assert len({reply.message_id for reply in replies}) == IN_FLIGHT
    assert len(gateway.sandbox.delivered(CHANNEL, ROBOT)) == IN_FLIGHT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_file(directory: Path, sandbox_url: str, port: int) -> Path:
    """The conftest accounts, credentials read from the environment as in production."""
    path = directory / "gateway.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 5
            accounts:
              team-wecom:
                channel: wecom_robot
                key: ${{TEST_WECOM_KEY}}
                base_url: {sandbox_url}
              ops-dingtalk:
                channel: dingtalk_robot
                access_token: ${{TEST_DINGTALK_TOKEN}}
                secret: ${{TEST_DINGTALK_SECRET}}
                base_url: {sandbox_url}
              plain-dingtalk:
                channel: dingtalk_robot
                access_token: ${{TEST_DINGTALK_PLAIN_TOKEN}}
                base_url: {sandbox_url}
                timeout_seconds: 3
            """
        ),
        encoding="utf-8",
    )
    return path


def gateway_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update(
        TEST_WECOM_KEY=WECOM_KEY,
        TEST_DINGTALK_TOKEN=DINGTALK_TOKEN,
        TEST_DINGTALK_SECRET=DINGTALK_SECRET,
        TEST_DINGTALK_PLAIN_TOKEN=DINGTALK_PLAIN_TOKEN,
    )
    return env


async def wait_for_serving(channel: grpc.aio.Channel, process: asyncio.subprocess.Process) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(200):
        assert process.returncode is None, "the gateway exited during start-up"
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=0.5)
        except grpc.aio.AioRpcError:
            reply = None
        if reply is not None and reply.status == SERVING:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway never reported SERVING")


async def test_sigterm_drains_in_flight_sends_then_exits_zero_without_logging_secrets(
    tmp_path: Path,
) -> None:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as sandbox:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config_file(tmp_path, sandbox.url, port)),
            cwd=REPO,
            env=gateway_environment(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        stderr = asyncio.create_task(process.stderr.read())  # read all along: a full pipe blocks
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await wait_for_serving(channel, process)
                stub = pb_grpc.NotificationServiceStub(channel)
                hold_robot(state, IN_FLIGHT, delay=1.0)

                async def send(n: int) -> pb.SendResponse:
                    return await stub.Send(text_request(n), timeout=10)

                sends = [asyncio.create_task(send(n)) for n in range(IN_FLIGHT)]
                await wait_until(lambda: state.received(CHANNEL, ROBOT), "the Sends to reach the sandbox")
                assert not all(task.done() for task in sends), "the held Sends must still be in flight"
                process.send_signal(signal.SIGTERM)
                replies = await asyncio.gather(*sends)

            exit_code = await asyncio.wait_for(process.wait(), timeout=10)
            log = (await stderr).decode("utf-8", "replace")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if not stderr.done():
                stderr.cancel()

    assert all(reply.state == pb.MESSAGE_STATE_SENT for reply in replies)
    assert len(state.delivered(CHANNEL, ROBOT)) == IN_FLIGHT
    assert exit_code == 0, log
    for secret in SECRETS:
        assert secret not in log
