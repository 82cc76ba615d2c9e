"""Finds the adapter of the account a request acts on (``ctx.account_id``); unknown is NOT_FOUND."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.channels.base import ChannelAdapter
from gateway.errors import NotFound


def resolve_account(accounts: Mapping[str, ChannelAdapter]) -> Step:
    async def resolve_account(ctx: CallContext[Any], call_next: Next) -> Any:
        account_id = ctx.account_id
        ctx.annotate("notify.account", account_id)
        adapter = accounts.get(account_id)
        if adapter is None:
            raise NotFound(
                f"account {account_id!r} is not configured",
                reason="ACCOUNT_NOT_FOUND",
                metadata={"account": account_id},
            )
        ctx.adapter = adapter
        ctx.annotate("notify.channel", adapter.channel)
        return await call_next()

    return resolve_account
