"""Uploaded media by content: the same bytes to the same account are uploaded once per validity.

Keyed by (tenant, account, media type, content key): the sha256 of the bytes, and for files also
of the name, since recipients see the name the file was uploaded with. Tenants sharing an account
never share entries: a hit would tell one tenant what another sent (and hand over its media_id).
An entry lives until shortly
before the vendor forgets the media_id (WeCom: 3 days), so a cached id is never one the vendor
has already dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Protocol
from urllib.parse import quote

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.redis_connection import KeySpace, store_unavailable, traced

EXPIRY_MARGIN = 3600.0  # stop reusing a media_id an hour before the vendor drops it
NO_EXPIRY_TTL = 30 * 86400.0  # DingTalk media never expire; still, forget entries after 30 days


@dataclass(frozen=True, slots=True)
class CachedMedia:
    media_id: str
    size: int
    expires_at: float | None  # unix seconds; None when the vendor never expires it


class MediaCache(Protocol):
    async def get(
        self, tenant: str, account: str, media_type: int, content_key: str
    ) -> CachedMedia | None: ...

    async def put(
        self, tenant: str, account: str, media_type: int, content_key: str, media: CachedMedia
    ) -> None: ...


def _keep_for(media: CachedMedia) -> float:
    if media.expires_at is None:
        return NO_EXPIRY_TTL
    return media.expires_at - EXPIRY_MARGIN - time.time()


class MemoryMediaCache:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, int, str], tuple[float, CachedMedia]] = {}

    async def get(self, tenant: str, account: str, media_type: int, content_key: str) -> CachedMedia | None:
        entry = self._entries.get((tenant, account, media_type, content_key))
        if entry is None or entry[0] < time.time():
            return None
        return entry[1]

    async def put(
        self, tenant: str, account: str, media_type: int, content_key: str, media: CachedMedia
    ) -> None:
        keep = _keep_for(media)
        if keep > 0:
            self._entries[(tenant, account, media_type, content_key)] = (time.time() + keep, media)


class RedisMediaCache:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._keys = KeySpace(namespace)

    def _key(self, tenant: str, account: str, media_type: int, content_key: str) -> str:
        # Quoted: a ":" in a tenant's name cannot make its keys run into another tenant's.
        return self._keys.key(account, f"media:{quote(tenant, safe='')}:{media_type}:{content_key}")

    @traced("GET")
    async def get(self, tenant: str, account: str, media_type: int, content_key: str) -> CachedMedia | None:
        try:
            raw = await self._client.get(self._key(tenant, account, media_type, content_key))
        except RedisError as exc:
            raise store_unavailable("media cache", exc) from None
        return None if raw is None else CachedMedia(**json.loads(raw))

    @traced("SET")
    async def put(
        self, tenant: str, account: str, media_type: int, content_key: str, media: CachedMedia
    ) -> None:
        keep = _keep_for(media)
        if keep <= 0:
            return
        try:
            await self._client.set(
                self._key(tenant, account, media_type, content_key),
                json.dumps(asdict(media)),
                px=int(keep * 1000),
            )
        except RedisError as exc:
            raise store_unavailable("media cache", exc) from None
