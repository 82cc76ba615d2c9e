"""Opens the message's record before anything can happen to the message, and makes sure the
record holds its fate whatever happens next.

The record is written by one admission script with the account's rate slot (and, for a Send with
an idempotency key, by deduplicate, with the key's claim): one Redis round trip for all three.

The record is ACCEPTED while the Send waits (rate limit, media upload); the deliver step moves it
through SENDING to its outcome. If the chain stops before a vendor call starts (a rate limit, a
refused upload, the caller gone), the record becomes FAILED with the reason, so a retry with the
same key may deliver. The Send owns the record under a lease its heartbeat renews.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.chain.steps.limit_rate import tenant_quota
from gateway.errors import Aborted, GatewayError
from gateway.lifecycle.ledger import LeaseLost, Ledger, Mutation
from gateway.lifecycle.responses import annotate_error
from gateway.lifecycle.states import ACCEPTED, SENDING, advance, not_sent, timestamp
from gateway.store.admission import Admit, SendAdmission
from gateway.store.idempotency import Binding, Scope
from generated.notify.v1 import notification_service_pb2 as pb


def record_message(ledger: Ledger, admission: SendAdmission) -> Step:
    async def record_message(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        if ctx.resend is not None:
            taken = await ledger.take_over(ctx.resend, owner_of(ctx))
            if taken is None:
                raise Aborted(
                    "a request with the same idempotency_key is being delivered; retry later",
                    reason="IDEMPOTENCY_KEY_IN_PROGRESS",
                    metadata={"message_id": ctx.message_id},
                )
            ctx.record = taken
        elif ctx.record is None:  # else deduplicate admitted it with its key
            admitted = await ledger.admit(admission, admission_request(ctx, ledger, claim=None))
            ctx.record, ctx.rate_admission = admitted.stored, admitted.rate
        assert ctx.record is not None
        async with ledger.hold(ctx.record):
            try:
                return await call_next()
            except BaseException as exc:
                if not ctx.settled:  # no vendor call settled it: none started
                    ctx.settled = True
                    with contextlib.suppress(LeaseLost):  # resolved by a reader already: nothing to add
                        ctx.record = await ledger.settle(ctx.record, _not_sent(exc))
                if isinstance(exc, GatewayError):
                    annotate_error(exc, ctx.record.record)
                raise

    return record_message


def owner_of(ctx: CallContext[pb.SendRequest]) -> str:
    if not ctx.owner:
        ctx.owner = secrets.token_hex(8)
    return ctx.owner


def admission_request(
    ctx: CallContext[pb.SendRequest], ledger: Ledger, claim: tuple[Scope, Binding, float] | None
) -> Admit:
    """The record as ACCEPTED, and as SENDING when the Send has nothing left to do before its vendor
    call once admitted (no upload of inline media, no tenant quota to take), with its account's
    rate limit, for one admission write (gateway.store.admission)."""
    adapter = ctx.require_adapter()
    accepted = new_record(ctx)
    sending = None
    if ctx.outgoing is not None and ctx.outgoing.pending_media is None and tenant_quota() is None:
        sending = pb.MessageRecord()
        sending.CopyFrom(accepted)
        advance(sending, SENDING, "calling the vendor")
    rate = (f"account:{ctx.account_id}", adapter.rate_limit) if adapter.rate_limit is not None else None
    return Admit(accepted, sending, owner_of(ctx), time.time() + ledger.lease_seconds, claim=claim, rate=rate)


def new_record(ctx: CallContext[pb.SendRequest]) -> pb.MessageRecord:
    adapter = ctx.require_adapter()
    request = ctx.request
    now = timestamp(time.time())
    record = pb.MessageRecord(
        message_id=ctx.message_id,
        tenant=ctx.tenant,
        account=ctx.account_id,
        channel=adapter.channel,
        kind=request.message.WhichOneof("kind") or "",
        state=ACCEPTED,
        labels=request.labels,
        idempotency_key=request.idempotency_key,
        create_time=now,
        update_time=now,
    )
    record.history.add(state=ACCEPTED, time=now, reason="accepted")
    return record


def _not_sent(exc: BaseException) -> Mutation:
    reason = f"not sent: {exc.message}" if isinstance(exc, GatewayError) else "not sent: the call ended first"

    def mark(record: pb.MessageRecord) -> None:
        # deliver settles every Send whose vendor call started (ctx.settled), so none did here.
        not_sent(record, reason)

    return mark
