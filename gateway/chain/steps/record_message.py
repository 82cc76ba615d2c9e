"""Keeps a record of every delivered message, so Recall works by the gateway's message_id.

The record is written after the vendor accepted the message; if the store is down then, the
Send still succeeds (the message is out) but is reported as not recallable.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import Unavailable
from gateway.store.records import MessageRecord, RecordStore
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.records")


def record_message(records: RecordStore) -> Step:
    async def record_message(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        response: pb.SendResponse = await call_next()
        adapter = ctx.require_adapter()
        record = MessageRecord(
            message_id=response.message_id,
            tenant=ctx.tenant,
            account=ctx.account_id,
            channel=adapter.channel,
            vendor_message_id=response.vendor_message_id,
            state=response.state,
            created_at=time.time(),
            labels=dict(ctx.request.labels),
        )
        try:
            await records.put(record)
        except Unavailable as exc:
            log.warning(
                "message record not stored", extra={"message_id": response.message_id, "error": exc.message}
            )
            response.recallable = False
        return response

    return record_message
