"""The gateway under test, as users run it: `python -m gateway serve --config FILE`, its own process.

Every gateway the bench starts has the production shape: a tenant with an API key (so every call
is authenticated), Redis as the token store (and message records), the access log at INFO (to a
file). What differs between them is a `Variant`:

- `full` (the main gateway scenario, issue 15's "everything on"): each account has a rate limit
  so high that it never refuses (the limiter runs on every Send and admits it), the load sends an
  idempotency key on every Send, and tracing records every call and ships it through the batch
  exporter operators run, OTLP, to the bench's own sink (bench.otlp_sink);
- `sampled`: the same with `telemetry.sample_ratio: 0.1`;
- `minimal`: the bench's earlier default, kept as a reference row: no rate limit, no idempotency
  key, tracing with the `none` exporter (spans made, never serialised or sent);
- the queued scenario's gateway has accounts of its own, `queue.workers_in_serve: false` and no
  rate limit (queued messages are not paced); its workers run as `python -m gateway worker`
  processes on the same config file, as an operator who scales delivery apart from the API would.

`serve --processes N` (SO_REUSEPORT) is started the same way, with the flag added.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fixture import DingtalkRobot, WecomApp
from bench.procs import Child, python_module

DINGTALK_ACCOUNT = "bench-dingtalk"
WECOM_APP_ACCOUNT = "bench-wecom-app"
SAMPLED_ACCOUNTS = ("bench-sampled-dingtalk", "bench-sampled-wecom-app")
MINIMAL_ACCOUNTS = ("bench-minimal-dingtalk", "bench-minimal-wecom-app")
PROCESSES_ACCOUNTS = ("bench-processes-dingtalk", "bench-processes-wecom-app")
QUEUED_DINGTALK_ACCOUNT = "bench-queued-dingtalk"
QUEUED_WECOM_APP_ACCOUNT = "bench-queued-wecom-app"
SAMPLE_RATIO = 0.1  # the sampled gateway's telemetry.sample_ratio
# A rate limit that runs on every Send and never refuses one: the bench sends a few thousand a minute.
NEVER_REFUSING_RATE_PER_MINUTE = 100_000_000
# The most the config allows: every round's accepted Sends wait in the queue until the delivery
# phase, and a full queue would turn the accept scenario into RESOURCE_EXHAUSTED answers.
QUEUE_LIMIT = 1_000_000


def write_config(
    path: Path,
    *,
    robot: DingtalkRobot,
    app: WecomApp,
    accounts: tuple[str, str],
    api_key: str,
    sandbox_url: str,
    redis_url: str,
    namespace: str,
    port: int,
    telemetry: dict[str, Any],
    rate_limit_per_minute: int = 0,
    queued: bool = False,
) -> None:
    """A gateway config for this run; `namespace` keeps its Redis keys apart from anyone else's.

    `accounts` names the DingTalk robot account and the WeCom app account, on the sandbox `robot`
    and `app` (one pair per gateway, so the sandbox counts each gateway's deliveries apart).
    `queued`: no workers in `serve` (the accept phase measures accepting only; workers are
    started apart for the delivery phase) and the largest queue the config allows.
    """
    dingtalk_account, app_account = accounts
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}", "grace_period_seconds": 1, "drain_delay_seconds": 0},
        "token_store": redis_url,
        "key_namespace": namespace,
        "telemetry": telemetry,
        "tenants": [
            {
                "name": "bench",
                "api_keys": ["sha256:" + hashlib.sha256(api_key.encode()).hexdigest()],
                "accounts": ["*"],
            }
        ],
        "accounts": {
            dingtalk_account: {
                "channel": "dingtalk_robot",
                "access_token": robot.access_token,
                "base_url": sandbox_url,
                "rate_limit_per_minute": rate_limit_per_minute,
            },
            app_account: {
                "channel": "wecom_app",
                "corp_id": app.corp_id,
                "corp_secret": app.corp_secret,
                "agent_id": app.agent_id,
                "base_url": sandbox_url,
                "rate_limit_per_minute": rate_limit_per_minute,
            },
        },
    }
    if queued:
        config["queue"] = {"workers_in_serve": False}
        for account in config["accounts"].values():
            account["queue_limit"] = QUEUE_LIMIT
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def start_gateway(
    config: Path,
    log: Path,
    *,
    cprofile_out: Path | None = None,
    name: str = "gateway",
    processes: int | None = None,
) -> tuple[Child, str]:
    """Starts the gateway (under the cProfile wrapper when `cprofile_out` is set; with
    `--processes N` when `processes` is set); returns it and its address once its health check
    answers SERVING."""
    address = yaml.safe_load(config.read_text())["server"]["listen"]
    if cprofile_out is None:
        extra = ["--processes", str(processes)] if processes is not None else []
        args = python_module("gateway", "serve", "--config", str(config), *extra)
    else:
        args = python_module(
            "bench.profile_gateway", "--out", str(cprofile_out), "--", "serve", "--config", str(config)
        )
    child = Child(name, args, log=log)
    wait_serving(child, address)
    return child, address


def wait_serving(child: Child, address: str, timeout: float = 30.0) -> None:
    """Polls grpc.health.v1 until the gateway answers SERVING (bounded: `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            child.check_alive()
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise child.failure(f"did not answer health checks on {address} within {timeout:.0f} s")


def start_worker(config: Path, log: Path, name: str) -> Child:
    """`python -m gateway worker --config FILE`: queue workers alone, as run apart from the API.
    It says nothing on stdout; `bench.delivery` sees it consuming in Redis instead."""
    return Child(name, python_module("gateway", "worker", "--config", str(config)), log=log)
