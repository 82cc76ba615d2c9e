"""The gateway process as an SRE sees it: a Prometheus /metrics endpoint and one JSON log line per RPC."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import grpc
import pytest

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import SECRETS, seed_sandbox
from tests.gateway_process import config_file, free_port, gateway_process


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
        async with gateway_process(config, port) as gateway:
            sent = await gateway.stub.Send(
                pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="metrics"))),
                timeout=5,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await gateway.stub.Send(
                    pb.SendRequest(account="nobody", message=pb.Message(text=pb.Text(content="x")))
                )
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{metrics_port}/metrics") as reply,
            ):
                exposition = await reply.text()
            await gateway.stop(timeout=10)
        log = await gateway.log()

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
