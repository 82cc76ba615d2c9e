"""Uploads cost the gateway a bounded amount of memory, refused or accepted, one or twenty at once.

The gateway runs as a child process, as operators run it, so its resident set (VmRSS in
/proc/<pid>/status) is what an orchestrator would see. The figures are printed and written to
.pytest_cache/upload_memory.md so they can be quoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from gateway.sandbox import SandboxServer
from gateway.tenants import hash_key
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc
from tests.conftest import WECOM_AGENT_ID, WECOM_CORP_ID
from tests.gateway_process import REPO, free_port, gateway_process
from tests.rich_status import rich_error

MB = 1024 * 1024
API_KEY = "memory-test-key-5d1c"
METADATA = (("authorization", f"Bearer {API_KEY}"),)
REFUSED_UPLOADS = 100  # each 22 MB, over WeCom's 20 MB for files: refused while it streams
REFUSED_AT_ONCE = 10
ACCEPTED_UPLOADS = 20  # each 19 MB, all at once
REFUSED_GROWTH_BOUND_MB = 100  # resident growth left after the refused uploads and an idle second
PEAK_GROWTH_BOUND_MB = 200  # resident growth at the peak of the concurrent uploads (20 x 19 MB = 380 MB)
FIGURES = REPO / ".pytest_cache" / "upload_memory.md"
ONE_MB = b"\x00" * MB  # every chunk is the same object: the test itself allocates next to nothing


def config_file(directory: Path, sandbox_url: str, port: int) -> Path:
    """One WeCom application (files up to 20 MB) and one tenant; upload settings are the defaults."""
    path = directory / "gateway.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            server:
              listen: 127.0.0.1:{port}
              grace_period_seconds: 5
              drain_delay_seconds: 0
            tenants:
              - name: memory
                api_keys: ["{hash_key(API_KEY)}"]
                accounts: ["*"]
            accounts:
              corp-app:
                channel: wecom_app
                corp_id: {WECOM_CORP_ID}
                corp_secret: ${{TEST_WECOM_CORP_SECRET}}
                agent_id: {WECOM_AGENT_ID}
                base_url: {sandbox_url}
                timeout_seconds: 30
            """
        ),
        encoding="utf-8",
    )
    return path


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Peak:
    """The highest resident size seen while it was sampling."""

    pid: int
    highest: float = 0.0
    samples: list[float] = field(default_factory=list)

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            rss = resident_mb(self.pid)
            self.samples.append(rss)
            self.highest = max(self.highest, rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.02)


@contextlib.asynccontextmanager
async def sampling(pid: int) -> AsyncIterator[Peak]:
    peak = Peak(pid, resident_mb(pid))
    stop = asyncio.Event()
    task = asyncio.create_task(peak.sample(stop))
    try:
        yield peak
    finally:
        stop.set()
        await task


def file_parts(prefix: bytes, megabytes: int, *, declared: bool) -> Iterator[pb.UploadMediaRequest]:
    """A FILE upload to corp-app: `prefix` (which makes the content unique), then `megabytes` MB."""
    size = len(prefix) + megabytes * MB
    info = pb.MediaInfo(
        account="corp-app", type=pb.MEDIA_TYPE_FILE, filename="big.bin", size=size if declared else 0
    )
    yield pb.UploadMediaRequest(info=info)
    yield pb.UploadMediaRequest(chunk=prefix)
    for _ in range(megabytes):
        yield pb.UploadMediaRequest(chunk=ONE_MB)


def refused_upload(address: str, number: int) -> grpc.StatusCode:
    """22 MB without a declared size, so the gateway refuses it at 20 MB while the client streams.

    The sync client: grpc.aio's may report INTERNAL when the server ends a client stream early
    (grpc/grpc#36066); the sync client reports what the server said.
    """
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.NotificationServiceStub(channel).UploadMedia(
                file_parts(b"refused-%d" % number, 22, declared=False), metadata=METADATA
            )
        except grpc.RpcError as error:
            found = rich_error(error)
            assert "20 MB" in found.violations.get("chunk", ""), found
            return found.code
    raise AssertionError("a 22 MB file was accepted")


async def accepted_upload(stub: pb_grpc.NotificationServiceStub, number: int) -> pb.UploadMediaResponse:
    async def parts() -> AsyncIterator[pb.UploadMediaRequest]:
        for part in file_parts(b"accepted-%d" % number, 19, declared=True):
            yield part

    response: pb.UploadMediaResponse = await stub.UploadMedia(parts(), metadata=METADATA, timeout=60)
    return response


def report(lines: list[str]) -> None:
    text = "\n".join(["# Gateway memory under upload load (VmRSS of the gateway process)", "", *lines, ""])
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(text, encoding="utf-8")
    print("\n" + text)


async def test_refused_and_concurrent_uploads_leave_the_gateway_memory_bounded(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    port = free_port()
    async with gateway_process(config_file(tmp_path, sandbox.url, port), port) as gateway:
        pid = gateway.process.pid
        address = f"127.0.0.1:{port}"
        # Warm up: the token, the vendor session and the first upload's allocations are not growth.
        await accepted_upload(gateway.stub, -1)
        await asyncio.to_thread(refused_upload, address, -1)
        await asyncio.sleep(1.0)
        before = resident_mb(pid)

        started = time.monotonic()
        async with sampling(pid) as refused_peak:
            with ThreadPoolExecutor(REFUSED_AT_ONCE) as pool:
                codes = await asyncio.gather(
                    *(
                        asyncio.get_running_loop().run_in_executor(pool, refused_upload, address, n)
                        for n in range(REFUSED_UPLOADS)
                    )
                )
        refused_seconds = time.monotonic() - started
        assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}
        await asyncio.sleep(1.0)  # idle: whatever the gateway still holds now, it keeps
        after_refused = resident_mb(pid)

        started = time.monotonic()
        async with sampling(pid) as accepted_peak:
            uploaded = await asyncio.gather(
                *(accepted_upload(gateway.stub, n) for n in range(ACCEPTED_UPLOADS))
            )
        accepted_seconds = time.monotonic() - started
        await asyncio.sleep(1.0)
        after_accepted = resident_mb(pid)

        stored = sandbox.state.media("corp-app")
        for n, response in enumerate(uploaded):
            content = b"accepted-%d" % n + ONE_MB * 19
            assert response.reused is False
            assert stored[response.media_id].size == len(content)
            assert stored[response.media_id].sha256 == hashlib.sha256(content).hexdigest()

    report(
        [
            "| phase | RSS before | peak | after (1 s idle) | wall time |",
            "|---|---|---|---|---|",
            f"| {REFUSED_UPLOADS} refused 22 MB uploads, {REFUSED_AT_ONCE} at a time | {before:.0f} MB "
            f"| {refused_peak.highest:.0f} MB | {after_refused:.0f} MB | {refused_seconds:.1f} s |",
            f"| {ACCEPTED_UPLOADS} concurrent 19 MB uploads | {after_refused:.0f} MB "
            f"| {accepted_peak.highest:.0f} MB | {after_accepted:.0f} MB | {accepted_seconds:.1f} s |",
            "",
            f"Bounds asserted: growth after the refused uploads < {REFUSED_GROWTH_BOUND_MB} MB "
            f"(was {after_refused - before:.0f} MB); peak growth during the concurrent uploads "
            f"< {PEAK_GROWTH_BOUND_MB} MB (was {accepted_peak.highest - after_refused:.0f} MB).",
        ]
    )
    assert after_refused - before < REFUSED_GROWTH_BOUND_MB
    assert accepted_peak.highest - after_refused < PEAK_GROWTH_BOUND_MB
