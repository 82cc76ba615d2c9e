"""Access tokens as the app vendors issue them: random, reused while valid, expiring, revocable.

docs/vendors.md, WeCom application messages and DingTalk work notifications: gettoken answers
`{access_token, expires_in: 7200}`, and asking again while the token is valid returns the same
token. Tests break tokens on purpose (expire, revoke) to drive the gateway's "drop the token,
fetch a new one, retry once" path.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import Enum

MIN_REUSE_SECONDS = 1.0
"""A token with less left than this is not handed out again, so `expires_in` is never 0."""


class TokenState(Enum):
    """What a vendor makes of a token it issued."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass
class IssuedToken:
    """One token and whose it is; `value` is a credential and stays out of reprs."""

    value: str = field(repr=False)
    owner: str
    expires_at: float
    revoked: bool = False
    legacy: bool = False
    """DingTalk: answer the revocation in the older form (plain 40014, not errcode 88)."""

    def state(self, now: float) -> TokenState:
        """Revocation wins over expiry: a revoked token is "invalid", not "expired"."""
        if self.revoked:
            return TokenState.REVOKED
        if now >= self.expires_at:
            return TokenState.EXPIRED
        return TokenState.VALID

    def expires_in(self, now: float) -> int:
        """Whole seconds left, as gettoken answers it."""
        return max(0, int(self.expires_at - now))


class TokenBook:
    """Every token issued on one channel, by value, and each app's current one."""

    def __init__(self) -> None:
        self._by_value: dict[str, IssuedToken] = {}
        self._current: dict[str, IssuedToken] = {}

    def issue(self, owner: str, now: float, lifetime: float) -> IssuedToken:
        """The owner's current token while it is valid, else a new one living `lifetime` seconds."""
        current = self._current.get(owner)
        if (
            current is not None
            and current.state(now) is TokenState.VALID
            and current.expires_at - now >= MIN_REUSE_SECONDS
        ):
            return current
        token = IssuedToken(secrets.token_urlsafe(48), owner, now + lifetime)
        self._by_value[token.value] = token
        self._current[owner] = token
        return token

    def current(self, owner: str) -> IssuedToken | None:
        """The token `owner` was last issued and not revoked, whatever its expiry; None if none."""
        return self._current.get(owner)

    def find(self, value: str) -> IssuedToken | None:
        """The token with that value, whatever its state; None if it was never issued."""
        return self._by_value.get(value) if value else None

    def owner_of(self, value: str) -> str | None:
        """The name of the app the token was issued to, for recording and faults."""
        token = self.find(value)
        return token.owner if token is not None else None

    def expire(self, owner: str, now: float) -> None:
        """Every token of `owner` expires at `now`; the next `issue` makes a new one."""
        for token in self._by_value.values():
            if token.owner == owner:
                token.expires_at = min(token.expires_at, now)

    def revoke(self, owner: str, *, legacy: bool = False) -> None:
        """The owner's current token becomes invalid; the next `issue` makes a new one."""
        current = self._current.pop(owner, None)
        if current is not None:
            current.revoked = True
            current.legacy = legacy

    def forget(self, owner: str) -> None:
        """Drop every token of `owner` (the app was replaced): they then answer as unknown."""
        self._current.pop(owner, None)
        self._by_value = {value: t for value, t in self._by_value.items() if t.owner != owner}
