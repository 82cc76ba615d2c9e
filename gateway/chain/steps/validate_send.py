"""Checks what every Send needs whatever the channel: an account and exactly one message kind."""

from __future__ import annotations

from typing import Any

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from gateway.errors import InvalidArgument, Violation
from generated.notify.v1 import notification_service_pb2 as pb

IDEMPOTENCY_KEY_LIMIT = 128
LABELS_LIMIT = 32


async def validate_send(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
    request = ctx.request
    violations: list[Violation] = []
    if not request.account:
        violations.append(Violation("account", "is required: name a configured account"))
    if not request.HasField("message") or request.message.WhichOneof("kind") is None:
        violations.append(Violation("message", "is required: set exactly one kind (text, markdown, ...)"))
    if len(request.idempotency_key) > IDEMPOTENCY_KEY_LIMIT:
        violations.append(
            Violation(
                "idempotency_key",
                f"is {len(request.idempotency_key)} characters; at most {IDEMPOTENCY_KEY_LIMIT}",
            )
        )
    if len(request.labels) > LABELS_LIMIT:
        violations.append(Violation("labels", f"has {len(request.labels)} entries; at most {LABELS_LIMIT}"))
    if violations:
        raise InvalidArgument(violations)
    ctx.account_id = request.account
    ctx.annotate("notify.message_kind", request.message.WhichOneof("kind") or "")
    return await call_next()
