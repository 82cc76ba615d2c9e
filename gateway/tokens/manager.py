"""The single-flight token manager every token-using adapter goes through.

``get`` answers from the in-process hot cache when the token is known valid (no Redis round trip
on the hot path), else from the store, else fetches: one fetch per account across tasks (an
in-process future) and across replicas (the store's lock), so M requests on N replicas with a
cold or expired token cause one gettoken call. Tokens are kept for the vendor's expires_in minus a
safety margin, refreshed in the background before that, and invalidated compare-and-delete when
the vendor rejects them (docs/vendors.md, Access tokens: when to refresh and retry). A token the
vendor says expires at once (``expires_in`` 0 or less) is used by the calls waiting for it and never
kept. Every token in use is registered with the redactor, whichever replica fetched it, since a
vendor may echo it in an errmsg.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry import trace

from gateway.background import cancel_and_wait
from gateway.errors import DeadlineExceeded, GatewayError, Unavailable
from gateway.redaction import register_token
from gateway.telemetry import current_span, token_fetches
from gateway.tokens.store import StoredToken, TokenStore, TokenStoreUnavailable

log = logging.getLogger("gateway.tokens")

#: Fetches a new token from the vendor: (deadline) -> (token, expires_in seconds).
TokenFetcher = Callable[[float | None], Awaitable[tuple[str, float]]]


@dataclass(frozen=True)
class TokenPolicy:
    safety_margin: float = 300.0  # stop using a token this long before the vendor says it expires...
    margin_ratio: float = 0.2  # ...but never more than this share of its lifetime
    refresh_ahead_ratio: float = 0.2  # refresh in the background in the last 20% of the kept lifetime
    lock_ttl: float = 10.0  # a fetch that takes longer than this lets another replica try
    failure_cooldown: float = 5.0  # a failed gettoken is not repeated for this long (no retry storms)


class TokenManager:
    def __init__(self, store: TokenStore, policy: TokenPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or TokenPolicy()
        self._fetchers: dict[str, TokenFetcher] = {}
        self._hot: dict[str, StoredToken] = {}
        self._inflight: dict[str, asyncio.Future[StoredToken]] = {}
        self._failures: dict[str, tuple[float, GatewayError]] = {}
        # The last token the vendor rejected, per account: a load that started before the rejection
        # may still return it from the store, and must not put it back in use.
        self._rejected: dict[str, str] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._owner = uuid.uuid4().hex
        self.fetches = 0  # gettoken calls this process made (for metrics and benchmarks)

    def register(self, account: str, fetcher: TokenFetcher) -> None:
        self._fetchers[account] = fetcher

    async def get(self, account: str, *, deadline: float | None = None) -> str:
        hot = self._hot.get(account)
        if hot is not None and hot.expires_at > time.time():
            return hot.token
        stored = await self._single_flight(account, deadline)
        if stored.token == self._rejected.get(account):
            stored = await self._single_flight(account, deadline)  # joined a load older than the rejection
        self._use(account, stored)
        return stored.token

    def _use(self, account: str, stored: StoredToken) -> None:
        """Makes ``stored`` the account's hot token, if it lives; its value is a secret from now on."""
        register_token(stored.token, stored.expires_at)
        if stored.expires_at > time.time():
            self._hot[account] = stored
        else:
            self._hot.pop(account, None)  # expired at once: the next call fetches again

    async def invalidate(self, account: str, token: str) -> None:
        """Forgets ``token`` after the vendor rejected it; a newer token is left alone."""
        self._rejected[account] = token
        hot = self._hot.get(account)
        if hot is not None and hot.token == token:
            del self._hot[account]
        try:
            deleted = await self.store.delete_if(account, token)
        except TokenStoreUnavailable as exc:
            log.warning("token invalidation not stored", extra={"account": account, "error": str(exc)})
            return
        log.info("token invalidated", extra={"account": account, "deleted": deleted})
        trace.get_current_span().add_event(
            "token.invalidated", {"notify.account": account, "deleted": deleted}
        )

    # -- fetching ---------------------------------------------------------------------------------

    async def _single_flight(self, account: str, deadline: float | None) -> StoredToken:
        future = self._inflight.get(account)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[account] = future
            task = asyncio.create_task(self._load(account, deadline))
            task.add_done_callback(lambda t: self._settle(account, future, t))
        return await asyncio.shield(future)

    def _settle(
        self, account: str, future: asyncio.Future[StoredToken], task: asyncio.Task[StoredToken]
    ) -> None:
        self._inflight.pop(account, None)
        if future.done():
            return
        if task.cancelled():
            future.set_exception(Unavailable(f"token fetch for account {account!r} was cancelled"))
        elif (error := task.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())
        # Nobody may be waiting any more (all callers gave up): mark the exception retrieved.
        if future.exception() is not None:
            future.exception()

    async def _load(self, account: str, deadline: float | None) -> StoredToken:
        """One task per account and process: read the store, and fetch only if it has nothing."""
        try:
            stored = await self.store.get(account)
        except TokenStoreUnavailable as exc:
            raise _store_unavailable(account, exc) from None
        if stored is not None and self._usable(account, stored):
            return stored
        return await self._fetch_shared(account, deadline)

    def _usable(self, account: str, stored: StoredToken) -> bool:
        return stored.token != self._rejected.get(account)

    async def _fetch_shared(self, account: str, deadline: float | None) -> StoredToken:
        failure = self._failures.get(account)
        if failure is not None and failure[0] > time.monotonic():
            raise failure[1]
        try:
            while True:
                if await self.store.try_lock(account, self._owner, self.policy.lock_ttl):
                    try:
                        # Another replica may have written a token between our miss and our lock.
                        stored = await self.store.get(account)
                        if stored is not None and self._usable(account, stored):
                            return stored
                        return await self._fetch(account, deadline)
                    finally:
                        with contextlib.suppress(TokenStoreUnavailable):
                            await self.store.unlock(account, self._owner)
                stored = await self._wait_for_other_replica(account, deadline)
                if stored is not None:
                    return stored
        except TokenStoreUnavailable as exc:
            raise _store_unavailable(account, exc) from None

    async def _fetch(self, account: str, deadline: float | None) -> StoredToken:
        fetcher = self._fetchers.get(account)
        if fetcher is None:
            raise RuntimeError(f"no token fetcher registered for account {account!r}")
        self.fetches += 1
        # A failed fetch is marked ERROR on its vendor span, where it happened; this one says so
        # in an attribute, so one failure is not one ERROR per span it passed through.
        with current_span(
            "token.fetch", attributes={"notify.account": account}, error_on_exception=False
        ) as span:
            try:
                token, expires_in = await fetcher(deadline)
            except BaseException as error:
                if isinstance(error, GatewayError):
                    self._failures[account] = (time.monotonic() + self.policy.failure_cooldown, error)
                token_fetches.add(1, {"notify.account": account, "outcome": "error"})
                span.set_attribute("notify.token.outcome", "error")
                raise
        token_fetches.add(1, {"notify.account": account, "outcome": "ok"})
        now = time.time()
        lifetime = self._lifetime(expires_in)
        register_token(token, now + max(expires_in, 0.0))
        self._failures.pop(account, None)
        self._rejected.pop(account, None)  # the vendor just issued it: usable even if it is the same token
        stored = StoredToken(token, now + lifetime, issued_at=now)
        if lifetime > 0:
            await self.store.put(account, stored)
        log.info("token fetched", extra={"account": account, "expires_in": expires_in, "kept": lifetime})
        return stored

    def _lifetime(self, expires_in: float) -> float:
        """How long the gateway uses a token: 0 (only by the calls waiting now) if it expires at once."""
        if expires_in <= 0:
            return 0.0
        margin = min(self.policy.safety_margin, expires_in * self.policy.margin_ratio)
        return expires_in - margin

    async def _wait_for_other_replica(self, account: str, deadline: float | None) -> StoredToken | None:
        """Polls the store while another replica holds the fetch lock.

        Returns the token it wrote, or None as soon as the lock is gone without a token (its
        fetch failed, or it died): then this replica takes the lock and asks the vendor itself.
        """
        delay = 0.01
        while True:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise DeadlineExceeded(f"waited for another replica's token fetch for account {account!r}")
            await asyncio.sleep(delay)
            stored = await self.store.get(account)
            if stored is not None and self._usable(account, stored):
                return stored
            if not await self.store.locked(account):
                return None
            delay = min(delay * 2, 0.2)

    # -- background refresh -----------------------------------------------------------------------

    def start(self, interval: float = 1.0) -> None:
        if self._refresher is None and self._fetchers:
            self._refresher = asyncio.create_task(self._refresh_loop(interval), name="token-refresher")

    async def close(self) -> None:
        if self._refresher is not None:
            await cancel_and_wait(self._refresher)
            self._refresher = None

    async def _refresh_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for account, hot in list(self._hot.items()):
                try:
                    await self._refresh_if_due(account, hot)
                except Exception as exc:  # a failed refresh leaves the request path to fetch
                    log.warning(
                        "background token refresh failed", extra={"account": account, "error": str(exc)}
                    )

    async def _refresh_if_due(self, account: str, hot: StoredToken) -> None:
        remaining = hot.expires_at - time.time()
        if remaining > (hot.expires_at - hot.issued_at) * self.policy.refresh_ahead_ratio:
            return
        if not await self.store.try_lock(account, self._owner, self.policy.lock_ttl):
            return  # another replica is refreshing
        try:
            stored = await self.store.get(account)
            if stored is not None and stored.token != hot.token and stored.expires_at > hot.expires_at:
                self._use(account, stored)  # another replica refreshed already
                return
            fresh = await self._fetch(account, None)
            self._use(account, fresh)
        finally:
            await self.store.unlock(account, self._owner)


def _store_unavailable(account: str, exc: TokenStoreUnavailable) -> Unavailable:
    """The caller is told the store is down; why (Redis's host and port, the error) goes to the log."""
    log.warning("token store unavailable", extra={"account": account, "error": str(exc)})
    return Unavailable(
        f"cannot get an access token for account {account!r}: the token store (Redis) is unavailable",
        reason="TOKEN_STORE_UNAVAILABLE",
        metadata={"account": account},
    )
