"""Bytes that are not a valid request get INVALID_ARGUMENT naming the request, from every RPC.

A request the gateway cannot decode (corrupt protobuf, a string field that is not UTF-8) is the
caller's mistake, so it is answered as one: INVALID_ARGUMENT with a BadRequest violation on the
field ``request``, after authentication, and recorded by the access log like any other refusal.
The calls send raw bytes over real gRPC, the way a buggy client in another language would.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import Config
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until
from tests.rich_status import rich_error

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]
API_KEY = "undecodable-tenant-key-4c1e9a"
AUTHORIZED = (("authorization", f"Bearer {API_KEY}"),)
CORRUPT = b"\xff\xff\xff\xff"  # a field tag whose varint never ends
METHODS = {method.name: method for method in SERVICE.methods}


def with_a_tenant(base: Config) -> Config:
    tenants = [{"name": "callers", "api_keys": [hash_key(API_KEY)], "accounts": ["*"]}]
    return configured(base, tenants=tenants)


@pytest.fixture
async def tenant_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    async with running_gateway(with_a_tenant(gateway_config(sandbox.url)), sandbox.state) as gateway:
        yield gateway


def field_bytes(number: int, payload: bytes) -> bytes:
    """One length-delimited field on the wire (tag, length, payload); lengths here stay under 128."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def with_bad_utf8(descriptor: Descriptor) -> bytes:
    """The message with its first string field (searched depth first) holding bytes that are not UTF-8."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return field_bytes(field.number, b"ok\xff\xfe")
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return field_bytes(field.number, with_bad_utf8(field.message_type))
    raise AssertionError(f"{descriptor.full_name} has no string field")


async def call_raw(
    gateway: Gateway, method: MethodDescriptor, parts: list[bytes], metadata: tuple[tuple[str, str], ...]
) -> grpc.aio.AioRpcError:
    """Sends `parts` as the request (or request stream) without serializing; returns the error."""
    path = f"/{SERVICE.full_name}/{method.name}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method.client_streaming:
            await gateway.channel.stream_unary(path)(iter(parts), metadata=metadata, timeout=5)
        elif method.server_streaming:
            [part] = parts
            async for _ in gateway.channel.unary_stream(path)(part, metadata=metadata, timeout=5):
                pass
        else:
            [part] = parts
            await gateway.channel.unary_unary(path)(part, metadata=metadata, timeout=5)
    return caught.value


def unary_request_methods() -> list[MethodDescriptor]:
    return [method for method in SERVICE.methods if not method.client_streaming]


@pytest.mark.parametrize("method", unary_request_methods(), ids=lambda m: m.name)
@pytest.mark.parametrize("payload", [pytest.param(CORRUPT, id="corrupt"), pytest.param(None, id="bad-utf8")])
async def test_a_request_that_does_not_decode_is_invalid_argument(
    tenant_gateway: Gateway, method: MethodDescriptor, payload: bytes | None
) -> None:
    raw = payload if payload is not None else with_bad_utf8(method.input_type)
    error = rich_error(await call_raw(tenant_gateway, method, [raw], AUTHORIZED))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.violations) == ["request"]
    assert error.violations["request"].startswith(f"is not a valid {method.input_type.full_name}: ")
    assert "DecodeError" not in error.message, "no Python class names reach the caller"


@pytest.mark.parametrize("second_part", [CORRUPT, field_bytes(1, field_bytes(1, b"\xc3\x28"))])
async def test_an_upload_part_that_does_not_decode_is_invalid_argument(
    tenant_gateway: Gateway, second_part: bytes
) -> None:
    info = pb.UploadMediaRequest(
        info=pb.MediaInfo(account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="report.txt")
    )
    error = rich_error(
        await call_raw(
            tenant_gateway, METHODS["UploadMedia"], [info.SerializeToString(), second_part], AUTHORIZED
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations["request"].startswith(
        "message 2 of the stream is not a valid notify.v1.UploadMediaRequest: "
    )
    assert tenant_gateway.sandbox.received() == [], "nothing reaches the vendor"


async def test_authentication_comes_before_decoding(tenant_gateway: Gateway) -> None:
    for method in SERVICE.methods:
        error = await call_raw(tenant_gateway, method, [CORRUPT], metadata=())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, method.name


async def test_the_access_log_records_invalid_argument(
    tenant_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        await call_raw(tenant_gateway, METHODS["Send"], [CORRUPT], AUTHORIZED)
        await wait_until(lambda: any(r.name == "gateway.access" for r in caplog.records), "the access log")
    [line] = [r for r in caplog.records if r.name == "gateway.access"]
    assert (line.rpc, line.status) == (f"/{SERVICE.full_name}/Send", "INVALID_ARGUMENT")


async def test_the_server_keeps_serving_after_undecodable_requests(tenant_gateway: Gateway) -> None:
    for method in SERVICE.methods:
        await call_raw(tenant_gateway, method, [CORRUPT], AUTHORIZED)
    health = health_pb2_grpc.HealthStub(tenant_gateway.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    sent = await tenant_gateway.stub.Send(
        pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content="still here"))),
        metadata=AUTHORIZED,
        timeout=5,
    )
    assert sent.state == pb.MESSAGE_STATE_SENT
