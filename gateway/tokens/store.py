"""Where access tokens are kept between calls and replicas: the protocol every store meets.

A store holds, per account, the current token with its expiry, and a short lock that makes the
fetch of a new token single-flight across replicas. Deletion is compare-and-delete, so a replica
that saw a token fail never throws away the fresh one another replica has just written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredToken:
    token: str
    expires_at: float  # unix seconds after which the gateway stops using it
    issued_at: float = 0.0  # unix seconds when it was fetched; with expires_at, its kept lifetime


class TokenStoreUnavailable(Exception):
    """The store could not be reached (Redis down); callers decide whether a cached token will do."""


class TokenStore(Protocol):
    shared: bool  # whether other replicas see what this store holds

    async def get(self, account: str) -> StoredToken | None: ...

    async def put(self, account: str, token: StoredToken) -> None: ...

    async def delete_if(self, account: str, token: str) -> bool:
        """Deletes the account's token only if it is still ``token``; True if it did."""
        ...

    async def try_lock(self, account: str, owner: str, ttl: float) -> bool:
        """Takes the account's fetch lock for ttl seconds unless someone holds it."""
        ...

    async def unlock(self, account: str, owner: str) -> None:
        """Releases the lock only if ``owner`` still holds it."""
        ...

    async def locked(self, account: str) -> bool:
        """Whether someone holds the account's fetch lock now."""
        ...

    async def close(self) -> None: ...
