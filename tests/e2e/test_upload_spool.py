"""An upload keeps a small buffer in memory and spools the rest to a file that goes with the call.

The spool file has no name (it vanishes with its descriptor, even if the gateway is killed), so the
tests see it the way the kernel does: as a descriptor of the gateway (here, this process) open on a
file in the configured spool directory. Each test shows the file while the upload streams, then
that nothing is left once the call ended, however it ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from gateway.config import UploadSettings
from gateway.sandbox import SandboxServer
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import Gateway, configured, gateway_config, running_gateway, wait_until
from tests.rich_status import rich_error

MB = 1024 * 1024
CHUNK = 256 * 1024
MEMORY_BYTES = 64 * 1024  # far below the files sent, so every one of them is spooled


def open_spool_files(directory: Path) -> list[str]:
    """What this process holds open in `directory`: the nameless spool files, seen by descriptor."""
    found = []
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue  # closed since the listing
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


def named_files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


@pytest.fixture
async def spooling(sandbox: SandboxServer, tmp_path: Path) -> AsyncIterator[Gateway]:
    uploads = UploadSettings(memory_bytes=MEMORY_BYTES, spool_directory=tmp_path)
    async with running_gateway(
        configured(gateway_config(sandbox.url), uploads=uploads), sandbox.state
    ) as gateway:
        yield gateway


def content(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def info(size: int = 0, account: str = "corp-app") -> pb.UploadMediaRequest:
    return pb.UploadMediaRequest(
        info=pb.MediaInfo(account=account, type=pb.MEDIA_TYPE_FILE, filename="report.bin", size=size)
    )


def chunks(data: bytes) -> Iterator[pb.UploadMediaRequest]:
    for start in range(0, len(data), CHUNK):
        yield pb.UploadMediaRequest(chunk=data[start : start + CHUNK])


async def test_a_file_larger_than_the_memory_buffer_is_spooled_and_the_file_goes_once_answered(
    spooling: Gateway, tmp_path: Path
) -> None:
    data = content(3 * MB)
    seen_while_streaming: list[str] = []

    async def requests() -> AsyncIterator[pb.UploadMediaRequest]:
        yield info(len(data))
        parts = list(chunks(data))
        for part in parts[:4]:
            yield part
        await wait_until(lambda: open_spool_files(tmp_path), "the upload to be spooled")
        seen_while_streaming.extend(open_spool_files(tmp_path))
        for part in parts[4:]:
            yield part

    uploaded = await spooling.stub.UploadMedia(requests())

    assert len(seen_while_streaming) == 1
    assert open_spool_files(tmp_path) == []
    assert named_files(tmp_path) == [], "a spool file never has a name"
    stored = spooling.sandbox.media("corp-app")[uploaded.media_id]
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert (uploaded.size, uploaded.sha256) == (len(data), hashlib.sha256(data).hexdigest())


async def test_a_retried_vendor_call_sends_the_whole_spooled_file_again(
    spooling: Gateway, tmp_path: Path
) -> None:
    data = content(2 * MB)
    spooling.sandbox.inject_fault("wecom_app", "corp-app", errcode=-1, path="/cgi-bin/media/upload")

    async def requests() -> AsyncIterator[pb.UploadMediaRequest]:
        yield info(len(data))
        for part in chunks(data):
            yield part

    uploaded = await spooling.stub.UploadMedia(requests())

    attempts = [e for e in spooling.sandbox.received("wecom_app", "corp-app") if e.msgtype == "upload"]
    assert [e.errcode for e in attempts] == [-1, 0]
    stored = spooling.sandbox.media("corp-app")[uploaded.media_id]
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert open_spool_files(tmp_path) == []


async def test_an_upload_refused_while_it_streams_removes_its_spool_file(
    spooling: Gateway, tmp_path: Path
) -> None:
    seen_while_streaming: list[str] = []

    def requests() -> Iterator[pb.UploadMediaRequest]:
        yield info()  # no declared size: refused when the 20 MB limit is passed
        for number in range(24):
            if number == 8:
                seen_while_streaming.extend(open_spool_files(tmp_path))
            yield pb.UploadMediaRequest(chunk=b"\x00" * MB)

    # The sync client: grpc.aio's may report INTERNAL when the server ends a client stream early
    # (grpc/grpc#36066); the sync client reports what the server said.
    def upload() -> grpc.RpcError:
        with grpc.insecure_channel(spooling.server.address) as channel:
            try:
                pb_grpc.NotificationServiceStub(channel).UploadMedia(requests())
            except grpc.RpcError as error:
                return error
        raise AssertionError("a 24 MB file was accepted")

    error = rich_error(await asyncio.to_thread(upload))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "20 MB" in error.violations["chunk"]
    assert len(seen_while_streaming) == 1
    await wait_until(lambda: not open_spool_files(tmp_path), "the spool file to be removed")


async def test_an_upload_the_vendor_refuses_removes_its_spool_file(spooling: Gateway, tmp_path: Path) -> None:
    data = content(MB)
    spooling.sandbox.inject_fault(
        "wecom_app", "corp-app", errcode=45001, errmsg="media size out of limit", path="/cgi-bin/media/upload"
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await spooling.stub.UploadMedia(_stream([info(len(data)), *chunks(data)]))

    assert rich_error(caught.value).code == grpc.StatusCode.INVALID_ARGUMENT
    assert open_spool_files(tmp_path) == []


async def test_a_cancelled_upload_removes_its_spool_file(spooling: Gateway, tmp_path: Path) -> None:
    never = asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadMediaRequest]:
        yield info()
        for part in chunks(content(MB)):
            yield part
        await never.wait()  # the caller goes away before finishing the file

    call = spooling.stub.UploadMedia(requests())
    await wait_until(lambda: open_spool_files(tmp_path), "the upload to be spooled")

    call.cancel()

    await wait_until(lambda: not open_spool_files(tmp_path), "the spool file to be removed")
    assert spooling.sandbox.media("corp-app") == {}


async def _stream(parts: list[pb.UploadMediaRequest]) -> AsyncIterator[pb.UploadMediaRequest]:
    for part in parts:
        yield part
