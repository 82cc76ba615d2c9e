"""Delivers a Send with an idempotency_key once; repeats get the first answer with duplicate=true.

Concurrent repeats wait for the first attempt's answer (or take over if it failed) rather than
deliver again. The key is scoped to the tenant and bound to the request's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from gateway.chain.chain import Next, Step
from gateway.chain.context import CallContext
from gateway.errors import Aborted, InvalidArgument, Unavailable, Violation
from gateway.store.idempotency import IdempotencyStore
from generated.notify.v1 import notification_service_pb2 as pb

log = logging.getLogger("gateway.idempotency")

CLAIM_TTL = 60.0  # a replica that dies mid-delivery blocks the key this long at most
MAX_WAIT = 30.0


def deduplicate(store: IdempotencyStore) -> Step:
    async def deduplicate(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
        key = ctx.request.idempotency_key
        if not key:
            return await call_next()
        scope = f"{ctx.tenant}:{key}"
        fingerprint = hashlib.sha256(ctx.request.SerializeToString(deterministic=True)).hexdigest()
        give_up = time.monotonic() + MAX_WAIT
        if ctx.deadline is not None:
            give_up = min(give_up, ctx.deadline)
        delay = 0.01
        while True:
            existing = await store.claim(scope, fingerprint, CLAIM_TTL)
            if existing is None:
                break  # ours: deliver
            if existing.fingerprint != fingerprint:
                raise InvalidArgument(
                    [Violation("idempotency_key", "was already used with a different request; use a new key")]
                )
            if existing.response is not None:
                replay = pb.SendResponse.FromString(existing.response)
                replay.duplicate = True
                return replay
            if time.monotonic() + delay > give_up:
                raise Aborted(
                    "a request with the same idempotency_key is still being delivered; retry later",
                    reason="IDEMPOTENCY_KEY_IN_PROGRESS",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            response: pb.SendResponse = await call_next()
        except BaseException:
            with contextlib.suppress(Unavailable):  # the claim then lapses after CLAIM_TTL
                await store.release(scope, fingerprint)
            raise
        try:
            await store.complete(scope, fingerprint, response.SerializeToString())
        except Unavailable as exc:
            # The message is out: answer it. A retry after the claim lapses could deliver again.
            log.warning(
                "idempotency answer not stored",
                extra={"message_id": response.message_id, "error": exc.message},
            )
        return response

    return deduplicate
