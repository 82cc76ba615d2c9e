"""Access tokens shared by the adapters: the store protocol, its Redis and memory stores, the manager."""

from __future__ import annotations

from gateway.tokens.manager import TokenFetcher, TokenManager, TokenPolicy
from gateway.tokens.memory_store import MemoryTokenStore
from gateway.tokens.redis_store import RedisTokenStore
from gateway.tokens.store import StoredToken, TokenStore, TokenStoreUnavailable

__all__ = [
    "MemoryTokenStore",
    "RedisTokenStore",
    "StoredToken",
    "TokenFetcher",
    "TokenManager",
    "TokenPolicy",
    "TokenStore",
    "TokenStoreUnavailable",
]
