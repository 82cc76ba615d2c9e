"""Uploads raw bytes a message carries (an image to an application channel) and fills in the media_id."""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.media import upload_through_cache
from gateway.store.media_cache import MediaCache


def upload_inline_media(cache: MediaCache) -> Step:
    async def upload_inline_media(ctx: CallContext[Any], call_next: Next) -> Any:
        outgoing = ctx.outgoing
        if outgoing is not None and outgoing.pending_media is not None:
            media, slot = outgoing.pending_media
            uploaded, _, _ = await upload_through_cache(
                cache, ctx.require_adapter(), media, tenant=ctx.tenant, deadline=ctx.deadline
            )
            slot["media_id"] = uploaded.media_id
            outgoing.pending_media = None
        return await call_next()

    return upload_inline_media
