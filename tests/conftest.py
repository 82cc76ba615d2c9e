"""Shared fixtures: the vendor sandbox on a free loopback port and a real gateway in front of it.

Everything runs for real over sockets: the gateway's grpc.aio server on a free port, its aiohttp
vendor calls, and the sandbox's aiohttp server. Nothing is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import Config, TlsSettings, parse_config
from gateway.lean_metrics import LeanMeterProvider, set_meter_provider
from gateway.lean_spans import LeanTracerProvider
from gateway.sandbox import SandboxServer, SandboxState
from gateway.server import GatewayServer
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.redis_server import shared_redis_url

# Credentials the sandbox knows; the gateway's config carries the same ones.
WECOM_KEY = "wecom-key-0f3a9c1d"
DINGTALK_TOKEN = "dingtalk-token-7b2e4f60"
DINGTALK_SECRET = "SECdingtalk-secret-5c8d1e2f"
DINGTALK_PLAIN_TOKEN = "dingtalk-plain-token-93ab"
WECOM_CORP_ID = "ww-corp-4d2a"
WECOM_CORP_SECRET = "wecom-corp-secret-6e1f3b9a"
WECOM_AGENT_ID = 1000002
DINGTALK_APP_KEY = "ding-app-key-81c7"
DINGTALK_APP_SECRET = "dingtalk-app-secret-2f9d4c7e"
DINGTALK_AGENT_ID = 2000003
SECRETS = (
    WECOM_KEY,
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    DINGTALK_PLAIN_TOKEN,
    WECOM_CORP_SECRET,
    DINGTALK_APP_SECRET,
)


def gateway_config(
    sandbox_url: str, *, extra_accounts: str = "", timeout: float = 2.0, token_store: str = "memory://"
) -> Config:
    """The five sandbox accounts, served open (``auth: none``); ``configured(tenants=...)`` adds keys."""
    text = textwrap.dedent(
        f"""
        token_store: {token_store}
        server:
          listen: 127.0.0.1:0
          grace_period_seconds: 5
        auth: none
        accounts:
          team-wecom:
            channel: wecom_robot
            key: {WECOM_KEY}
            base_url: {sandbox_url}
            timeout_seconds: {timeout}
          ops-dingtalk:
            channel: dingtalk_robot
            access_token: {DINGTALK_TOKEN}
            secret: {DINGTALK_SECRET}
            base_url: {sandbox_url}
            timeout_seconds: {timeout}
          plain-dingtalk:
            channel: dingtalk_robot
            access_token: {DINGTALK_PLAIN_TOKEN}
            base_url: {sandbox_url}
            timeout_seconds: {timeout}
          corp-app:
            channel: wecom_app
            corp_id: {WECOM_CORP_ID}
            corp_secret: {WECOM_CORP_SECRET}
            agent_id: {WECOM_AGENT_ID}
            base_url: {sandbox_url}
            timeout_seconds: {timeout}
          ding-app:
            channel: dingtalk_work
            app_key: {DINGTALK_APP_KEY}
            app_secret: {DINGTALK_APP_SECRET}
            agent_id: {DINGTALK_AGENT_ID}
            base_url: {sandbox_url}
            timeout_seconds: {timeout}
        """
    )
    return parse_config(text + textwrap.indent(textwrap.dedent(extra_accounts), "  "))


def configured(base: Config, **top_level: object) -> Config:
    """The base config with these top-level fields, validated again; tenants bring ``auth: api_keys``."""
    fields = {name: getattr(base, name) for name in Config.model_fields}
    if top_level.get("tenants"):
        top_level = {"auth": "api_keys", **top_level}
    return Config.model_validate({**fields, **top_level})


def with_tls(config: Config, directory: Path) -> tuple[Config, Path]:
    """The config serving TLS with a new self-signed certificate for localhost; and its path."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = config.server.model_copy(update={"tls": TlsSettings(cert_file=cert, key_file=key)})
    return config.model_copy(update={"server": server}), cert


def seed_sandbox(state: SandboxState) -> None:
    state.add_wecom_robot("team-wecom", WECOM_KEY)
    state.add_dingtalk_robot("ops-dingtalk", DINGTALK_TOKEN, secret=DINGTALK_SECRET)
    state.add_dingtalk_robot("plain-dingtalk", DINGTALK_PLAIN_TOKEN)
    state.add_wecom_app("corp-app", WECOM_CORP_ID, WECOM_CORP_SECRET, WECOM_AGENT_ID)
    state.add_dingtalk_app("ding-app", DINGTALK_APP_KEY, DINGTALK_APP_SECRET, DINGTALK_AGENT_ID)


_SPANS = InMemorySpanExporter()
_METRICS = InMemoryMetricReader()


@pytest.fixture(scope="session", autouse=True)
def telemetry() -> None:
    """In-memory OpenTelemetry providers for the whole session, installed the way start-up does."""
    provider = LeanTracerProvider()  # gateway/telemetry.py's, as `serve` installs it
    provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(provider)
    set_meter_provider(LeanMeterProvider([_METRICS]))  # as gateway/telemetry.py installs it


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The spans finished during this test (cleared at its start)."""
    _SPANS.clear()
    return _SPANS


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return _METRICS


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis shared by the session; tests keep apart by using their own key namespace."""
    url, process = shared_redis_url()
    yield url
    if process is not None:
        process.cleanup()


@pytest.fixture
def namespace() -> str:
    """A Redis key prefix of this test's own, so tests never see each other's keys."""
    return f"notify-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as server:
        yield server


async def wait_until(condition: Callable[[], object], what: str, attempts: int = 250) -> None:
    """Polls `condition` every 20 ms, `attempts` times at most, and fails naming `what` it waited for."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


@contextlib.asynccontextmanager
async def running_gateway(config: Config, sandbox: SandboxState) -> AsyncIterator[Gateway]:
    """A gateway for a config of the test's own, with a connected stub."""
    async with (
        GatewayServer(config) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield Gateway(server, pb_grpc.NotificationServiceStub(channel), channel, sandbox)


@dataclass
class Gateway:
    server: GatewayServer
    stub: pb_grpc.NotificationServiceStub
    channel: grpc.aio.Channel
    sandbox: SandboxState


@pytest.fixture
async def gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_config(sandbox.url), sandbox.state) as gateway:
        yield gateway
