"""Checks what every Send needs whatever the channel: an account and exactly one message kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.chain.chain import Next
from gateway.chain.context import CallContext
from gateway.errors import InvalidArgument, Violation
from gateway.redaction import redact
from generated.notify.v1 import notification_service_pb2 as pb

IDEMPOTENCY_KEY_LIMIT = 128
LABELS_LIMIT = 32
#: Labels on the server span, as the proto promises: bounded, so a caller cannot make spans huge
#: (a backend drops or truncates an oversized span as a whole). Keys in order, the first ones kept.
SPAN_LABELS = 16
SPAN_LABEL_KEY_CHARS = 64
SPAN_LABEL_VALUE_CHARS = 128
MAX_EXPIRE_AFTER = 7 * 24 * 3600  # seconds; a queued message older than this is no news to anyone
#: The enum's values, once: ``DeliveryMode.values()`` builds a new list on every call.
_DELIVERY_MODES = frozenset(pb.DeliveryMode.values())


async def validate_send(ctx: CallContext[pb.SendRequest], call_next: Next) -> Any:
    request = ctx.request
    violations: list[Violation] = []
    if not request.account:
        violations.append(Violation("account", "is required: name a configured account"))
    kind = request.message.WhichOneof("kind") if request.HasField("message") else None
    if kind is None:
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
    options = request.options
    if options.delivery not in _DELIVERY_MODES:
        violations.append(Violation("options.delivery", f"{options.delivery} is not a DeliveryMode"))
    if options.HasField("expire_after"):
        seconds = options.expire_after.ToNanoseconds() / 1e9
        if not 0 < seconds <= MAX_EXPIRE_AFTER:
            violations.append(
                Violation("options.expire_after", f"is {seconds:g} s; it must be above 0 and at most 7 days")
            )
    if request.labels:
        _label_span(ctx, request.labels)
    if violations:
        raise InvalidArgument(violations)
    ctx.account_id = request.account
    ctx.annotate("notify.message_kind", kind or "")
    return await call_next()


def _label_span(ctx: CallContext[pb.SendRequest], labels: Mapping[str, str]) -> None:
    """Puts ``notify.label.<key>`` on the server span; values pass through redaction like any text."""
    for key in sorted(labels)[:SPAN_LABELS]:
        value = redact(labels[key][:SPAN_LABEL_VALUE_CHARS])
        ctx.annotate(f"notify.label.{key[:SPAN_LABEL_KEY_CHARS]}", value)
