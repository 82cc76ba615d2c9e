"""Turns the message into the channel's vendor JSON before any vendor call.

A kind the channel does not deliver is FAILED_PRECONDITION naming the kinds it does; a message
that breaks the vendor's limits is INVALID_ARGUMENT with every field violation at once.
"""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from generated.notify.v1 import notification_service_pb2 as pb


async def check_message(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
    adapter = ctx.require_adapter()
    kind = ctx.request.message.WhichOneof("kind") or ""
    if kind not in adapter.kinds:
        raise adapter.unsupported(kind)
    ctx.outgoing = adapter.prepare(ctx.request, ctx.message_id)
    return await call_next()
