"""Gives every Send the gateway's own id before anything else can fail, so logs and errors carry it.

The id carries its account's slot tag (gateway.ids), so the record shares a Redis hash slot with
the account's queue and idempotency keys.
"""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from gateway.ids import new_message_id


async def assign_message_id(ctx: CallContext[Any], call_next: Next) -> Any:
    ctx.message_id = new_message_id(getattr(ctx.request, "account", ""))
    ctx.annotate("notify.message_id", ctx.message_id)
    return await call_next()
