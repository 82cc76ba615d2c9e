"""UploadMedia: the steps that read the stream (info first, then chunks), check it and upload it.

The declared info is checked before any byte is read; while chunks arrive the running size is
checked against the vendor's limit, and the call stops the moment it is exceeded, so the gateway
never holds more than the limit in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import timestamp_pb2

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.channels.deliveries import MediaUpload
from gateway.channels.media_rules import MIN_BYTES, MediaRule
from gateway.errors import FailedPrecondition, InvalidArgument, Violation
from gateway.media import upload_through_cache
from gateway.store.media_cache import MediaCache
from generated.notify.v1 import notification_service_pb2 as pb

Stream = AsyncIterator[pb.UploadMediaRequest]


async def read_media_info(ctx: CallContext[Stream], call_next: Next) -> Any:
    first = await anext(ctx.request, None)
    if first is None:
        raise InvalidArgument([Violation("info", "the stream is empty: send info first, then chunks")])
    if first.WhichOneof("part") != "info":
        raise InvalidArgument([Violation("info", "the first part must be info; chunks come after it")])
    info = first.info
    violations: list[Violation] = []
    if not info.account:
        violations.append(Violation("info.account", "is required: name a configured account"))
    if info.type == pb.MEDIA_TYPE_UNSPECIFIED:
        violations.append(Violation("info.type", "is required: IMAGE, VOICE, VIDEO or FILE"))
    if violations:
        raise InvalidArgument(violations)
    ctx.attributes["info"] = info
    ctx.account_id = info.account
    return await call_next()


async def check_media_info(ctx: CallContext[Stream], call_next: Next) -> Any:
    adapter = ctx.require_adapter()
    info: pb.MediaInfo = ctx.attributes["info"]
    rule = adapter.media.get(info.type)
    if rule is None:
        takes = (
            ", ".join(pb.MediaType.Name(t).removeprefix("MEDIA_TYPE_") for t in sorted(adapter.media))
            or "nothing"
        )
        raise FailedPrecondition(
            f"channel {adapter.channel} (account {adapter.account_id!r}) cannot upload "
            f"{pb.MediaType.Name(info.type).removeprefix('MEDIA_TYPE_')}; it takes: {takes}",
            reason="MEDIA_TYPE_UNSUPPORTED",
            metadata={"channel": adapter.channel},
        )
    violations = rule.check_info(info.filename, info.content_type, info.size)
    if violations:
        raise InvalidArgument(violations)
    ctx.attributes["rule"] = rule
    return await call_next()


async def receive_media(ctx: CallContext[Stream], call_next: Next) -> Any:
    info: pb.MediaInfo = ctx.attributes["info"]
    rule: MediaRule = ctx.attributes["rule"]
    data = bytearray()
    async for part in ctx.request:
        if part.WhichOneof("part") != "chunk":
            raise InvalidArgument([Violation("info", "info comes once, as the first part")])
        if len(data) + len(part.chunk) > rule.max_bytes:
            # Stop reading here: the rest of the stream is never buffered.
            raise InvalidArgument([Violation("chunk", rule.too_large(rule.max_bytes))])
        data += part.chunk
    if len(data) < MIN_BYTES:
        raise InvalidArgument(
            [Violation("chunk", f"the file is {len(data)} bytes; it must be larger than 5 bytes")]
        )
    if info.size and info.size != len(data):
        raise InvalidArgument([Violation("info.size", f"declared {info.size} bytes but {len(data)} arrived")])
    ctx.attributes["media"] = MediaUpload(info.type, info.filename, info.content_type, bytes(data))
    return await call_next()


def upload_media(cache: MediaCache) -> Step:
    async def upload_media(ctx: CallContext[Stream], call_next: Next) -> pb.UploadMediaResponse:
        media: MediaUpload = ctx.attributes["media"]
        uploaded, sha256, reused = await upload_through_cache(
            cache, ctx.require_adapter(), media, deadline=ctx.deadline
        )
        response = pb.UploadMediaResponse(
            media_id=uploaded.media_id,
            type=media.type,
            size=len(media.data),
            sha256=sha256,
            reused=reused,
        )
        if uploaded.expires_at is not None:
            expires = timestamp_pb2.Timestamp()
            expires.FromNanoseconds(int(uploaded.expires_at * 1e9))
            response.expires_at.CopyFrom(expires)
        return response

    return upload_media
