"""UploadMedia stores a file at the vendor once per content and account, and the media_id works.

Files are real (if tiny) files of their formats, streamed in several chunks; the sandbox checks
them the way the vendors do (magic bytes, DingTalk file extensions) and keeps what it received.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import grpc
import pytest

from gateway.config import TenantSettings
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import Gateway, gateway_config, running_gateway
from tests.media_samples import AMR, JPEG, MP4, PDF, PNG, WAV, ZIP
from tests.rich_status import rich_error

WECOM_MEDIA_LIFETIME = 3 * 86400


# -- streaming -------------------------------------------------------------------------------------


def parts(
    account: str, media_type: int, filename: str, data: bytes, content_type: str = "", pieces: int = 4
) -> list[pb.UploadMediaRequest]:
    """info, then the file in `pieces` chunks."""
    info = pb.MediaInfo(
        account=account, type=media_type, filename=filename, content_type=content_type, size=len(data)
    )
    step = -(-len(data) // pieces)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert len(chunks) > 1
    return [pb.UploadMediaRequest(info=info), *(pb.UploadMediaRequest(chunk=c) for c in chunks)]


async def stream(items: list[pb.UploadMediaRequest]) -> AsyncIterator[pb.UploadMediaRequest]:
    for item in items:
        yield item


async def upload(
    gateway: Gateway,
    account: str,
    media_type: int,
    filename: str,
    data: bytes,
    content_type: str = "",
) -> pb.UploadMediaResponse:
    return await gateway.stub.UploadMedia(stream(parts(account, media_type, filename, data, content_type)))


def vendor_uploads(gateway: Gateway, name: str | None = None) -> int:
    return sum(1 for entry in gateway.sandbox.received(robot=name) if entry.msgtype == "upload")


# -- every type each channel takes -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    account: str
    media_type: int
    filename: str
    data: bytes
    content_type: str = ""

    @property
    def expires(self) -> bool:
        return self.account != "ding-app"  # WeCom media live 3 days; DingTalk media never expire


CASES = [
    Case("corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG, "image/png"),
    Case("corp-app", pb.MEDIA_TYPE_VOICE, "memo.amr", AMR, "audio/amr"),
    Case("corp-app", pb.MEDIA_TYPE_VIDEO, "demo.mp4", MP4, "video/mp4"),
    Case("corp-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF, "application/pdf"),
    Case("team-wecom", pb.MEDIA_TYPE_FILE, "report.pdf", PDF),
    Case("team-wecom", pb.MEDIA_TYPE_VOICE, "memo.amr", AMR),
    Case("ding-app", pb.MEDIA_TYPE_IMAGE, "photo.jpg", JPEG, "image/jpeg"),
    Case("ding-app", pb.MEDIA_TYPE_VOICE, "memo.wav", WAV, "audio/wav"),
    Case("ding-app", pb.MEDIA_TYPE_VIDEO, "demo.mp4", MP4),
    Case("ding-app", pb.MEDIA_TYPE_FILE, "notes.zip", ZIP, "application/zip"),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.account}-{pb.MediaType.Name(c.media_type).removeprefix('MEDIA_TYPE_')}"
)
async def test_an_upload_stores_the_file_at_the_vendor_and_says_what_it_stored(
    gateway: Gateway, case: Case
) -> None:
    uploaded = await upload(
        gateway, case.account, case.media_type, case.filename, case.data, case.content_type
    )

    stored = gateway.sandbox.media(case.account)
    assert uploaded.media_id in stored
    record = stored[uploaded.media_id]
    digest = hashlib.sha256(case.data).hexdigest()
    vendor_type = pb.MediaType.Name(case.media_type).removeprefix("MEDIA_TYPE_").lower()
    assert (record.type, record.filename, record.size, record.sha256) == (
        vendor_type,
        case.filename,
        len(case.data),
        digest,
    )
    assert uploaded.type == case.media_type
    assert uploaded.size == len(case.data)
    assert uploaded.sha256 == digest
    assert uploaded.reused is False
    if case.expires:
        assert uploaded.HasField("expires_at")
        assert abs(uploaded.expires_at.seconds - (time.time() + WECOM_MEDIA_LIFETIME)) < 120
    else:
        assert not uploaded.HasField("expires_at")
    assert vendor_uploads(gateway, case.account) == 1


# -- the content cache -----------------------------------------------------------------------------


async def test_the_same_file_to_the_same_account_is_uploaded_once(gateway: Gateway) -> None:
    first = await upload(gateway, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)
    second = await upload(gateway, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)

    assert second.reused is True
    assert second.media_id == first.media_id
    assert (second.size, second.sha256, second.type) == (first.size, first.sha256, first.type)
    assert second.expires_at == first.expires_at
    assert vendor_uploads(gateway) == 1


async def test_the_same_bytes_to_another_account_or_as_another_type_are_new_uploads(gateway: Gateway) -> None:
    image = await upload(gateway, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)
    as_file = await upload(gateway, "corp-app", pb.MEDIA_TYPE_FILE, "chart.png", PNG)
    to_robot = await upload(gateway, "team-wecom", pb.MEDIA_TYPE_FILE, "chart.png", PNG)
    to_dingtalk = await upload(gateway, "ding-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)

    assert [r.reused for r in (image, as_file, to_robot, to_dingtalk)] == [False] * 4
    assert len({image.media_id, as_file.media_id, to_robot.media_id, to_dingtalk.media_id}) == 4
    assert as_file.media_id in gateway.sandbox.media("corp-app")
    assert to_robot.media_id in gateway.sandbox.media("team-wecom")
    assert to_dingtalk.media_id in gateway.sandbox.media("ding-app")
    assert vendor_uploads(gateway) == 4


async def test_a_file_under_another_name_is_a_new_upload_since_recipients_see_the_name(
    gateway: Gateway,
) -> None:
    report = await upload(gateway, "corp-app", pb.MEDIA_TYPE_FILE, "report-q3.zip", ZIP)
    renamed = await upload(gateway, "corp-app", pb.MEDIA_TYPE_FILE, "report-q4.zip", ZIP)
    again = await upload(gateway, "corp-app", pb.MEDIA_TYPE_FILE, "report-q4.zip", ZIP)

    assert (report.reused, renamed.reused, again.reused) == (False, False, True)
    assert report.media_id != renamed.media_id == again.media_id
    assert gateway.sandbox.media("corp-app")[renamed.media_id].filename == "report-q4.zip"
    assert vendor_uploads(gateway) == 2


async def test_with_redis_a_second_replica_reuses_what_the_first_uploaded(
    sandbox: SandboxServer, redis_url: str, namespace: str
) -> None:
    config = gateway_config(sandbox.url).model_copy(
        update={"token_store": redis_url, "key_namespace": namespace}
    )
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_gateway(config, sandbox.state))
        second = await stack.enter_async_context(running_gateway(config, sandbox.state))

        uploaded = await upload(first, "corp-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
        again = await upload(second, "corp-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)

        assert uploaded.reused is False
        assert again.reused is True
        assert again.media_id == uploaded.media_id
        assert again.expires_at == uploaded.expires_at
        assert vendor_uploads(first) == 1


# -- the media_id works ------------------------------------------------------------------------------


async def test_a_file_uploaded_to_a_wecom_robot_can_be_sent_by_it(gateway: Gateway) -> None:
    uploaded = await upload(gateway, "team-wecom", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)

    sent = await gateway.stub.Send(
        pb.SendRequest(account="team-wecom", message=pb.Message(file=pb.File(media_id=uploaded.media_id)))
    )

    assert sent.state == pb.MESSAGE_STATE_SENT
    delivered = gateway.sandbox.delivered("wecom_robot", "team-wecom")
    assert [entry.body for entry in delivered] == [
        {"msgtype": "file", "file": {"media_id": uploaded.media_id}}
    ]


async def test_an_image_uploaded_to_a_wecom_app_can_be_sent_by_media_id(gateway: Gateway) -> None:
    uploaded = await upload(gateway, "corp-app", pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)

    sent = await gateway.stub.Send(
        pb.SendRequest(
            account="corp-app",
            recipients=pb.Recipients(user_ids=["zhangsan"]),
            message=pb.Message(image=pb.Image(media_id=uploaded.media_id)),
        )
    )

    assert sent.state == pb.MESSAGE_STATE_SENT
    delivered = gateway.sandbox.delivered("wecom_app", "corp-app")
    assert len(delivered) == 1
    assert delivered[0].msgtype == "image"
    assert delivered[0].body["image"] == {"media_id": uploaded.media_id}


@pytest.mark.parametrize(
    ("account", "channel", "recipient"),
    [("corp-app", "wecom_app", "zhangsan"), ("ding-app", "dingtalk_work", "user01")],
    ids=["corp-app", "ding-app"],
)
async def test_image_bytes_sent_to_an_app_are_uploaded_once_and_delivered_as_an_image(
    gateway: Gateway, account: str, channel: str, recipient: str
) -> None:
    request = pb.SendRequest(
        account=account,
        recipients=pb.Recipients(user_ids=[recipient]),
        message=pb.Message(image=pb.Image(data=PNG)),
    )

    await gateway.stub.Send(request)
    await gateway.stub.Send(request)

    delivered = gateway.sandbox.delivered(channel, account)
    assert [entry.msgtype for entry in delivered] == ["image", "image"]
    media_ids = [
        (entry.body["image"] if channel == "wecom_app" else entry.body["msg"]["image"])["media_id"]
        for entry in delivered
    ]
    assert media_ids[0] == media_ids[1]
    stored = gateway.sandbox.media(account)
    assert media_ids[0] in stored
    assert stored[media_ids[0]].type == "image"
    assert stored[media_ids[0]].sha256 == hashlib.sha256(PNG).hexdigest()
    assert vendor_uploads(gateway, account) == 1
    # The same cache serves UploadMedia: the bytes are already at the vendor.
    uploaded = await upload(gateway, account, pb.MEDIA_TYPE_IMAGE, "chart.png", PNG)
    assert (uploaded.reused, uploaded.media_id) == (True, media_ids[0])


# -- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "channel", "path"),
    [
        pytest.param("corp-app", "wecom_app", "/cgi-bin/media/upload", id="corp-app"),
        pytest.param("team-wecom", "wecom_robot", "/cgi-bin/webhook/upload_media", id="team-wecom"),
        pytest.param("ding-app", "dingtalk_work", "/media/upload", id="ding-app"),
    ],
)
async def test_a_vendor_size_refusal_is_invalid_argument_and_nothing_is_cached(
    gateway: Gateway, account: str, channel: str, path: str
) -> None:
    gateway.sandbox.inject_fault(channel, account, errcode=45001, errmsg="media size out of limit", path=path)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(gateway, account, pb.MEDIA_TYPE_FILE, "report.pdf", PDF)

    error = rich_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.error_info is not None and error.error_info.metadata["vendor_errcode"] == "45001"
    # The refused upload left nothing behind: the next try goes to the vendor.
    retried = await upload(gateway, account, pb.MEDIA_TYPE_FILE, "report.pdf", PDF)
    assert retried.reused is False
    assert retried.media_id in gateway.sandbox.media(account)


@pytest.mark.parametrize(
    ("account", "channel", "path"),
    [
        ("corp-app", "wecom_app", "/cgi-bin/media/upload"),
        ("team-wecom", "wecom_robot", "/cgi-bin/webhook/upload_media"),
        ("ding-app", "dingtalk_work", "/media/upload"),
    ],
    ids=["corp-app", "team-wecom", "ding-app"],
)
async def test_a_vendor_http_500_on_upload_is_unavailable(
    gateway: Gateway, account: str, channel: str, path: str
) -> None:
    gateway.sandbox.inject_fault(channel, account, http_status=500, path=path, times=3)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(gateway, account, pb.MEDIA_TYPE_FILE, "report.pdf", PDF)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert gateway.sandbox.media(account) == {}


API_KEY = "robots-only-key-3c9e0a57"


async def test_uploading_to_an_account_the_tenant_may_not_use_is_permission_denied(
    sandbox: SandboxServer,
) -> None:
    tenant = TenantSettings(name="robots", api_keys=[hash_key(API_KEY)], accounts=["team-wecom"])
    config = gateway_config(sandbox.url).model_copy(update={"auth": "api_keys", "tenants": [tenant]})
    metadata = (("authorization", f"Bearer {API_KEY}"),)

    async with running_gateway(config, sandbox.state) as gateway:
        # The refusal comes after info, while the client still streams: use the sync client,
        # since grpc.aio's may report INTERNAL then (grpc/grpc#36066).
        def refused() -> grpc.RpcError:
            def requests() -> Iterator[pb.UploadMediaRequest]:
                yield from parts("corp-app", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)

            with grpc.insecure_channel(gateway.server.address) as channel:
                try:
                    pb_grpc.NotificationServiceStub(channel).UploadMedia(requests(), metadata=metadata)
                except grpc.RpcError as error:
                    return error
            raise AssertionError("the upload was accepted")

        error = rich_error(await asyncio.to_thread(refused))  # type: ignore[arg-type]
        assert error.code == grpc.StatusCode.PERMISSION_DENIED
        assert "corp-app" in error.message
        assert vendor_uploads(gateway) == 0
        # The account it may use takes the same upload.
        allowed = await gateway.stub.UploadMedia(
            stream(parts("team-wecom", pb.MEDIA_TYPE_FILE, "report.pdf", PDF)), metadata=metadata
        )
        assert allowed.media_id in sandbox.state.media("team-wecom")
