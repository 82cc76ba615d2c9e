"""Tenants sharing an account never share its media cache.

A cache hit for bytes another tenant uploaded would answer ``reused = true`` with that tenant's
media_id, which tells the caller what the other tenant sent. Each tenant's uploads are cached for
itself only, in memory and in Redis alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.config import Config, TenantSettings
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway, configured, gateway_config, running_gateway
from tests.media_samples import PDF, PNG

KEY_A = "tenant-a-key-7f3e21"
KEY_B = "tenant-b-key-0c9d84"


def two_tenants(base: Config) -> Config:
    """Tenants a and b, both allowed on every account."""
    return configured(
        base,
        tenants=[
            TenantSettings(name="a", api_keys=[hash_key(KEY_A)], accounts=["*"]),
            TenantSettings(name="b", api_keys=[hash_key(KEY_B)], accounts=["*"]),
        ],
    )


def as_tenant(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


async def upload(gateway: Gateway, key: str, data: bytes = PDF) -> pb.UploadMediaResponse:
    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        info = pb.MediaInfo(account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="report.pdf")
        yield pb.UploadMediaRequest(info=info)
        yield pb.UploadMediaRequest(chunk=data)

    response: pb.UploadMediaResponse = await gateway.stub.UploadMedia(parts(), metadata=as_tenant(key))
    return response


def vendor_uploads(gateway: Gateway) -> int:
    return sum(1 for entry in gateway.sandbox.received("wecom_app", "corp-app") if entry.msgtype == "upload")


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_tenant_uploading_bytes_another_tenant_uploaded_gets_its_own_media_id(
    sandbox: SandboxServer, redis_url: str, namespace: str, store: str
) -> None:
    config = two_tenants(gateway_config(sandbox.url))
    if store == "redis":
        config = configured(config, token_store=redis_url, key_namespace=namespace)

    async with running_gateway(config, sandbox.state) as gateway:
        from_a = await upload(gateway, KEY_A)
        from_b = await upload(gateway, KEY_B)
        b_again = await upload(gateway, KEY_B)
        a_again = await upload(gateway, KEY_A)

    assert from_a.reused is False
    assert from_b.reused is False
    assert from_b.media_id != from_a.media_id
    assert (b_again.reused, b_again.media_id) == (True, from_b.media_id)
    assert (a_again.reused, a_again.media_id) == (True, from_a.media_id)
    assert vendor_uploads(gateway) == 2


async def test_image_bytes_in_a_send_are_uploaded_once_per_tenant(sandbox: SandboxServer) -> None:
    request = pb.SendRequest(
        account="corp-app",
        recipients=pb.Recipients(user_ids=["zhangsan"]),
        message=pb.Message(image=pb.Image(data=PNG)),
    )

    async with running_gateway(two_tenants(gateway_config(sandbox.url)), sandbox.state) as gateway:
        await gateway.stub.Send(request, metadata=as_tenant(KEY_A))
        await gateway.stub.Send(request, metadata=as_tenant(KEY_B))
        await gateway.stub.Send(request, metadata=as_tenant(KEY_B))

    media_ids = [
        entry.body["image"]["media_id"] for entry in sandbox.state.delivered("wecom_app", "corp-app")
    ]
    assert len(media_ids) == 3
    assert media_ids[0] != media_ids[1] == media_ids[2]
    assert vendor_uploads(gateway) == 2
