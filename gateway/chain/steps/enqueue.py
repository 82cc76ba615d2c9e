"""Queued Sends stop here: the message is checked, its key claimed, its record written and its job
queued in one atomic step, and the caller gets ACCEPTED with the message_id at once.

Everything that can be checked without the vendor has been checked by the steps before (account,
permission, kind, recipients, media); the tenant's quota is taken now, while the account's rate
limit becomes pacing in the workers (gateway.queue.worker). Nothing is answered ACCEPTED that is
not durably queued: the script either does all of it or none.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.chain.steps.deduplicate import claim_key
from gateway.chain.steps.limit_rate import admit, tenant_quota
from gateway.chain.steps.record_message import new_record
from gateway.config import QueueSettings
from gateway.errors import FailedPrecondition, ResourceExhausted
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.responses import send_response
from gateway.lifecycle.states import timestamp
from gateway.queue.metrics import queue_accepted
from gateway.queue.streams import JobQueue
from gateway.store.idempotency import KEEP_FOR, Binding, IdempotencyStore, Scope
from gateway.store.rate_limits import RateLimit, RateLimiter
from generated.notify.v1 import notification_service_pb2 as pb


def enqueue(
    queue: JobQueue | None,
    idempotency: IdempotencyStore,
    ledger: Ledger,
    limiter: RateLimiter,
    settings: QueueSettings,
) -> Step:
    async def enqueue(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        adapter = ctx.require_adapter()
        options = ctx.request.options
        mode = options.delivery or (
            pb.DELIVERY_MODE_QUEUED if adapter.settings.delivery == "queued" else pb.DELIVERY_MODE_SYNC
        )
        if mode != pb.DELIVERY_MODE_QUEUED:
            return await call_next()
        if queue is None:
            raise FailedPrecondition(
                "queued delivery needs a Redis token_store; this gateway keeps state in memory",
                reason="QUEUE_UNAVAILABLE",
            )
        ctx.annotate("notify.delivery", "queued")
        quota = tenant_quota()
        if quota is not None:
            await admit(limiter, *quota, ctx)
        record = new_record(ctx)
        record.delivery = pb.DELIVERY_MODE_QUEUED
        expire_after = (
            options.expire_after.ToNanoseconds() / 1e9
            if options.HasField("expire_after")
            else settings.expire_after_seconds
        )
        record.expire_time.CopyFrom(timestamp(time.time() + expire_after))
        traceparent = _traceparent()
        key = ctx.request.idempotency_key
        scope = Scope(ctx.tenant, ctx.account_id, key) if key else None
        queued = False

        async def put(binding: Binding) -> Binding | None:
            nonlocal queued
            result = await queue.enqueue(
                record,
                ctx.request,
                traceparent=traceparent,
                limit=adapter.settings.queue_limit,
                claim=(scope, binding, KEEP_FOR) if scope is not None else None,
            )
            if result.outcome == "full":
                raise _queue_full(
                    ctx.account_id, result.depth, adapter.settings.queue_limit, adapter.rate_limit
                )
            if result.outcome == "bound":
                return result.binding
            queued = True
            return None

        if scope is None:
            await put(Binding("", ctx.message_id, time.time()))
        while not queued:
            assert scope is not None
            replay = await claim_key(put, idempotency, ledger, ctx, scope, may_resend=False)
            if replay is not None:
                return replay
            # Else the key was rebound to this Send (its message had FAILED): the script takes it now.
        queue_accepted.add(1, {"notify.account": ctx.account_id})
        return send_response(record)

    return enqueue


def _queue_full(account: str, depth: int, limit: int, rate: RateLimit | None) -> ResourceExhausted:
    # The queue drains at the account's rate: a place frees once the jobs beyond the bound are gone.
    per_second = rate.limit / rate.window_seconds if rate is not None else 10.0
    retry_after = max(1.0, (depth - limit + 1) / per_second)
    return ResourceExhausted(
        f"the queue of account {account!r} holds {depth} messages, its limit; retry in {retry_after:.0f} s",
        retry_after=retry_after,
        reason="QUEUE_FULL",
        metadata={"account": account, "queue_depth": str(depth), "queue_limit": str(limit)},
    )


def _traceparent() -> str:
    """The Send's span as a W3C traceparent, the one header the job carries and the worker reads
    (with the W3C propagator): written directly, at half the cost of a propagator's inject into a
    carrier dict, and the same whatever propagators the process has configured."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
