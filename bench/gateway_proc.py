"""The gateway under test, as users run it: `python -m gateway serve --config FILE`, its own process.

The generated config is the production shape: a tenant with an API key (so every call is
authenticated), Redis as the token store (and message records), tracing on with the `none`
exporter (spans are made, not shipped), the access log at INFO (to a file). Only the gateway's
own rate limiter is off (`rate_limit_per_minute: 0`, no tenant quota): the bench measures cost,
and the vendors' limits would stop it after 20 messages.

The queued scenario runs a second gateway of the same shape on accounts of its own, with
`queue.workers_in_serve: false`, and its workers as `python -m gateway worker` processes on the
same config file, as an operator who scales delivery apart from the API would run them.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fixture import Fixture
from bench.procs import Child, python_module

DINGTALK_ACCOUNT = "bench-dingtalk"
WECOM_APP_ACCOUNT = "bench-wecom-app"
QUEUED_DINGTALK_ACCOUNT = "bench-queued-dingtalk"
QUEUED_WECOM_APP_ACCOUNT = "bench-queued-wecom-app"
# The most the config allows: every round's accepted Sends wait in the queue until the delivery
# phase, and a full queue would turn the accept scenario into RESOURCE_EXHAUSTED answers.
QUEUE_LIMIT = 1_000_000


def write_config(
    path: Path,
    *,
    fixture: Fixture,
    sandbox_url: str,
    redis_url: str,
    namespace: str,
    port: int,
    queued: bool = False,
) -> None:
    """A gateway config for this run; `namespace` keeps its Redis keys apart from anyone else's.

    `queued`: the queued scenario's gateway, on its own sandbox robot and app (so the sandbox
    counts its deliveries apart), with no workers in `serve` (the accept phase measures accepting
    only; workers are started apart for the delivery phase).
    """
    dingtalk, app = fixture.gateway_dingtalk, fixture.gateway_app
    dingtalk_account, app_account = DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT
    if queued:
        dingtalk, app = fixture.queued_dingtalk, fixture.queued_app
        dingtalk_account, app_account = QUEUED_DINGTALK_ACCOUNT, QUEUED_WECOM_APP_ACCOUNT
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}", "grace_period_seconds": 1},
        "token_store": redis_url,
        "key_namespace": namespace,
        "telemetry": {"exporter": "none"},
        "tenants": [
            {
                "name": "bench",
                "api_keys": ["sha256:" + hashlib.sha256(fixture.api_key.encode()).hexdigest()],
                "accounts": ["*"],
            }
        ],
        "accounts": {
            dingtalk_account: {
                "channel": "dingtalk_robot",
                "access_token": dingtalk.access_token,
                "base_url": sandbox_url,
                "rate_limit_per_minute": 0,
            },
            app_account: {
                "channel": "wecom_app",
                "corp_id": app.corp_id,
                "corp_secret": app.corp_secret,
                "agent_id": app.agent_id,
                "base_url": sandbox_url,
                "rate_limit_per_minute": 0,
            },
        },
    }
    if queued:
        config["queue"] = {"workers_in_serve": False}
        for account in config["accounts"].values():
            account["queue_limit"] = QUEUE_LIMIT
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def start_gateway(
    config: Path, log: Path, *, cprofile_out: Path | None = None, name: str = "gateway"
) -> tuple[Child, str]:
    """Starts the gateway (under the cProfile wrapper when `cprofile_out` is set); returns it and
    its address once its health check answers SERVING."""
    address = yaml.safe_load(config.read_text())["server"]["listen"]
    if cprofile_out is None:
        args = python_module("gateway", "serve", "--config", str(config))
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
