"""The upload stream is read only up to the vendor's limit: the step stops pulling right there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.chain.context import CallContext
from gateway.chain.steps.upload_media import receive_media
from gateway.channels.media_rules import MB, MediaRule
from gateway.errors import InvalidArgument
from generated.notify.v1 import notification_service_pb2 as pb


async def test_receive_stops_pulling_chunks_once_the_limit_is_exceeded() -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[pb.UploadMediaRequest]:
        nonlocal pulled
        for _ in range(25):
            pulled += 1
            yield pb.UploadMediaRequest(chunk=b"\0" * MB)

    ctx: CallContext[AsyncIterator[pb.UploadMediaRequest]] = CallContext("upload", chunks())
    ctx.attributes["info"] = pb.MediaInfo(account="a", type=pb.MEDIA_TYPE_FILE, filename="big.zip")
    ctx.attributes["rule"] = MediaRule(20 * MB, frozenset(), "test files")

    async def unreachable() -> None:
        raise AssertionError("an oversized file must not reach the upload")

    with pytest.raises(InvalidArgument) as caught:
        await receive_media(memory_bytes=256 * 1024, spool_directory=None)(ctx, unreachable)

    assert pulled == 21  # 20 MB fit; the 21st chunk crosses the limit and nothing after it is read
    assert "20 MB" in caught.value.violations[0].description
