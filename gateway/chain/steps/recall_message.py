"""Recall: the steps that find the message's record and withdraw it at the vendor.

Recall answers by the record: a message of another tenant is NOT_FOUND (no hint it exists), a
robot message cannot be recalled, past the vendors' 24-hour window is FAILED_PRECONDITION, and
a second Recall answers the recorded RECALLED state without calling the vendor.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import FailedPrecondition, InvalidArgument, NotFound, Violation
from gateway.store.records import MessageRecord, RecordStore
from generated.notify.v1 import notification_service_pb2 as pb

RECALL_WINDOW = 24 * 3600.0  # both vendors: only within 24 hours of sending


async def validate_recall(ctx: CallContext[pb.RecallRequest], call_next: Next) -> Any:
    if not ctx.request.message_id:
        raise InvalidArgument([Violation("message_id", "is required: the message_id Send returned")])
    ctx.message_id = ctx.request.message_id
    ctx.annotate("notify.message_id", ctx.message_id)
    return await call_next()


def load_record(records: RecordStore) -> Step:
    async def load_record(ctx: CallContext[Any], call_next: Next) -> Any:
        record = await records.get(ctx.message_id)
        if record is None or record.tenant != ctx.tenant:
            raise NotFound(f"no message {ctx.message_id!r}", reason="MESSAGE_NOT_FOUND")
        ctx.attributes["record"] = record
        ctx.account_id = record.account
        return await call_next()

    return load_record


def recall_message(records: RecordStore) -> Step:
    async def recall_message(ctx: CallContext[pb.RecallRequest], call_next: Next) -> pb.RecallResponse:
        record: MessageRecord = ctx.attributes["record"]
        adapter = ctx.require_adapter()
        if record.state == pb.MESSAGE_STATE_RECALLED:
            return pb.RecallResponse(message_id=record.message_id, state=pb.MESSAGE_STATE_RECALLED)
        if not adapter.recallable or not record.vendor_message_id:
            raise FailedPrecondition(
                f"message {record.message_id!r} went through {adapter.channel}, which cannot recall messages",
                reason="RECALL_UNSUPPORTED",
                metadata={"channel": adapter.channel},
            )
        age = time.time() - record.created_at
        if age > RECALL_WINDOW:
            raise FailedPrecondition(
                f"message {record.message_id!r} was sent {age / 3600:.1f} hours ago; "
                f"{adapter.vendor_name} recalls only within 24 hours",
                reason="RECALL_WINDOW_PASSED",
            )
        await adapter.recall(record.vendor_message_id, deadline=ctx.deadline)
        await records.put(record.with_state(pb.MESSAGE_STATE_RECALLED))
        return pb.RecallResponse(message_id=record.message_id, state=pb.MESSAGE_STATE_RECALLED)

    return recall_message
