"""The gateway process as an SRE sees it: a Prometheus /metrics endpoint and one JSON log line per RPC."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.sandbox import SandboxServer, SandboxState
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import SECRETS, seed_sandbox
from tests.gateway_process import config_file, free_port, gateway_environment, gateway_process


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


# The `le` of each bucket as the exposition writes it: seconds, ending with +Inf.
RPC_BUCKETS = [str(le) for le in (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)]
RPC_BUCKETS += ["2.5", "5.0", "10.0", "30.0", "+Inf"]
VENDOR_BUCKETS = RPC_BUCKETS[2:]  # the same from 5 ms: no vendor answers in less


async def test_metrics_scraped_after_a_few_sends_have_units_buckets_and_labels(tmp_path: Path) -> None:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as sandbox:
        port, metrics_port = free_port(), free_port()
        config = config_file(tmp_path, sandbox.url, port)
        limited = config.read_text().replace(
            "key: ${TEST_WECOM_KEY}\n", "key: ${TEST_WECOM_KEY}\n    rate_limit_per_minute: 1\n"
        )
        config.write_text(limited + f"telemetry:\n  prometheus_listen: 127.0.0.1:{metrics_port}\n")
        async with gateway_process(config, port) as gateway:
            text = pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="metrics")))
            state.inject_fault("wecom_robot", "team-wecom", http_status=503)  # retried, then delivered
            await gateway.stub.Send(text, timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as limited_out:
                await gateway.stub.Send(text, timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await gateway.stub.Send(pb.SendRequest(account="nobody", message=text.message), timeout=5)
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{metrics_port}/metrics") as reply,
            ):
                exposition = await reply.text()
            await gateway.stop(timeout=10)
    assert limited_out.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    # Prometheus puts the unit in the name: seconds histograms end in _seconds.
    assert families["rpc_server_call_duration_seconds"].type == "histogram"
    assert families["notify_vendor_duration_seconds"].type == "histogram"
    for counter in ("notify_rpc_calls", "notify_rate_limit_refusals", "notify_vendor_retries"):
        assert families[counter].type == "counter", counter

    def samples(family: str, suffix: str = "") -> list[Sample]:
        return [s for s in families[family].samples if s.name == family + suffix]

    rpc = {
        "rpc_system": "grpc",
        "rpc_service": "notify.v1.NotificationService",
        "rpc_method": "Send",
    }
    delivered = {**rpc, "rpc_grpc_status_code": "0", "notify_status": "OK"}
    delivered |= {"notify_channel": "wecom_robot", "notify_account": "team-wecom"}
    refused = {**rpc, "rpc_grpc_status_code": "8", "notify_status": "RESOURCE_EXHAUSTED"}
    refused |= {"notify_channel": "wecom_robot", "notify_account": "team-wecom"}
    # An account the gateway does not know is no label value; Prometheus shows the label empty.
    unknown = {**rpc, "rpc_grpc_status_code": "5", "notify_status": "NOT_FOUND"}
    unknown |= {"notify_channel": "", "notify_account": ""}

    def labelled(sample: Sample, expected: dict[str, str]) -> bool:
        own = {k: v for k, v in sample.labels.items() if not k.startswith("otel_scope_") and k != "le"}
        return own == expected

    for expected in (delivered, refused, unknown):
        buckets = [s for s in samples("rpc_server_call_duration_seconds", "_bucket") if labelled(s, expected)]
        assert [s.labels["le"] for s in buckets] == RPC_BUCKETS, expected
        assert buckets[-1].value == 1, expected
        (count,) = [s for s in samples("notify_rpc_calls", "_total") if labelled(s, expected)]
        assert count.value == 1, expected

    attempts = {"notify_channel": "wecom_robot", "notify_vendor_path": "/cgi-bin/webhook/send"}
    for outcome in ("503", "200"):
        buckets = [
            s
            for s in samples("notify_vendor_duration_seconds", "_bucket")
            if labelled(s, {**attempts, "outcome": outcome})
        ]
        assert [s.labels["le"] for s in buckets] == VENDOR_BUCKETS, outcome

    (retry,) = samples("notify_vendor_retries", "_total")
    assert labelled(retry, {"notify_channel": "wecom_robot", "reason": "http_503"}) and retry.value == 1
    (refusal,) = samples("notify_rate_limit_refusals", "_total")
    assert labelled(refusal, {"notify_rate_limit_scope": "account", "notify_account": "team-wecom"})
    assert refusal.value == 1


async def test_every_stderr_line_is_json_grpc_cores_own_included_and_the_access_log_has_levels(
    tmp_path: Path,
) -> None:
    state = SandboxState()
    seed_sandbox(state)
    # grpc core's own tracing, written by C straight to fd 2 (one line per grpc API call).
    env = {**gateway_environment(), "GRPC_VERBOSITY": "debug", "GRPC_TRACE": "api"}
    async with SandboxServer(state) as sandbox:
        port = free_port()
        async with gateway_process(config_file(tmp_path, sandbox.url, port), port, env) as gateway:
            text = pb.Message(text=pb.Text(content="levels"))
            await gateway.stub.Send(pb.SendRequest(account="team-wecom", message=text), timeout=5)
            state.inject_fault("dingtalk_robot", "plain-dingtalk", errcode=400102, errmsg="robot disabled")
            state.inject_fault("wecom_robot", "team-wecom", http_status=503, times=10)
            for account in ("nobody", "plain-dingtalk", "team-wecom"):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gateway.stub.Send(pb.SendRequest(account=account, message=text), timeout=5)
            await gateway.stop(timeout=10)
        log = await gateway.log()

    lines = [json.loads(line) for line in log.splitlines()]  # every line, or this raises
    assert all(isinstance(line, dict) and {"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    core = [line for line in lines if line["logger"] == "grpc.core"]
    assert core, "grpc core wrote its lines, as JSON"
    assert {line["level"] for line in core} <= {"debug", "info", "warning", "error", "critical"}
    assert all(line["source"] for line in core)
    for secret in SECRETS:
        assert secret not in log

    access = {line["account"]: line for line in lines if line["logger"] == "gateway.access"}
    ok, unknown = access["team-wecom"], access["nobody"]
    refused = access["plain-dingtalk"]
    assert len([line for line in lines if line["logger"] == "gateway.access"]) == 4
    assert (ok["level"], ok["status"]) == ("error", "UNAVAILABLE"), "the last team-wecom Send"
    assert ok["reason"].startswith("VENDOR_") and "vendor_errcode" not in ok
    assert (unknown["level"], unknown["status"], unknown["reason"]) == (
        "warning",
        "NOT_FOUND",
        "ACCOUNT_NOT_FOUND",
    )
    assert (refused["level"], refused["vendor_errcode"]) == ("warning", 400102)
    assert refused["status"] == "FAILED_PRECONDITION" and refused["reason"].startswith("VENDOR_")
    first = next(line for line in lines if line["logger"] == "gateway.access")
    assert (first["level"], first["status"], "reason" in first) == ("info", "OK", False)
    assert all(line["peer"].startswith("ipv4:127.0.0.1:") for line in access.values())
