"""The Python client package (clients/python, ``notify_client``) against a real gateway and sandbox.

Every call goes over real gRPC to a real GatewayServer, which calls the sandbox over real HTTP:
what is asserted is what a caller would see, down to what the "vendor" received. The sync client
blocks, so its calls run in a worker thread while the gateway keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status
from notify_client import (
    AsyncNotifyClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    NotifyClient,
    NotifyError,
    RateLimitedError,
    RetryEvent,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
    VendorError,
    pb,
)
from notify_client._common import is_core_internal_error

from gateway.config import Config, TenantSettings
from gateway.errors import ResourceExhausted
from gateway.interceptors.errors import status_of
from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as gateway_pb
from generated.notify.v1 import notification_service_pb2_grpc as gateway_pb_grpc
from tests.conftest import Gateway, gateway_config, running_gateway, with_tls
from tests.media_samples import PNG

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "client-tests-key-4f1c"
APP_USER = pb.Recipients(user_ids=["zhangsan"])  # in the sandbox's WeCom app directory

# Short waits everywhere: a test checks what is retried and how long the client asked to wait,
# never waits a vendor's 60 s.
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, max_total=2.0)


def with_tenant(config: Config, *, sends_per_minute: int | None = None) -> Config:
    quotas = {"sends_per_minute": sends_per_minute} if sends_per_minute else {}
    tenant = TenantSettings.model_validate(
        {"name": "clients", "api_keys": [hash_key(API_KEY)], "accounts": ["*"], "quotas": quotas}
    )
    return config.model_copy(update={"auth": "api_keys", "tenants": [tenant]})


class Recorder:
    """Collects the client's RetryEvents (RetryPolicy.on_retry)."""

    def __init__(self) -> None:
        self.events: list[RetryEvent] = []

    def __call__(self, event: RetryEvent) -> None:
        self.events.append(event)


@pytest.fixture
def retries() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(gateway: Gateway, retries: Recorder) -> AsyncIterator[AsyncNotifyClient]:
    policy = RetryPolicy(
        max_attempts=3, initial_backoff=0.01, max_backoff=0.05, max_total=2.0, on_retry=retries
    )
    async with AsyncNotifyClient(gateway.server.address, insecure=True, retry=policy) as client:
        yield client


@pytest.fixture
async def keyed_gateway(sandbox: SandboxServer) -> AsyncIterator[Gateway]:
    """A gateway that requires API keys (one tenant, allowed every account)."""
    async with running_gateway(with_tenant(gateway_config(sandbox.url)), sandbox.state) as gateway:
        yield gateway


# -- the package itself ---------------------------------------------------------------------------


def test_errors_survive_pickling_with_their_details() -> None:
    """Errors cross process boundaries (multiprocessing, task queues) with their details."""
    error = InvalidArgumentError(
        "bad", violations={"message.text.content": "is required"}, reason="INVALID_ARGUMENT"
    )
    error.idempotency_key = "k1"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is InvalidArgumentError
    assert copy.violations == {"message.text.content": "is required"}
    assert copy.code == grpc.StatusCode.INVALID_ARGUMENT and copy.idempotency_key == "k1"


def test_retry_policy_retries_only_what_can_succeed_later() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_total=5.0)
    unavailable = UnavailableError("down")
    assert policy.delay_before_retry(unavailable, 1, 0.0) is not None
    assert policy.delay_before_retry(unavailable, 3, 0.0) is None, "attempts are bounded"
    assert policy.delay_before_retry(InvalidArgumentError("bad"), 1, 0.0) is None
    assert policy.delay_before_retry(FailedPreconditionError("no"), 1, 0.0) is None
    limited = RateLimitedError("slow down", retry_delay=1.5)
    delay = policy.delay_before_retry(limited, 1, 0.0)
    assert delay is not None and 1.5 <= delay <= 1.65, "never sooner than RetryInfo asks"
    assert policy.delay_before_retry(limited, 1, 4.0) is None, "total time is bounded"


# -- sends ----------------------------------------------------------------------------------------


async def test_send_text_reaches_the_robot(client: AsyncNotifyClient, gateway: Gateway) -> None:
    response = await client.send_text(
        "team-wecom", "deploy finished", recipients=pb.Recipients(user_ids=["zhangsan"])
    )
    assert response.state == pb.MESSAGE_STATE_SENT and len(response.message_id) == 26
    [delivered] = gateway.sandbox.delivered("wecom_robot", "team-wecom")
    assert delivered.body["text"]["content"] == "deploy finished"
    assert delivered.body["text"]["mentioned_list"] == ["zhangsan"]


