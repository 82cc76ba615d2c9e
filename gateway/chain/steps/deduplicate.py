"""Binds a Send's idempotency_key to the one message it creates; repeats answer that message.

The binding is made before anything else can happen to the message, and it is dropped only when
the record says FAILED (nothing reached the vendor). A repeat therefore gets the message's
current state with duplicate=true: SENT, DELIVERED, or UNKNOWN when the first attempt's outcome
was ambiguous; it sends again only where the account resends ambiguous messages (the vendor
drops repeats), and then as the same message. A repeat arriving while the first Send still
works waits for its outcome; the key is scoped to the tenant and bound to the request's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.chain.steps.record_message import admission_request
from gateway.errors import Aborted, InvalidArgument, Unavailable, Violation
from gateway.lifecycle.ledger import Ledger, busy
from gateway.lifecycle.responses import send_response
from gateway.lifecycle.states import FAILED, UNKNOWN
from gateway.store.admission import SendAdmission
from gateway.store.idempotency import KEEP_FOR, Binding, IdempotencyStore, Scope
from generated.notify.v1 import notification_service_pb2 as pb

MAX_WAIT = 30.0  # a repeat waits this long at most for the first Send's outcome, then ABORTED


def deduplicate(store: IdempotencyStore, ledger: Ledger, admission: SendAdmission) -> Step:
    async def deduplicate(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        key = ctx.request.idempotency_key
        if not key:
            return await call_next()
        scope = Scope(ctx.tenant, ctx.account_id, key)

        async def bind(binding: Binding) -> Binding | None:
            # Claims the key, takes the account's rate slot and writes the record in one round trip;
            # record_message and limit_rate then use what it wrote and took.
            admitted = await ledger.admit(
                admission, admission_request(ctx, ledger, (scope, binding, KEEP_FOR))
            )
            if admitted.bound is not None:
                return admitted.bound
            ctx.record, ctx.rate_admission = admitted.stored, admitted.rate
            return None

        replay = await claim_key(bind, store, ledger, ctx, scope, may_resend=True)
        if replay is not None:
            return replay
        try:
            return await call_next()
        finally:
            record = ctx.record
            # No record (the store failed before it was written) or FAILED: nothing reached the
            # vendor, and the key is free for a retry to deliver.
            if record is None or record.record.state == FAILED:
                # If the store is down now, a retry finds the key bound to a FAILED message and takes it.
                with contextlib.suppress(Unavailable):
                    await store.release(scope, ctx.message_id)

    return deduplicate


def fingerprint(request: pb.SendRequest) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


async def claim_key(
    bind: Callable[[Binding], Awaitable[Binding | None]],
    store: IdempotencyStore,
    ledger: Ledger,
    ctx: CallContext[pb.SendRequest],
    scope: Scope,
    *,
    may_resend: bool,
) -> pb.SendResponse | None:
    """Binds the key to this Send's message (None) or answers the message it is bound to.

    ``bind`` claims the key, writing the message's record in the same script, or returns the
    binding already there: the admission for a sync Send, the enqueue for a queued one.
    ``may_resend``: an UNKNOWN message of an account that resends ambiguous messages is taken over
    by this Send (sync Sends only).
    """
    fingerprint_ = fingerprint(ctx.request)
    give_up = time.monotonic() + MAX_WAIT
    if ctx.deadline is not None:
        give_up = min(give_up, ctx.deadline)
    delay = 0.01
    while True:
        mine = Binding(fingerprint_, ctx.message_id, time.time())
        bound = await bind(mine)
        if bound is None:
            return None
        if bound.fingerprint != fingerprint_:
            raise InvalidArgument(
                [Violation("idempotency_key", "was already used with a different request; use a new key")]
            )
        stored = await ledger.get(bound.message_id)
        if stored is None:
            # Bound a moment ago and its record not written yet, or the record is gone (evicted,
            # or its Send died before writing it): after one lease, the key is free again.
            if bound.bound_at + ledger.lease_seconds < time.time() and await store.rebind(
                scope, bound.message_id, mine
            ):
                return None
        elif not busy(stored):
            state = stored.record.state
            if state == FAILED:
                if await store.rebind(scope, bound.message_id, mine):
                    return None
                continue
            adapter = ctx.require_adapter()
            if state == UNKNOWN and adapter.resends_ambiguous and may_resend:
                # The same message again, with the same vendor dedup key (msgUuid), so the vendor
                # drops it if the first attempt did arrive.
                ctx.message_id = stored.message_id
                ctx.annotate("notify.message_id", ctx.message_id)
                ctx.outgoing = adapter.prepare(ctx.request, ctx.message_id)
                ctx.resend = stored
                return None
            return send_response(stored.record, duplicate=True)
        if time.monotonic() + delay > give_up:
            raise Aborted(
                "a request with the same idempotency_key is still being delivered; retry later",
                reason="IDEMPOTENCY_KEY_IN_PROGRESS",
                metadata={"message_id": bound.message_id},
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
