"""The status RPCs' last steps: a record, a page of records, or a stream of a record's changes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import DeadlineExceeded
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.listing import list_messages as list_page
from generated.notify.v1 import notification_service_pb2 as pb

MAX_WATCH = 3600.0  # seconds a watch lasts at most, whatever the caller's deadline


async def get_message(ctx: CallContext[pb.GetMessageRequest], call_next: Next) -> pb.GetMessageResponse:
    return pb.GetMessageResponse(message=ctx.require_record().record)


def list_messages(ledger: Ledger) -> Step:
    async def list_messages(ctx: CallContext[pb.ListMessagesRequest], call_next: Next) -> Any:
        page = await list_page(ledger, ctx.tenant, ctx.request)
        return pb.ListMessagesResponse(messages=page.records, next_page_token=page.next_token)

    return list_messages


def watch_message(ledger: Ledger) -> Step:
    async def watch_message(
        ctx: CallContext[pb.WatchMessageRequest], call_next: Next
    ) -> AsyncIterator[pb.WatchMessageResponse]:
        # Without a deadline a watch still ends, after MAX_WATCH: nothing is held forever.
        until = (
            time.monotonic() + MAX_WATCH
            if ctx.deadline is None
            else min(ctx.deadline, time.monotonic() + MAX_WATCH)
        )

        async def changes() -> AsyncIterator[pb.WatchMessageResponse]:
            final = False
            async for stored in ledger.watch(ctx.message_id, ctx.require_record(), until=until):
                final = stored.record.final
                yield pb.WatchMessageResponse(message=stored.record)
            if not final:
                raise DeadlineExceeded(
                    f"message {ctx.message_id} is not final yet; watch again to follow it",
                    reason="WATCH_DEADLINE",
                    metadata={"message_id": ctx.message_id},
                )

        return changes()

    return watch_message