async def test_every_send_carries_an_idempotency_key(client: AsyncNotifyClient, gateway: Gateway) -> None:
    """A generated key makes a replay of the same logical send a duplicate, not a second message."""
    first = await client.send_text("plain-dingtalk", "once", idempotency_key="deploy-42")
    again = await client.send_text("plain-dingtalk", "once", idempotency_key="deploy-42")
    assert again.duplicate and again.message_id == first.message_id
    assert len(gateway.sandbox.delivered("dingtalk_robot", "plain-dingtalk")) == 1


async def test_send_markdown_with_title(client: AsyncNotifyClient, gateway: Gateway) -> None:
    await client.send_markdown("ops-dingtalk", "# Deploy\n**done**", title="Deploy")
    [delivered] = gateway.sandbox.delivered("dingtalk_robot", "ops-dingtalk")
    assert delivered.body["msgtype"] == "markdown"
    assert delivered.body["markdown"] == {"title": "Deploy", "text": "# Deploy\n**done**"}


async def test_send_card_text_card_and_action_card(client: AsyncNotifyClient, gateway: Gateway) -> None:
    await client.send_card(
        "corp-app",
        pb.TextCard(title="Release", description="v2 is out", url="https://example.com/v2"),
        recipients=APP_USER,
    )
    await client.send_card(
        "ops-dingtalk",
        pb.ActionCard(
            title="Release",
            markdown="v2 is out",
            buttons=[pb.ActionButton(title="Open", url="https://example.com/v2")],
        ),
    )
    [text_card] = gateway.sandbox.delivered("wecom_app", "corp-app")
    assert text_card.body["textcard"]["title"] == "Release"
    [action_card] = gateway.sandbox.delivered("dingtalk_robot", "ops-dingtalk")
    assert action_card.body["msgtype"] == "actionCard"


async def test_send_image_from_a_file_to_an_app_channel(
    client: AsyncNotifyClient, gateway: Gateway, tmp_path: Path
) -> None:
    picture = tmp_path / "chart.png"
    picture.write_bytes(PNG)
    response = await client.send_image("corp-app", picture, recipients=APP_USER)
    assert response.state == pb.MESSAGE_STATE_SENT
    [delivered] = gateway.sandbox.delivered("wecom_app", "corp-app")
    media_id = delivered.body["image"]["media_id"]
    assert gateway.sandbox.media("corp-app")[media_id].sha256 == hashlib.sha256(PNG).hexdigest()


async def test_recall_withdraws_an_app_message(client: AsyncNotifyClient, gateway: Gateway) -> None:
    sent = await client.send_text("corp-app", "wrong channel, sorry", recipients=APP_USER)
    assert sent.recallable

    recalled = await client.recall(sent.message_id)

    assert recalled.state == pb.MESSAGE_STATE_RECALLED and recalled.message_id == sent.message_id
    assert gateway.sandbox.recalled("corp-app") == [sent.vendor_message_id]


# -- uploads --------------------------------------------------------------------------------------


async def test_upload_file_streams_from_disk_in_chunks(
    client: AsyncNotifyClient, gateway: Gateway, tmp_path: Path
) -> None:
    # Larger than the gateway's 4 MB message limit: only a chunked stream gets through.
    data = bytes(range(256)) * (5 * 4096 + 7)
    report = tmp_path / "report.pdf"
    report.write_bytes(data)

    uploaded = await client.upload_file("corp-app", report, "file", chunk_size=256 * 1024)

    assert uploaded.size == len(data) and uploaded.type == pb.MEDIA_TYPE_FILE
    assert uploaded.sha256 == hashlib.sha256(data).hexdigest()
    record = gateway.sandbox.media("corp-app")[uploaded.media_id]
    assert (record.filename, record.size) == ("report.pdf", len(data))


async def test_upload_refusals_keep_the_gateways_status(
    client: AsyncNotifyClient, gateway: Gateway, tmp_path: Path
) -> None:
    """An early refusal arrives typed, every time, despite grpc.aio's lost-status bug (#36066)."""
    clip = tmp_path / "clip.mp3"  # the WeCom robot takes .amr voice clips only
    clip.write_bytes(b"x" * 1_500_000)
    for _ in range(5):
        with pytest.raises(InvalidArgumentError) as caught:
            await client.upload_file("team-wecom", clip, "voice", chunk_size=32 * 1024)
        assert "amr" in caught.value.violations["info.filename"]
    assert gateway.sandbox.received() == []


