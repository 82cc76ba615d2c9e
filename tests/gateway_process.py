"""The gateway as a real child process (`python -m gateway serve --config FILE`), as operators run it.

``gateway_process`` starts it, reads its stderr all along (a full pipe would block it), waits for
grpc health to say SERVING and hands over a connected stub; at the end it stops the process
(SIGTERM, then SIGKILL after 10 s) if the test has not already. Credentials reach the process as in
production: the config names ``${TEST_...}`` variables and ``gateway_environment`` sets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import CONFIG_ENV
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import (
    DINGTALK_APP_SECRET,
    DINGTALK_PLAIN_TOKEN,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    WECOM_CORP_SECRET,
    WECOM_KEY,
)
from tests.redis_server import free_port

__all__ = [
    "REPO",
    "SERVICE",
    "GatewayProcess",
    "config_file",
    "free_port",
    "gateway_environment",
    "gateway_process",
    "wait_for_serving",
]

REPO = Path(__file__).resolve().parents[1]
SERVICE = "notify.v1.NotificationService"
EXIT_TIMEOUT = 10.0  # seconds a stopped gateway has to exit


def gateway_environment() -> dict[str, str]:
    """This environment without a config path, plus every credential a test config names as ${VAR}."""
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update(
        TEST_WECOM_KEY=WECOM_KEY,
        TEST_DINGTALK_TOKEN=DINGTALK_TOKEN,
        TEST_DINGTALK_SECRET=DINGTALK_SECRET,
        TEST_DINGTALK_PLAIN_TOKEN=DINGTALK_PLAIN_TOKEN,
        TEST_WECOM_CORP_SECRET=WECOM_CORP_SECRET,
        TEST_DINGTALK_APP_SECRET=DINGTALK_APP_SECRET,
    )
    return env


def config_file(directory: Path, sandbox_url: str, port: int) -> Path:
    """The conftest robot accounts, credentials read from the environment as in production."""
    path = directory / "gateway.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 5
              drain_delay_seconds: 0
            auth: none
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


async def wait_for_serving(
    channel: grpc.aio.Channel, process: asyncio.subprocess.Process, stderr: asyncio.Task[bytes]
) -> None:
    """Polls grpc health until the notification service is SERVING (it is set after the server's)."""
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(200):  # bounded: 10 s at least, with the checks' own time on top
        if process.returncode is not None:
            log = "(its stderr is held unread)"
            with contextlib.suppress(TimeoutError):
                log = (await asyncio.wait_for(asyncio.shield(stderr), timeout=2)).decode("utf-8", "replace")
            raise AssertionError(f"the gateway exited during start-up: {log}")
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=0.5)
        except grpc.aio.AioRpcError:
            reply = None
        if reply is not None and reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway process never reported SERVING")


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    channel: grpc.aio.Channel
    stub: pb_grpc.NotificationServiceStub
    stderr: asyncio.Task[bytes]

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """The exit code; raises TimeoutError if the process is still running after `timeout` s."""
        return await asyncio.wait_for(self.process.wait(), timeout=timeout)

    async def stop(self, timeout: float = EXIT_TIMEOUT) -> int:
        """SIGTERM, as an orchestrator stops a pod, and the exit code (TimeoutError if it hangs)."""
        self.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def log(self) -> str:
        """Everything the process wrote to stderr; only once it has exited, so nothing is missing."""
        if self.process.returncode is None:
            raise AssertionError("the gateway is still running: stop it before reading its whole log")
        return (await self.stderr).decode("utf-8", "replace")


async def _read_all(stream: asyncio.StreamReader, hold: asyncio.Event | None) -> bytes:
    if hold is not None:
        await hold.wait()
    return await stream.read()


@contextlib.asynccontextmanager
async def gateway_process(
    config_path: Path,
    port: int,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    hold_stderr: asyncio.Event | None = None,
) -> AsyncIterator[GatewayProcess]:
    """The gateway serving `config_path` (which listens on 127.0.0.1:`port`), SERVING and connected.

    ``args`` are more `serve` flags (``--processes 2``, ``--event-loop asyncio``). With
    ``hold_stderr``, the gateway's stderr is read only once that event is set (or at the end): a
    log reader that has stopped reading.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config_path),
        *args,
        cwd=REPO,
        env=dict(gateway_environment() if env is None else env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = asyncio.create_task(_read_all(process.stderr, hold_stderr))  # a full pipe blocks
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_for_serving(channel, process, stderr)
            yield GatewayProcess(process, channel, pb_grpc.NotificationServiceStub(channel), stderr)
    finally:
        if hold_stderr is not None:
            hold_stderr.set()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=EXIT_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        # The pipe closes when the process exits; bounded all the same, in case something inherited it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stderr), timeout=EXIT_TIMEOUT)
        if not stderr.done():
            stderr.cancel()
