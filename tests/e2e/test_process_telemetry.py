"""The gateway process as an SRE sees it: a Prometheus /metrics endpoint and one JSON log line per RPC."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import grpc

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import SECRETS, seed_sandbox
from tests.e2e.test_server_lifecycle import (
    REPO,
    config_file,
    free_port,
    gateway_environment,
    wait_for_serving,
)


async def test_the_process_serves_prometheus_metrics_and_logs_one_json_line_per_rpc(tmp_path: Path) -> None:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as sandbox:
        port, metrics_port = free_port(), free_port()
        config = config_file(tmp_path, sandbox.url, port)
        config.write_text(
            config.read_text()
            + f"telemetry:\n  exporter: none\n  prometheus_listen: 127.0.0.1:{metrics_port}\n"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            cwd=REPO,
            env=gateway_environment(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        stderr = asyncio.create_task(process.stderr.read())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await wait_for_serving(channel, process)
                stub = pb_grpc.NotificationServiceStub(channel)
                sent = await stub.Send(
                    pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="metrics"))),
                    timeout=5,
                )
                try:
                    await stub.Send(
                        pb.SendRequest(account="nobody", message=pb.Message(text=pb.Text(content="x")))
                    )
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{metrics_port}/metrics") as reply,
            ):
                exposition = await reply.text()
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=10)
            log = (await stderr).decode("utf-8", "replace")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert "notify_rpc_calls" in exposition
    assert "notify_vendor_duration" in exposition
    rpc_lines = [json.loads(line) for line in log.splitlines() if '"logger": "gateway.access"' in line]
    assert [(line["status"], line["account"]) for line in rpc_lines] == [
        ("OK", "team-wecom"),
        ("NOT_FOUND", "nobody"),
    ]
    assert rpc_lines[0]["message_id"] == sent.message_id
    assert all(len(line["trace_id"]) == 32 and line["duration_ms"] >= 0 for line in rpc_lines)
    for secret in SECRETS:
        assert secret not in log and secret not in exposition
