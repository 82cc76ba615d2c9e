"""A gateway with its HTTP/JSON face, and the same call made over gRPC and over HTTP, for comparison.

Each answer is reduced to (HTTP status, JSON): over gRPC, the status grpc-gateway maps from the
code and ``MessageToDict`` of the response or of the ``google.rpc.Status`` in the trailer; over
HTTP, what the face answered. Equal pairs mean the two transports told the caller the same thing.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2

from gateway.config import Config
from gateway.http.status_codes import http_status
from gateway.tenants import hash_key
from tests.conftest import Gateway, configured, running_gateway

OPS_KEY = "ops-http-key-6d1f0c9a2b"  # every account
ALPHA_KEY = "alpha-http-key-0b7e4c1d95"  # the WeCom robot only
LIMITED_KEY = "limited-http-key-93fa1e77c0"  # every account, one Send a minute
KEYS = (OPS_KEY, ALPHA_KEY, LIMITED_KEY)


def http_config(base: Config, redis_url: str, namespace: str, **http: object) -> Config:
    """The base config with three tenants, the real Redis and the HTTP face on a free port."""
    tenants = yaml.safe_load(
        textwrap.dedent(
            f"""
            - name: ops
              api_keys: ["{hash_key(OPS_KEY)}"]
              accounts: ["*"]
            - name: alpha
              api_keys: ["{hash_key(ALPHA_KEY)}"]
              accounts: [team-wecom]
            - name: limited
              api_keys: ["{hash_key(LIMITED_KEY)}"]
              accounts: ["*"]
              quotas: {{sends_per_minute: 1}}
            """
        )
    )
    return configured(
        base,
        tenants=tenants,
        token_store=redis_url,
        key_namespace=namespace,
        http={"listen": "127.0.0.1:0", **http},
    )


@dataclass
class Faces:
    """One gateway, reached both ways."""

    gateway: Gateway
    session: aiohttp.ClientSession
    base_url: str

    async def grpc(
        self, rpc: str, request: Message | list[Message], key: str | None
    ) -> tuple[int, dict[str, Any]]:
        metadata = (("authorization", f"Bearer {key}"),) if key else ()
        call = getattr(self.gateway.stub, rpc)
        try:
            if isinstance(request, list):
                response = await call(iter(request), metadata=metadata, timeout=10)
            else:
                response = await call(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return http_status(error.code()), status_of(error)
        return 200, json_format.MessageToDict(response)

    async def http(
        self,
        method: str,
        path: str,
        key: str | None,
        *,
        body: object = None,
        data: bytes | aiohttp.FormData | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        sent = dict(headers or {})
        if key:
            sent["Authorization"] = f"Bearer {key}"
        async with self.session.request(
            method, self.base_url + path, json=body, data=data, params=params, headers=sent
        ) as response:
            return response.status, await response.json(content_type=None)


def status_of(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return json_format.MessageToDict(status_pb2.Status.FromString(value))
    return {"code": error.code().value[0], "message": error.details()}


@contextlib.asynccontextmanager
async def faces(config: Config, gateway_sandbox: Any) -> AsyncIterator[Faces]:
    async with (
        running_gateway(config, gateway_sandbox) as gateway,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
    ):
        assert gateway.server.http is not None
        yield Faces(gateway, session, f"http://{gateway.server.http.address}")
