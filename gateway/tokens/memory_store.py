"""Tokens in this process only: the default when no Redis is configured (one replica)."""

from __future__ import annotations

import logging
import time

from gateway.tokens.store import StoredToken

log = logging.getLogger("gateway.tokens")


class MemoryTokenStore:
    shared = False

    def __init__(self) -> None:
        self._tokens: dict[str, StoredToken] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._warned = False

    async def get(self, account: str) -> StoredToken | None:
        token = self._tokens.get(account)
        if token is not None and token.expires_at <= time.time():
            del self._tokens[account]
            return None
        return token

    async def put(self, account: str, token: StoredToken) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "token store is memory://: access tokens are not shared across replicas; "
                "configure token_store: redis://... when running more than one"
            )
        self._tokens[account] = token

    async def delete_if(self, account: str, token: str) -> bool:
        current = self._tokens.get(account)
        if current is not None and current.token == token:
            del self._tokens[account]
            return True
        return False

    async def try_lock(self, account: str, owner: str, ttl: float) -> bool:
        held = self._locks.get(account)
        if held is not None and held[1] > time.monotonic():
            return False
        self._locks[account] = (owner, time.monotonic() + ttl)
        return True

    async def unlock(self, account: str, owner: str) -> None:
        held = self._locks.get(account)
        if held is not None and held[0] == owner:
            del self._locks[account]

    async def locked(self, account: str) -> bool:
        held = self._locks.get(account)
        return held is not None and held[1] > time.monotonic()

    async def close(self) -> None:
        return None
