"""Hands the prepared payload to the account's adapter and answers the Send."""

from __future__ import annotations

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from generated.notify.v1 import notification_service_pb2 as pb


async def deliver(ctx: CallContext[pb.SendRequest], call_next: Next) -> pb.SendResponse:
    adapter = ctx.require_adapter()
    if ctx.outgoing is None:
        raise RuntimeError("send chain: deliver needs check_message before it")
    delivery = await adapter.deliver(ctx.outgoing, deadline=ctx.deadline)
    return pb.SendResponse(
        message_id=ctx.message_id,
        state=delivery.state,
        vendor_message_id=delivery.vendor_message_id,
        rejected_recipients=[
            pb.RejectedRecipient(kind=r.kind, id=r.id, reason=r.reason) for r in delivery.rejected
        ],
        recallable=adapter.recallable and bool(delivery.vendor_message_id),
    )
