"""UploadMedia: the steps that read the stream (info first, then chunks), check it and upload it.

The declared info is checked before any byte is read; while chunks arrive the running size is
checked against the vendor's limit, and the call stops the moment it is exceeded. The bytes go to
a spool: at most ``uploads.memory_bytes`` in memory, the rest in an unnamed temporary file, both
released when the call ends, however it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.channels.deliveries import MediaUpload
from gateway.channels.media_rules import MIN_BYTES, MediaRule
from gateway.errors import FailedPrecondition, InvalidArgument, Violation
from gateway.media import upload_through_cache
from gateway.spool import Spool
from gateway.store.media_cache import MediaCache
from generated.notify.v1 import notification_service_pb2 as pb

Stream = AsyncIterator[pb.UploadMediaRequest]
_KNOWN_TYPES = frozenset(pb.MediaType.values()) - {pb.MEDIA_TYPE_UNSPECIFIED}
# Control characters (TAB aside) in a name or type would break the vendor's multipart header.
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t"}


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
    elif info.type not in _KNOWN_TYPES:
        violations.append(
            Violation("info.type", f"{info.type} is not a media type: IMAGE, VOICE, VIDEO or FILE")
        )
    for name, value in (("info.filename", info.filename), ("info.content_type", info.content_type)):
        if not _CONTROL.isdisjoint(value):
            violations.append(
                Violation(name, "must not contain control characters (CR, LF, NUL...): it goes in a header")
            )
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


def receive_media(memory_bytes: int, spool_directory: Path | None) -> Step:
    async def receive_media(ctx: CallContext[Stream], call_next: Next) -> Any:
        info: pb.MediaInfo = ctx.attributes["info"]
        rule: MediaRule = ctx.attributes["rule"]
        spool = Spool(memory_bytes, spool_directory)
        try:
            async for part in ctx.request:
                if part.WhichOneof("part") != "chunk":
                    raise InvalidArgument([Violation("info", "info comes once, as the first part")])
                chunk = part.chunk
                if spool.size + len(chunk) > rule.max_bytes:
                    # Stop reading here: the rest of the stream is never received.
                    raise InvalidArgument([Violation("chunk", rule.too_large(rule.max_bytes))])
                await spool.write(chunk)
            if spool.size < MIN_BYTES:
                raise InvalidArgument(
                    [Violation("chunk", f"the file is {spool.size} bytes; it must be larger than 5 bytes")]
                )
            if info.size and info.size != spool.size:
                raise InvalidArgument(
                    [Violation("info.size", f"declared {info.size} bytes but {spool.size} arrived")]
                )
            ctx.attributes["media"] = MediaUpload(info.type, info.filename, info.content_type, spool)
            return await call_next()
        finally:
            # An answer, a refusal, a vendor error or the caller going away: the bytes go now.
            ctx.attributes.pop("media", None)
            spool.close()

    return receive_media


def upload_media(cache: MediaCache) -> Step:
    async def upload_media(ctx: CallContext[Stream], call_next: Next) -> pb.UploadMediaResponse:
        media: MediaUpload = ctx.attributes["media"]
        uploaded, sha256, reused = await upload_through_cache(
            cache, ctx.require_adapter(), media, tenant=ctx.tenant, deadline=ctx.deadline
        )
        response = pb.UploadMediaResponse(
            media_id=uploaded.media_id,
            type=media.type,
            size=media.size,
            sha256=sha256,
            reused=reused,
        )
        if uploaded.expires_at is not None:
            expires = timestamp_pb2.Timestamp()
            expires.FromNanoseconds(int(uploaded.expires_at * 1e9))
            response.expires_at.CopyFrom(expires)
        return response

    return upload_media
