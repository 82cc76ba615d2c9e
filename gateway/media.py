"""Uploads through the content-hash cache: shared by UploadMedia and by Sends with image bytes.

The cache is per tenant: on an account several tenants share, a hit for another tenant's bytes would
tell the caller what that tenant sent.
"""

from __future__ import annotations

import hashlib
import logging

from gateway.channels.base import ChannelAdapter
from gateway.channels.deliveries import MediaUpload, UploadedMedia
from gateway.errors import Unavailable
from gateway.store.media_cache import CachedMedia, MediaCache
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.media")


async def upload_through_cache(
    cache: MediaCache, adapter: ChannelAdapter, media: MediaUpload, *, tenant: str, deadline: float | None
) -> tuple[UploadedMedia, str, bool]:
    """Returns (media, sha256 hex, reused); a cache that is down costs an upload, not the call."""
    sha256 = media.sha256
    key = _cache_key(media, sha256)
    try:
        cached = await cache.get(tenant, adapter.account_id, media.type, key)
    except Unavailable as exc:
        log.warning(
            "media cache unavailable; uploading", extra={"account": adapter.account_id, "error": exc.message}
        )
        cached = None
    if cached is not None:
        return UploadedMedia(cached.media_id, cached.expires_at), sha256, True
    uploaded = await adapter.upload(media, deadline=deadline)
    try:
        await cache.put(
            tenant,
            adapter.account_id,
            media.type,
            key,
            CachedMedia(uploaded.media_id, media.size, uploaded.expires_at),
        )
    except Unavailable as exc:
        log.warning(
            "media cache unavailable; not cached", extra={"account": adapter.account_id, "error": exc.message}
        )
    return uploaded, sha256, False


def _cache_key(media: MediaUpload, sha256: str) -> str:
    """The content hash; for files also the name, because recipients see the uploaded file's name."""
    if media.type == pb.MEDIA_TYPE_FILE:
        return f"{sha256}:{hashlib.sha256(media.filename.encode()).hexdigest()[:16]}"
    return sha256
