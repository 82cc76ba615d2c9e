"""Finds the record a request names by message_id, within the caller's tenant.

Shared by Recall, GetMessage and WatchMessage: a message of another tenant is NOT_FOUND, exactly
as one that does not exist, so an id tells nobody outside the tenant anything.
"""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import InvalidArgument, NotFound, Violation
from gateway.lifecycle.ledger import Ledger


async def validate_message_id(ctx: CallContext[Any], call_next: Next) -> Any:
    if not ctx.request.message_id:
        raise InvalidArgument([Violation("message_id", "is required: the message_id Send returned")])
    ctx.message_id = ctx.request.message_id
    ctx.annotate("notify.message_id", ctx.message_id)
    return await call_next()


def find_message(ledger: Ledger) -> Step:
    async def find_message(ctx: CallContext[Any], call_next: Next) -> Any:
        stored = await ledger.get(ctx.message_id)
        if stored is None or stored.record.tenant != ctx.tenant:
            raise NotFound(f"no message {ctx.message_id!r}", reason="MESSAGE_NOT_FOUND")
        ctx.record = stored
        ctx.account_id = stored.record.account
        ctx.annotate("notify.account", ctx.account_id)
        return await call_next()

    return find_message
