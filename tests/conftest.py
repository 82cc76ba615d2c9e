"""Shared fixtures: the vendor sandbox on a free loopback port and a real gateway in front of it.

Everything runs for real over sockets: the gateway's grpc.aio server on a free port, its aiohttp
vendor calls, and the sandbox's aiohttp server. Nothing is patched.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from gateway.config import Config, parse_config
from gateway.sandbox import SandboxServer, SandboxState
from gateway.server import GatewayServer
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc

# Credentials the sandbox knows; the gateway's config carries the same ones.
WECOM_KEY = "wecom-key-0f3a9c1d"
DINGTALK_TOKEN = "dingtalk-token-7b2e4f60"
DINGTALK_SECRET = "SECdingtalk-secret-5c8d1e2f"
DINGTALK_PLAIN_TOKEN = "dingtalk-plain-token-93ab"
SECRETS = (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET, DINGTALK_PLAIN_TOKEN)


def gateway_config(sandbox_url: str, *, extra_accounts: str = "", timeout: float = 2.0) -> Config:
    text = textwrap.dedent(
        f"""
        server:
          listen: 127.0.0.1:0
          grace_period_seconds: 5
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
        """
    )
    return parse_config(text + textwrap.indent(textwrap.dedent(extra_accounts), "  "))


def seed_sandbox(state: SandboxState) -> None:
    state.add_wecom_robot("team-wecom", WECOM_KEY)
    state.add_dingtalk_robot("ops-dingtalk", DINGTALK_TOKEN, secret=DINGTALK_SECRET)
    state.add_dingtalk_robot("plain-dingtalk", DINGTALK_PLAIN_TOKEN)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    state = SandboxState()
    seed_sandbox(state)
    async with SandboxServer(state) as server:
        yield server


@dataclass
class Gateway:
    server: GatewayServer
    stub: pb_grpc.NotificationServiceStub
    channel: grpc.aio.Channel
    sandbox: SandboxState


@pytest.fixture
async def gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with (
        GatewayServer(gateway_config(sandbox.url)) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield Gateway(server, pb_grpc.NotificationServiceStub(channel), channel, sandbox.state)
