"""The gateway's life as an operator sees it: probes answer, reflection lists the API, and a stop
(in-process or SIGTERM to the real process) lets in-flight Sends finish and reach the vendor."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import SECRETS, Gateway, seed_sandbox, wait_until
from tests.gateway_process import SERVICE, config_file, free_port, gateway_process

CHANNEL = "dingtalk_robot"
ROBOT = "plain-dingtalk"  # no signing: the simplest robot to hold in flight
IN_FLIGHT = 5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def text_request(n: int) -> pb.SendRequest:
    return pb.SendRequest(account=ROBOT, message=pb.Message(text=pb.Text(content=f"drain {n}")))


def hold_robot(state: SandboxState, count: int, delay: float) -> None:
    """Holds the first count-1 requests to the robot for `delay` s and answers the last at once.

    Faults are taken in arrival order, so once the sandbox has recorded a request, all `count`
    requests have reached it and the others are still held: they are in flight.
    """
    state.inject_fault(CHANNEL, ROBOT, delay=delay, times=count - 1)
    state.inject_fault(CHANNEL, ROBOT, delay=0.0)


async def sends_in_flight(
    stub: pb_grpc.NotificationServiceStub, state: SandboxState
) -> list[asyncio.Task[pb.SendResponse]]:
    """IN_FLIGHT Sends to the held robot, returned once all have reached the sandbox and are held."""
    hold_robot(state, IN_FLIGHT, delay=1.0)

    async def send(n: int) -> pb.SendResponse:
        return await stub.Send(text_request(n), timeout=10)

    sends = [asyncio.create_task(send(n)) for n in range(IN_FLIGHT)]
    await wait_until(lambda: state.received(CHANNEL, ROBOT), "the Sends to reach the sandbox")
    assert not all(task.done() for task in sends), "the held Sends must still be in flight"
    return sends


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


async def test_each_accepted_call_waits_on_one_pending_request(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grpc.aio's server keeps one pending call request per registered method and waits on all of
    them for every call it accepts; every method here, health and reflection included, is served
    generically (gateway.handlers), so that wait is over the one generic request."""
    sizes: list[int] = []
    real_wait = asyncio.wait

    async def recording_wait(fs: Any, *args: Any, **kwargs: Any) -> Any:
        fs = list(fs)
        names = {getattr(getattr(f, "get_coro", lambda: None)(), "__qualname__", "") for f in fs}
        if any(name.startswith("AioServer._request") for name in names):
            sizes.append(len(fs))
        return await real_wait(fs, *args, **kwargs)

    # grpc's server loop looks asyncio.wait up on every turn, so calls from now on come here.
    monkeypatch.setattr(asyncio, "wait", recording_wait)
    await gateway.stub.Send(text_request(0), timeout=10)
    health = health_pb2_grpc.HealthStub(gateway.channel)
    await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    reflection = reflection_pb2_grpc.ServerReflectionStub(gateway.channel)
    async for _ in reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        break
    await gateway.stub.Send(text_request(1), timeout=10)
    assert len(sizes) >= 3, (
        f"grpc's server loop was not seen waiting ({sizes}): if a grpcio upgrade changed how it"
        " accepts calls, see whether gateway.handlers.add_service still needs to avoid registering"
    )
    assert set(sizes) == {1}, f"pending call requests per wait: {sizes}"


async def test_stop_lets_in_flight_sends_finish_while_health_says_not_serving(gateway: Gateway) -> None:
    health = health_pb2_grpc.HealthStub(gateway.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
    assert (await watch.read()).status == SERVING

    sends = await sends_in_flight(gateway.stub, gateway.sandbox)

    stopping = asyncio.create_task(gateway.server.stop(grace=5))
    assert (await watch.read()).status == NOT_SERVING  # load balancers stop routing here
    watch.cancel()

    replies = await asyncio.gather(*sends)
    await stopping
    assert all(reply.state == pb.MESSAGE_STATE_SENT for reply in replies)
    assert len({reply.message_id for reply in replies}) == IN_FLIGHT
    assert len(gateway.sandbox.delivered(CHANNEL, ROBOT)) == IN_FLIGHT


async def test_sigterm_drains_in_flight_sends_then_exits_zero_without_logging_secrets(
    tmp_path: Path,
) -> None:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as sandbox:
        port = free_port()
        async with gateway_process(config_file(tmp_path, sandbox.url, port), port) as gateway:
            sends = await sends_in_flight(gateway.stub, state)
            gateway.send_signal(signal.SIGTERM)
            replies = await asyncio.gather(*sends)
            exit_code = await gateway.wait(timeout=10)
        log = await gateway.log()

    assert all(reply.state == pb.MESSAGE_STATE_SENT for reply in replies)
    assert len(state.delivered(CHANNEL, ROBOT)) == IN_FLIGHT
    assert exit_code == 0, log
    for secret in SECRETS:
        assert secret not in log