async def test_a_status_grpc_aio_loses_is_recognised_and_recovered(
    client: AsyncNotifyClient, gateway: Gateway
) -> None:
    """Writing chunks after the gateway refused the info makes grpc.aio report INTERNAL "Internal
    error from Core" (grpc/grpc#36066). The client recognises that error and recovers the real
    status by sending the info part alone."""
    info = pb.MediaInfo(account="team-wecom", type=pb.MEDIA_TYPE_VOICE, filename="clip.mp3")
    async with grpc.aio.insecure_channel(gateway.server.address) as channel:
        upload = channel.stream_unary(
            "/notify.v1.NotificationService/UploadMedia",
            request_serializer=pb.UploadMediaRequest.SerializeToString,
            response_deserializer=pb.UploadMediaResponse.FromString,
        )
        call = upload(timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.write(pb.UploadMediaRequest(info=info))
            for _ in range(40):
                if call.done():
                    break
                await call.write(pb.UploadMediaRequest(chunk=b"x" * 256 * 1024))
            await call.done_writing()
            await call
    error = caught.value
    if error.code() == grpc.StatusCode.INTERNAL:  # the bug; a fixed grpc reports INVALID_ARGUMENT
        assert is_core_internal_error(error.code(), error.details() or "", error.trailing_metadata())
    else:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    verdict = await client._probe_info(info, 5.0)
    assert verdict is not None and verdict.code() == grpc.StatusCode.INVALID_ARGUMENT
    fine = pb.MediaInfo(account="team-wecom", type=pb.MEDIA_TYPE_FILE, filename="report.pdf")
    assert await client._probe_info(fine, 5.0) is None, "an acceptable info part is not an error"


# -- typed errors ---------------------------------------------------------------------------------


async def test_invalid_argument_carries_field_violations(
    client: AsyncNotifyClient, gateway: Gateway, retries: Recorder
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.send_text("team-wecom", "")
    error = caught.value
    assert error.violations == {"message.text.content": "is required"}
    assert error.reason == "INVALID_ARGUMENT" and error.domain == "notify-gateway"
    assert error.idempotency_key, "the key is on the error, so the caller can retry the same send"
    assert not isinstance(error, VendorError)
    assert retries.events == [], "a request to fix is never retried"


async def test_unknown_account_is_not_found_with_error_info(client: AsyncNotifyClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.send_text("nobody", "hello")
    assert caught.value.reason == "ACCOUNT_NOT_FOUND"
    assert caught.value.metadata["account"] == "nobody"


async def test_vendor_refusal_is_a_vendor_error_with_errcode(
    client: AsyncNotifyClient, gateway: Gateway
) -> None:
    gateway.sandbox.remove_wecom_robot("team-wecom")
    with pytest.raises(FailedPreconditionError) as caught:
        await client.send_text("team-wecom", "hello")
    error = caught.value
    assert isinstance(error, VendorError) and error.is_vendor_error
    assert error.reason == "VENDOR_CREDENTIAL_REVOKED"
    assert error.vendor_errcode == 93000 and error.vendor_errmsg


async def test_wrong_or_missing_api_key_is_unauthenticated(keyed_gateway: Gateway) -> None:
    address = keyed_gateway.server.address
    async with AsyncNotifyClient(address, "not-the-key", insecure=True, retry=FAST_RETRY) as client:
        with pytest.raises(UnauthenticatedError) as caught:
            await client.send_text("team-wecom", "hello")
        assert caught.value.reason == "API_KEY_INVALID"
    async with AsyncNotifyClient(address, None, insecure=True, retry=FAST_RETRY) as client:
        with pytest.raises(UnauthenticatedError):
            await client.recall("01J0000000000000000000000")
    async with AsyncNotifyClient(address, API_KEY, insecure=True, retry=FAST_RETRY) as client:
        assert (await client.send_text("team-wecom", "hello")).state == pb.MESSAGE_STATE_SENT


# -- retries --------------------------------------------------------------------------------------


async def test_vendor_rate_limit_raises_with_retry_delay_when_it_does_not_fit(
    client: AsyncNotifyClient, gateway: Gateway, retries: Recorder
) -> None:
    """WeCom's 45009 asks for 60 s; the client's 2 s budget cannot wait that long."""
    gateway.sandbox.inject_fault("wecom_robot", "team-wecom", errcode=45009, errmsg="api freq out of limit")
    with pytest.raises(RateLimitedError) as caught:
        await client.send_text("team-wecom", "hello")
    error = caught.value
    assert error.retry_delay == 60
    assert isinstance(error, VendorError) and error.vendor_errcode == 45009
    assert retries.events == []
    assert len(gateway.sandbox.received("wecom_robot")) == 1


async def test_tenant_quota_raises_with_the_servers_retry_delay(sandbox: SandboxServer) -> None:
    config = with_tenant(gateway_config(sandbox.url), sends_per_minute=1)
    async with (
        running_gateway(config, sandbox.state) as gateway,
        AsyncNotifyClient(gateway.server.address, API_KEY, insecure=True, retry=FAST_RETRY) as client,
    ):
        await client.send_text("team-wecom", "first")
        with pytest.raises(RateLimitedError) as caught:
            await client.send_text("team-wecom", "second")
    error = caught.value
    assert error.reason == "RATE_LIMITED" and error.metadata["scope"] == "tenant"
    assert error.retry_delay is not None and 0 < error.retry_delay <= 60
    assert not isinstance(error, VendorError)


async def test_resource_exhausted_is_retried_after_the_retry_info_delay(retries: Recorder) -> None:
    """A delay that fits the budget is waited out, then the same send (same key) succeeds.

    The gateway's own limits ask for 60 s or more, so this server answers the way the gateway does
    (its error type, encoded by its error interceptor) with a 50 ms RetryInfo.
    """
    keys: list[str] = []

    class Limited(gateway_pb_grpc.NotificationServiceServicer):
        async def Send(
            self, request: gateway_pb.SendRequest, context: grpc.aio.ServicerContext
        ) -> gateway_pb.SendResponse:
            keys.append(request.idempotency_key)
            if len(keys) == 1:
                limited = ResourceExhausted("over quota", retry_after=0.05, reason="RATE_LIMITED")
                rich = rpc_status.to_status(status_of(limited))
                await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)
            return gateway_pb.SendResponse(message_id="m-1", state=gateway_pb.MESSAGE_STATE_SENT)

        async def Recall(
            self, request: gateway_pb.RecallRequest, context: grpc.aio.ServicerContext
        ) -> gateway_pb.RecallResponse:
            raise NotImplementedError

        async def UploadMedia(
            self,
            request_iterator: AsyncIterator[gateway_pb.UploadMediaRequest],
            context: grpc.aio.ServicerContext,
        ) -> gateway_pb.UploadMediaResponse:
            raise NotImplementedError

    server = grpc.aio.server()
    gateway_pb_grpc.add_NotificationServiceServicer_to_server(Limited(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        policy = RetryPolicy(max_attempts=3, max_total=2.0, on_retry=retries)
        async with AsyncNotifyClient(f"127.0.0.1:{port}", insecure=True, retry=policy) as client:
            response = await client.send_text("team-wecom", "hello")
    finally:
        await server.stop(0)
    assert response.message_id == "m-1"
    [event] = retries.events
    assert isinstance(event.error, RateLimitedError) and event.error.retry_delay == pytest.approx(0.05)
    assert 0.05 <= event.delay <= 0.06
    assert len(keys) == 2 and keys[0] == keys[1] == event.idempotency_key


async def test_unavailable_is_retried_under_the_same_key_and_delivered_once(
    client: AsyncNotifyClient, gateway: Gateway, retries: Recorder
) -> None:
    """A 502 may come from a proxy after the vendor acted, so the gateway records the message as
    UNKNOWN and answers UNAVAILABLE. The DingTalk robot drops repeats of a msgUuid, so there the
    gateway may send again: the client's retry, under the same key, is the one delivery."""
    # The gateway tries three times itself; three 502s make it answer UNAVAILABLE.
    gateway.sandbox.inject_fault("dingtalk_robot", "plain-dingtalk", http_status=502, times=3)

    response = await client.send_text("plain-dingtalk", "hello")

    assert response.state == pb.MESSAGE_STATE_SENT
    [event] = retries.events
    assert isinstance(event.error, UnavailableError) and event.method == "Send"
    assert event.error.metadata["http_status"] == "502"
    assert event.error.message_state == pb.MESSAGE_STATE_UNKNOWN
    assert event.error.message_id == response.message_id, "the retry continued the same message"
    assert len(gateway.sandbox.received("dingtalk_robot", "plain-dingtalk")) == 4
    assert len(gateway.sandbox.delivered("dingtalk_robot")) == 1
    # The key the retry carried is the one the gateway recorded: a replay is a duplicate.
    replay = await gateway.stub.Send(
        gateway_pb.SendRequest(
            account="plain-dingtalk",
            message=gateway_pb.Message(text=gateway_pb.Text(content="hello")),
            idempotency_key=event.idempotency_key or "",
        )
    )
    assert replay.duplicate and replay.message_id == response.message_id
    assert len(gateway.sandbox.delivered("dingtalk_robot")) == 1


async def test_unavailable_after_the_retry_budget_is_raised(
    client: AsyncNotifyClient, gateway: Gateway, retries: Recorder
) -> None:
    gateway.sandbox.inject_fault("dingtalk_robot", "ops-dingtalk", http_status=502, times=9)
    with pytest.raises(UnavailableError) as caught:
        await client.send_text("ops-dingtalk", "hello")
    assert len(retries.events) == 2, "three attempts in all"
    assert {e.idempotency_key for e in retries.events} == {caught.value.idempotency_key}
    assert caught.value.message_state == pb.MESSAGE_STATE_UNKNOWN and caught.value.message_id
    assert gateway.sandbox.delivered() == []


# -- the sync client ------------------------------------------------------------------------------


async def test_sync_client(keyed_gateway: Gateway, tmp_path: Path) -> None:
    report = tmp_path / "notes.txt"
    report.write_bytes(b"minutes of the meeting\n" * 1000)

    def use_it() -> tuple[pb.SendResponse, pb.RecallResponse, pb.UploadMediaResponse, NotifyError]:
        with NotifyClient(keyed_gateway.server.address, API_KEY, insecure=True, retry=FAST_RETRY) as client:
            sent = client.send_text("corp-app", "hello", recipients=APP_USER)
            recalled = client.recall(sent.message_id)
            uploaded = client.upload_file("corp-app", report, pb.MEDIA_TYPE_FILE, chunk_size=4096)
            try:
                client.send_markdown("ops-dingtalk", "no title")
            except NotifyError as error:
                return sent, recalled, uploaded, error
        raise AssertionError("a DingTalk markdown without title must be refused")

    sent, recalled, uploaded, error = await asyncio.to_thread(use_it)

    assert sent.state == pb.MESSAGE_STATE_SENT and recalled.state == pb.MESSAGE_STATE_RECALLED
    assert uploaded.sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    assert isinstance(error, InvalidArgumentError) and "message.markdown.title" in error.violations


async def test_sync_upload_refusal_is_typed(keyed_gateway: Gateway, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp3"
    clip.write_bytes(b"x" * 1_500_000)

    def upload(api_key: str) -> NotifyError:
        with NotifyClient(keyed_gateway.server.address, api_key, insecure=True, retry=FAST_RETRY) as client:
            try:
                client.upload_file("team-wecom", clip, "voice")
            except NotifyError as error:
                return error
        raise AssertionError("the upload must be refused")

    assert isinstance(await asyncio.to_thread(upload, API_KEY), InvalidArgumentError)
    assert isinstance(await asyncio.to_thread(upload, "wrong"), UnauthenticatedError)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_tls_with_root_certificates_and_api_key_as_call_credentials(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config, cert = with_tls(with_tenant(gateway_config(sandbox.url)), tmp_path)
    async with running_gateway(config, sandbox.state) as gateway:
        address = f"localhost:{gateway.server.port}"
        async with AsyncNotifyClient(address, API_KEY, root_certificates=cert, retry=FAST_RETRY) as client:
            assert (await client.send_text("team-wecom", "over TLS")).state == pb.MESSAGE_STATE_SENT
        async with AsyncNotifyClient(
            address, "wrong", root_certificates=cert.read_bytes(), retry=FAST_RETRY
        ) as client:
            with pytest.raises(UnauthenticatedError):
                await client.send_text("team-wecom", "over TLS")

        def sync_send() -> pb.SendResponse:
            with NotifyClient(address, API_KEY, root_certificates=cert, retry=FAST_RETRY) as client:
                return client.send_text("ops-dingtalk", "over TLS")

        assert (await asyncio.to_thread(sync_send)).state == pb.MESSAGE_STATE_SENT
