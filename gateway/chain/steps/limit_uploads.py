"""What one upload may cost a replica: a slot among ``uploads.max_concurrent``, and bounded time.

A stream holds a connection, buffers and a spool file for as long as the caller keeps it open, so
a caller that streams slowly or stops mid-way is ended (``idle_timeout_seconds`` without a part,
``max_seconds`` for the whole stream), and past the cap a new upload is refused at once with
RetryInfo rather than queued: a queued stream would hold all of that while it waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import DeadlineExceeded, ResourceExhausted
from gateway.memory_trim import MemoryTrimmer
from generated.notify.v1 import notification_service_pb2 as pb

Stream = AsyncIterator[pb.UploadMediaRequest]
RETRY_AFTER = 1.0  # seconds: most uploads take about that, so a slot is likely free by then


def limit_upload_time(idle_seconds: float, max_seconds: float) -> Step:
    """Makes the stream end the call when a part is late; every later step reads through it."""

    async def limit_upload_time(ctx: CallContext[Stream], call_next: Next) -> Any:
        stream = _timed(ctx.request, idle_seconds, max_seconds)
        ctx.request = stream
        try:
            return await call_next()
        finally:
            # Closed now, with grpc's request iterator inside it, not by a finalizer at some garbage
            # collection: until then they would hold the call's state and its buffers.
            await stream.aclose()

    return limit_upload_time


async def _timed(
    stream: Stream, idle_seconds: float, max_seconds: float
) -> AsyncGenerator[pb.UploadMediaRequest]:
    ends = time.monotonic() + max_seconds
    parts = aiter(stream)
    try:
        while True:
            left = ends - time.monotonic()
            idle = idle_seconds < left
            try:
                async with asyncio.timeout(min(idle_seconds, max(left, 0.0))):
                    part = await anext(parts)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if idle:
                    raise DeadlineExceeded(
                        f"no part of the upload arrived for {idle_seconds:g} s "
                        "(uploads.idle_timeout_seconds): the upload was dropped; stream it without pauses",
                        reason="UPLOAD_IDLE",
                    ) from None
                raise DeadlineExceeded(
                    f"the upload did not arrive within {max_seconds:g} s (uploads.max_seconds): "
                    "the upload was dropped",
                    reason="UPLOAD_TOO_SLOW",
                ) from None
            yield part
    finally:
        if isinstance(parts, AsyncGenerator):
            await parts.aclose()


class UploadSlots:
    """The uploads in flight on this replica, up to a cap; no waiting, so no queue to bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self) -> None:
        if self.in_use >= self.limit:
            raise ResourceExhausted(
                f"this gateway is receiving {self.limit} uploads already (uploads.max_concurrent); "
                f"retry in {RETRY_AFTER:g} s",
                retry_after=RETRY_AFTER,
                reason="UPLOADS_AT_CAPACITY",
                metadata={"max_concurrent": str(self.limit)},
            )
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1


def limit_concurrent_uploads(slots: UploadSlots, trimmer: MemoryTrimmer) -> Step:
    async def limit_concurrent_uploads(ctx: CallContext[Stream], call_next: Next) -> Any:
        slots.take()
        try:
            return await call_next()
        finally:
            slots.give_back()
            trimmer.upload_ended()  # what its buffers took goes back to the system, not just to malloc

    return limit_concurrent_uploads
