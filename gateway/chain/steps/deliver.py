"""Hands the prepared payload to the account's adapter and records what came of it.

The record says SENDING before the first byte goes to the vendor, so a replica that dies
mid-call leaves a message that reads UNKNOWN, never one that reads "not sent". The outcome is
decided from the attempts alone: SENT when the vendor accepted, UNKNOWN when any attempt may
have reached it without an answer (timeout, dropped connection, cancelled call), FAILED only when
every attempt was refused or never left. That write runs to its end even if the call is
cancelled, and the caller's error carries the message_id and the state it left.
"""

from __future__ import annotations

import logging

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.channels.attempts import AttemptLog
from gateway.errors import Aborted, Unavailable
from gateway.lifecycle.ledger import LeaseLost, Ledger
from gateway.lifecycle.outcomes import failed, sending, sent
from gateway.lifecycle.reports import DeliveryReports
from gateway.lifecycle.responses import send_response
from gateway.lifecycle.states import FAILED, SENDING, UNKNOWN, state_name
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.deliver")


def deliver(ledger: Ledger, reports: DeliveryReports) -> Step:
    async def deliver(ctx: CallContext[pb.SendRequest], call_next: Next) -> pb.SendResponse:
        adapter = ctx.require_adapter()
        if ctx.outgoing is None:
            raise RuntimeError("send chain: deliver needs check_message before it")
        resend = ctx.resend is not None
        try:
            if ctx.require_record().record.state != SENDING:  # else its admission wrote it SENDING
                ctx.record = await ledger.change(ctx.require_record(), sending(resend))
        except LeaseLost as lost:
            ctx.record = lost.current
            raise Aborted(
                f"message {ctx.message_id} was resolved while it waited: "
                f"{state_name(lost.current.record.state)}",
                reason="MESSAGE_RESOLVED",
                metadata={"message_id": ctx.message_id},
            ) from None
        attempts = AttemptLog()
        try:
            delivery = await adapter.deliver(ctx.outgoing, deadline=ctx.deadline, attempts=attempts)
        except BaseException as exc:
            state = UNKNOWN if attempts.ambiguous or resend else FAILED
            ctx.settled = True  # from here the write runs to its end, even if this call is cancelled
            ctx.record = await ledger.settle(ctx.require_record(), failed(state, attempts, exc))
            raise  # record_message tells the caller the message_id and its state
        awaits_report = adapter.reports_delivery and bool(delivery.vendor_message_id)
        recallable = adapter.recallable and bool(delivery.vendor_message_id)
        ctx.settled = True
        ctx.record = await ledger.settle(
            ctx.require_record(), sent(delivery, attempts, recallable, awaits_report)
        )
        if awaits_report:
            try:
                await reports.expect(ctx.message_id)
            except Unavailable as exc:  # the message is out: answer SENT; only its report is lost
                log.warning(
                    "delivery report not scheduled",
                    extra={"message_id": ctx.message_id, "error": exc.message},
                )
        return send_response(ctx.record.record, duplicate=resend)

    return deliver
