"""`notify-gateway serve` as operators run it, on each event loop and as several processes on one port.

- The default loop is uvloop (installed with the gateway): a Send is served end to end on it; the
  switch (``server.event_loop: asyncio`` or ``--event-loop asyncio``) serves it on asyncio's own.
- ``--processes 2``: two children bind the same port (SO_REUSEPORT); connections land on both
  (their access log lines carry two pids); SIGTERM to the parent stops both gracefully and the
  parent exits 0; a child that dies is restarted, with a log line; a child whose parent is killed
  stops too, so no orphan keeps the port.

Speed is measured by ``make bench``, never here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import seed_sandbox
from tests.gateway_process import REPO, config_file, free_port, gateway_environment, gateway_process

ROBOTS = ("team-wecom", "ops-dingtalk", "plain-dingtalk")  # under each robot's 20 a minute together
CONNECTIONS = 16  # the kernel hashes each to a child: all 16 on one of two is a 1 in 32768 chance


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as server:
        yield server


def send(account: str, content: str) -> pb.SendRequest:
    return pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content=content)))


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def test_a_send_is_served_end_to_end_on_uvloop_by_default(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    port = free_port()
    async with gateway_process(config_file(tmp_path, sandbox.url, port), port) as gateway:
        sent = await gateway.stub.Send(send("team-wecom", "on uvloop"), timeout=10)
        assert sent.state == pb.MESSAGE_STATE_SENT
        assert await gateway.stop() == 0
        lines = json_lines(await gateway.log())

    assert [line["event_loop"] for line in lines if line.get("msg") == "event loop"] == ["uvloop"]
    [delivered] = sandbox.state.delivered("wecom_robot", "team-wecom")
    assert delivered.body["text"] == {"content": "on uvloop"}


@pytest.mark.parametrize("switch", ["config", "flag"])
async def test_the_switch_serves_a_send_on_the_standard_asyncio_loop(
    tmp_path: Path, sandbox: SandboxServer, switch: str
) -> None:
    port = free_port()
    path = config_file(tmp_path, sandbox.url, port)
    args: tuple[str, ...] = ()
    if switch == "config":
        text = path.read_text().replace(
            "drain_delay_seconds: 0", "drain_delay_seconds: 0\n  event_loop: asyncio"
        )
        path.write_text(text, encoding="utf-8")
    else:
        args = ("--event-loop", "asyncio")
    async with gateway_process(path, port, args=args) as gateway:
        sent = await gateway.stub.Send(send("ops-dingtalk", "on asyncio"), timeout=10)
        assert sent.state == pb.MESSAGE_STATE_SENT
        assert await gateway.stop() == 0
        lines = json_lines(await gateway.log())

    assert [line["event_loop"] for line in lines if line.get("msg") == "event loop"] == ["asyncio"]


class Supervisor:
    """`serve --processes N` as a child process whose log is read line by line while it runs."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode("utf-8", "replace")
            if text.startswith("{"):
                self.lines.append(json.loads(text))

    async def wait_for(
        self, what: str, condition: Callable[[list[dict[str, Any]]], bool], seconds: float = 20
    ) -> None:
        for _ in range(int(seconds / 0.05)):
            if condition(self.lines):
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"gave up waiting for {what}; log: {self.lines}")

    def listening(self) -> dict[int, int]:
        """process_index -> pid of the latest child of each index that said it is listening."""
        return {
            line["process_index"]: line["pid"]
            for line in self.lines
            if line.get("msg") == "gateway listening"
        }

    async def finished(self, timeout: float = 15) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout=timeout)
        await asyncio.wait_for(self._reader, timeout=timeout)  # every child's last line too
        return code


@contextlib.asynccontextmanager
async def supervisor(path: Path, processes: int) -> AsyncIterator[Supervisor]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        "--processes",
        str(processes),
        cwd=REPO,
        env=gateway_environment(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Supervisor(process)
    try:
        await running.wait_for("every child listening", lambda _: len(running.listening()) == processes)
        yield running
    finally:
        if process.returncode is None:
            process.kill()  # the children follow (they are SIGTERMed when their parent dies)
            await process.wait()
        running._reader.cancel()


async def send_on_new_connections(port: int, count: int) -> list[pb.SendResponse]:
    """One Send on each of `count` channels, each its own TCP connection (no shared subchannel)."""

    async def one(index: int) -> pb.SendResponse:
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = pb_grpc.NotificationServiceStub(channel)
            return await stub.Send(send(ROBOTS[index % len(ROBOTS)], f"connection {index}"), timeout=10)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def test_two_processes_serve_sends_on_one_port_and_stop_together_on_sigterm(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    port = free_port()
    async with supervisor(config_file(tmp_path, sandbox.url, port), processes=2) as parent:
        children = parent.listening()
        replies = await send_on_new_connections(port, CONNECTIONS)
        assert {reply.state for reply in replies} == {pb.MESSAGE_STATE_SENT}
        assert len(sandbox.state.delivered()) == CONNECTIONS

        parent.process.send_signal(signal.SIGTERM)
        assert await parent.finished() == 0

    sends = [line for line in parent.lines if line.get("msg") == "rpc" and line["rpc"].endswith("/Send")]
    assert len(sends) == CONNECTIONS
    assert {line["pid"] for line in sends} == set(children.values()), "both children served Sends"
    stopped = {line["pid"] for line in parent.lines if line.get("msg") == "gateway stopped"}
    assert stopped == set(children.values())
    [done] = [line for line in parent.lines if line.get("msg") == "gateway processes stopped"]
    assert done["exit_codes"] == [0, 0]
    assert not [line for line in parent.lines if line.get("level") == "error"]


async def test_a_child_that_dies_is_restarted_and_the_port_keeps_serving(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    port = free_port()
    async with supervisor(config_file(tmp_path, sandbox.url, port), processes=2) as parent:
        first = parent.listening()
        os.kill(first[0], signal.SIGKILL)
        await parent.wait_for(
            "a new child 0", lambda _: parent.listening().get(0, first[0]) != first[0], seconds=30
        )
        [restarting] = [
            line for line in parent.lines if line.get("msg") == "gateway process exited; restarting it"
        ]
        assert (restarting["level"], restarting["process_index"]) == ("error", 0)
        assert (restarting["child_pid"], restarting["exit_code"]) == (first[0], -signal.SIGKILL)

        replies = await send_on_new_connections(port, 4)
        assert {reply.state for reply in replies} == {pb.MESSAGE_STATE_SENT}
        parent.process.send_signal(signal.SIGTERM)
        assert await parent.finished() == 0


async def test_children_stop_when_their_parent_is_killed(tmp_path: Path, sandbox: SandboxServer) -> None:
    port = free_port()
    async with supervisor(config_file(tmp_path, sandbox.url, port), processes=2) as parent:
        children = set(parent.listening().values())
        parent.process.kill()
        await parent.finished()
    stopped = {line["pid"] for line in parent.lines if line.get("msg") == "gateway stopped"}
    assert stopped == children
