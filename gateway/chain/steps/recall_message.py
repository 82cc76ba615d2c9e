"""Recall: withdraws a sent message at the vendor, by the gateway's message_id.

Recall answers by the record (found by ``find_message``): a robot message cannot be recalled,
past the vendors' 24-hour window is FAILED_PRECONDITION, a message that was never sent (FAILED,
UNKNOWN) has nothing to withdraw, and a second Recall answers RECALLED without a vendor call.
"""

from __future__ import annotations

import contextlib
import time

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import FailedPrecondition
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.states import DELIVERED, RECALLED, SENT, IllegalTransition, advance, state_name
from generated.notify.v1 import notification_service_pb2 as pb

RECALL_WINDOW = 24 * 3600.0  # both vendors: only within 24 hours of sending


def recall_message(ledger: Ledger) -> Step:
    async def recall_message(ctx: CallContext[pb.RecallRequest], call_next: Next) -> pb.RecallResponse:
        stored = ctx.require_record()
        record = stored.record
        adapter = ctx.require_adapter()
        if record.state == RECALLED:
            return pb.RecallResponse(message_id=record.message_id, state=RECALLED)
        if not adapter.recallable:
            raise FailedPrecondition(
                f"message {record.message_id!r} went through {adapter.channel}, which cannot recall messages",
                reason="RECALL_UNSUPPORTED",
                metadata={"channel": adapter.channel},
            )
        if record.state not in (SENT, DELIVERED) or not record.vendor_message_id:
            raise FailedPrecondition(
                f"message {record.message_id!r} is {state_name(record.state)}: "
                "only a message the vendor accepted can be recalled",
                reason="RECALL_NOT_SENT",
                metadata={"message_state": state_name(record.state)},
            )
        age = time.time() - record.create_time.ToNanoseconds() / 1e9
        if age > RECALL_WINDOW:
            raise FailedPrecondition(
                f"message {record.message_id!r} was sent {age / 3600:.1f} hours ago; "
                f"{adapter.vendor_name} recalls only within 24 hours",
                reason="RECALL_WINDOW_PASSED",
            )
        await adapter.recall(record.vendor_message_id, deadline=ctx.deadline)

        def recalled(current: pb.MessageRecord) -> None:
            if current.state != RECALLED:  # a concurrent Recall got there first: same answer
                advance(current, RECALLED, "recalled")
            current.recallable = False

        # IllegalTransition cannot happen from SENT or DELIVERED; the vendor has withdrawn it either way.
        with contextlib.suppress(IllegalTransition):
            await ledger.change(stored, recalled)
        return pb.RecallResponse(message_id=record.message_id, state=RECALLED)

    return recall_message
