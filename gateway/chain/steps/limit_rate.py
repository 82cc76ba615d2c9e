"""Keeps each account under its vendor's rate limit and each tenant under its quota, across replicas.

The DingTalk robot throttles itself for 10 minutes when it sees a 21st message in a minute, so
the gateway admits at most the vendor's limit and refuses the rest with RetryInfo, or waits for
a slot when the caller allows it and the deadline leaves time for the delivery after the wait.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import ResourceExhausted
from gateway.store.rate_limits import Admission, RateLimit, RateLimiter
from gateway.telemetry import rate_limit_refusals
from gateway.tenants import current_tenant
from generated.notify.v1 import notification_service_pb2 as pb

DELIVERY_ALLOWANCE = 1.0  # seconds a delivery needs after a wait, within the caller's deadline


def tenant_quota() -> tuple[str, RateLimit, str] | None:
    """The calling tenant's quota, if it has one: its scope, limit and name for messages."""
    tenant = current_tenant.get()
    if tenant is None or not tenant.sends_per_minute:
        return None
    return _quota(tenant.name, tenant.sends_per_minute)


@functools.lru_cache(maxsize=1024)
def _quota(name: str, per_minute: int) -> tuple[str, RateLimit, str]:
    """Built once per tenant, not on each of the three steps of every Send that ask for it."""
    return f"tenant:{name}", RateLimit(per_minute, 60.0), f"tenant {name!r}"


def limit_rate(limiter: RateLimiter) -> Step:
    async def limit_rate(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        adapter = ctx.require_adapter()
        # The tenant's quota first: a call its own quota refuses must not use up a shared robot's slot.
        quota = tenant_quota()
        limits: list[tuple[str, RateLimit, str]] = [quota] if quota is not None else []
        if adapter.rate_limit is not None:
            account = (f"account:{ctx.account_id}", adapter.rate_limit, f"account {ctx.account_id!r}")
            # Asked already with the record's admission: first, so a refusal by the tenant's quota
            # gives its slot back.
            if ctx.rate_admission is not None:
                limits.insert(0, account)
            else:
                limits.append(account)
        taken: list[tuple[str, str]] = []
        try:
            for scope, rate, who in limits:
                first = ctx.rate_admission if scope.startswith("account:") else None
                taken.append((scope, await admit(limiter, scope, rate, who, ctx, first=first)))
        except ResourceExhausted:
            for scope, ticket in taken:  # refused by a later limit: give the earlier slots back
                await limiter.release(scope, ticket)
            raise
        return await call_next()

    return limit_rate


async def admit(
    limiter: RateLimiter,
    scope: str,
    rate: RateLimit,
    who: str,
    ctx: CallContext[pb.SendRequest],
    *,
    first: Admission | None = None,
) -> str:
    """A slot of ``rate`` (``first``: the answer already had), waiting for one if the caller allows."""
    may_wait = ctx.request.options.wait_for_rate_limit
    while True:
        admission = first if first is not None else await limiter.acquire(scope, rate)
        first = None
        if admission.wait <= 0:
            return admission.ticket
        wait = admission.wait
        fits = ctx.deadline is None or time.monotonic() + wait + DELIVERY_ALLOWANCE < ctx.deadline
        if not (may_wait and fits):
            kind = scope.split(":", 1)[0]
            rate_limit_refusals.add(1, {"notify.rate_limit.scope": kind, "notify.account": ctx.account_id})
            raise ResourceExhausted(
                f"{who} is over its rate limit of {rate.limit} per {rate.window_seconds:g} s; "
                f"retry in {wait:.1f} s",
                retry_after=wait,
                reason="RATE_LIMITED",
                metadata={"scope": kind, "limit": str(rate.limit)},
            )
        await asyncio.sleep(wait)
