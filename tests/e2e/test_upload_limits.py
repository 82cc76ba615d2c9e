"""What an upload may cost a gateway: a slot among ``uploads.max_concurrent``, and bounded time.

A caller past the cap is told at once to come back (RESOURCE_EXHAUSTED with RetryInfo); a stream
that pauses longer than ``idle_timeout_seconds``, or takes longer than ``max_seconds`` in all, is
ended with DEADLINE_EXCEEDED naming the setting, and leaves nothing behind.

The refusals come while the client is still streaming, so these tests use grpc's sync client,
which reports the server's status (grpc.aio's may report INTERNAL then: grpc/grpc#36066).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from gateway.config import UploadSettings
from gateway.sandbox import SandboxServer
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until
from tests.e2e.test_upload_spool import open_spool_files
from tests.media_samples import PDF
from tests.rich_status import RichError, rich_error

GIVE_UP = 10.0  # seconds a stalled test client waits at most before it lets go by itself


@asynccontextmanager
async def gateway_with(sandbox: SandboxServer, tmp_path: Path, **uploads: object) -> AsyncIterator[Gateway]:
    settings = UploadSettings.model_validate({"memory_bytes": 0, "spool_directory": tmp_path, **uploads})
    async with running_gateway(
        configured(gateway_config(sandbox.url), uploads=settings), sandbox.state
    ) as gateway:
        yield gateway


def info() -> pb.UploadMediaRequest:
    return pb.UploadMediaRequest(
        info=pb.MediaInfo(account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="report.pdf")
    )


def chunk(data: bytes = PDF) -> pb.UploadMediaRequest:
    return pb.UploadMediaRequest(chunk=data)


async def refused(gateway: Gateway, requests: Callable[[], Iterator[pb.UploadMediaRequest]]) -> RichError:
    def upload() -> grpc.RpcError:
        with grpc.insecure_channel(gateway.server.address) as channel:
            try:
                pb_grpc.NotificationServiceStub(channel).UploadMedia(requests(), timeout=30)
            except grpc.RpcError as error:
                return error
        raise AssertionError("the upload was accepted")

    return rich_error(await asyncio.to_thread(upload))


def vendor_uploads(gateway: Gateway) -> int:
    return sum(1 for entry in gateway.sandbox.received() if entry.msgtype == "upload")


# -- the cap on concurrent uploads ------------------------------------------------------------------


async def test_an_upload_past_the_cap_is_refused_with_retry_info_and_taken_once_a_slot_is_free(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with gateway_with(sandbox, tmp_path, max_concurrent=1) as gateway:
        finish = asyncio.Event()

        async def first_requests() -> AsyncIterator[pb.UploadMediaRequest]:
            yield info()
            yield chunk()
            await finish.wait()

        first = gateway.stub.UploadMedia(first_requests())
        # Its first chunk is spooled (memory_bytes: 0), so it holds the one slot.
        await wait_until(lambda: open_spool_files(tmp_path), "the first upload to be receiving")

        error = await refused(gateway, lambda: iter([info(), chunk()]))

        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.retry_delay is not None and error.retry_delay > 0
        assert error.error_info is not None
        assert error.error_info.reason == "UPLOADS_AT_CAPACITY"
        assert error.error_info.metadata["max_concurrent"] == "1"
        assert "uploads.max_concurrent" in error.message

        finish.set()
        assert (await first).media_id
        again = await gateway.stub.UploadMedia(_stream([info(), chunk()]))
        assert again.reused is True  # the same file: the second caller got the slot and the cached media_id


# -- time limits ------------------------------------------------------------------------------------


async def test_a_stream_that_pauses_longer_than_the_idle_timeout_is_ended(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with gateway_with(sandbox, tmp_path, idle_timeout_seconds=0.2) as gateway:
        resume = threading.Event()

        def requests() -> Iterator[pb.UploadMediaRequest]:
            yield info()
            yield chunk()
            resume.wait(GIVE_UP)  # the caller stops sending mid-file

        try:
            error = await refused(gateway, requests)
        finally:
            resume.set()

        assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no part of the upload arrived for 0.2 s (uploads.idle_timeout_seconds)" in error.message
        assert error.error_info is not None and error.error_info.reason == "UPLOAD_IDLE"
        assert vendor_uploads(gateway) == 0
        await wait_until(lambda: not open_spool_files(tmp_path), "the spool file to be removed")


async def test_a_stream_that_never_sends_info_is_ended_by_the_idle_timeout(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with gateway_with(sandbox, tmp_path, idle_timeout_seconds=0.2) as gateway:
        resume = threading.Event()

        def requests() -> Iterator[pb.UploadMediaRequest]:
            resume.wait(GIVE_UP)
            yield from ()

        try:
            error = await refused(gateway, requests)
        finally:
            resume.set()

        assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "uploads.idle_timeout_seconds" in error.message


async def test_a_stream_that_keeps_trickling_past_the_total_limit_is_ended(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with gateway_with(sandbox, tmp_path, idle_timeout_seconds=5, max_seconds=0.5) as gateway:
        stop = threading.Event()

        def requests() -> Iterator[pb.UploadMediaRequest]:
            yield info()
            # A few bytes every 50 ms: never idle, never done (bounded, should the gateway not stop it).
            for _ in range(int(GIVE_UP / 0.05)):
                if stop.wait(0.05):
                    return
                yield chunk(b"slow..")

        try:
            error = await refused(gateway, requests)
        finally:
            stop.set()

        assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "the upload did not arrive within 0.5 s (uploads.max_seconds)" in error.message
        assert error.error_info is not None and error.error_info.reason == "UPLOAD_TOO_SLOW"
        assert vendor_uploads(gateway) == 0
        await wait_until(lambda: not open_spool_files(tmp_path), "the spool file to be removed")


async def _stream(parts: list[pb.UploadMediaRequest]) -> AsyncIterator[pb.UploadMediaRequest]:
    for part in parts:
        yield part
