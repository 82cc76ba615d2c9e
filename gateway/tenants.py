"""Who is calling: tenants, their API keys (kept only as sha256 hashes) and the accounts they may use.

The key a caller presents is hashed and compared with every configured hash in constant time,
so neither the keys nor the timing of a comparison tell an attacker anything. The tenant found
travels with the call in a context variable that the servicer reads.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ALL_ACCOUNTS = "*"

#: How callers authenticate: ``api_keys`` (the default: a tenant's key on every call) or ``none``
#: (nobody authenticates: development only). Open must be chosen, so that forgetting ``tenants``
#: can never serve everyone.
AuthMode = Literal["api_keys", "none"]


@dataclass(frozen=True)
class Tenant:
    name: str
    key_hashes: tuple[bytes, ...]  # raw sha256 digests
    accounts: frozenset[str]  # account ids, or {"*"}
    sends_per_minute: int | None = None

    def may_use(self, account: str) -> bool:
        return ALL_ACCOUNTS in self.accounts or account in self.accounts


def hash_key(api_key: str) -> str:
    """The form a key is stored in config: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()


def parse_key_hash(value: str) -> bytes:
    hex_digest = value.removeprefix("sha256:")
    if len(hex_digest) != 64:
        raise ValueError("an API key hash is sha256:<64 hex digits> (notify-gateway hash-key makes one)")
    return bytes.fromhex(hex_digest)


class Tenants:
    def __init__(self, tenants: Iterable[Tenant], *, auth: AuthMode = "api_keys") -> None:
        self.all = tuple(tenants)
        self.auth = auth
        self._candidates = [(digest, tenant) for tenant in self.all for digest in tenant.key_hashes]

    @property
    def enabled(self) -> bool:
        """Whether every call must authenticate: open only when asked (``auth: none``) and no tenant exists.

        Config validation never lets the two disagree; if a Config built in code does anyway, the
        gateway fails closed: tenants always authenticate, and no tenant without ``none`` admits no one.
        """
        return self.auth != "none" or bool(self.all)

    def authenticate(self, api_key: str) -> Tenant | None:
        digest = hashlib.sha256(api_key.encode()).digest()
        found: Tenant | None = None
        for candidate, tenant in self._candidates:  # no early exit: every call costs the same
            if hmac.compare_digest(digest, candidate):
                found = tenant
        return found


#: The tenant of the call being served (None when the gateway runs open: `auth: none`).
current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("current_tenant", default=None)
