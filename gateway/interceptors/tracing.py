"""The server span of every RPC, continuing the caller's W3C trace context when it sends one.

Outermost interceptor, so the span covers authentication, the chain and the vendor call, and the
Redis operations the call makes are counted onto it (``notify.redis.*``) rather than spanned. The
error interceptor (inside it) marks the span with the status it aborts with; this one marks
success. (OpenTelemetry's own aio instrumentation records abort_with_status as status 0.)

grpc sends the answer once this interceptor returns, so the span is ended and the call's metrics
are recorded just after, in the event loop's next turn (``_finish``), with the end time and the
duration taken before: the caller does not wait for that bookkeeping. Anything that reacts to the
answer inside this process (a scrape of the metrics, the next call) is served after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from gateway.interceptors.cancellation import cancelled_code
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.telemetry import (
    UNRECORDED,
    call_counts,
    call_facts,
    redis_tally,
    rpc_duration,
    tally_for,
    tracer,
)


# Hand-written, not opentelemetry-instrumentation-grpc's aio interceptor: it fails WatchMessage (it
# iterates a stream our wrapper writes itself: TypeError), leaves a cancelled call without a status,
# and would need this one beside it for the RPC metrics; it is no cheaper (scripts/instrumentation_cost.py).
class TracingInterceptor(HandlerWrapper):
    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        carrier = {
            key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
        }
        service, _, name = method.lstrip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        parent = propagate.extract(carrier)
        span = tracer.start_span(
            f"{service}/{name}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        current = otel_context.attach(trace.set_span_in_context(span))
        started = time.perf_counter()
        code = 0
        facts: dict[str, AttributeValue] = {}
        gathering = call_facts.set(facts)
        tally = tally_for(span)
        tallying = redis_tally.set(tally)
        try:
            response = await invoke(request, context)
            facts["rpc.grpc.status_code"] = 0
        except asyncio.CancelledError:
            status = cancelled_code(context)
            mark_span_failed(status, "the call ended before its answer", {})
            code = status.value[0]
            raise
        except BaseException:
            code = _code_of(facts)
            raise
        finally:
            seconds = time.perf_counter() - started
            redis_tally.reset(tallying)
            call_facts.reset(gathering)
            recorded = tally is not UNRECORDED
            if recorded:  # the facts go on the span in one write
                facts.update(tally.close())
            # Scheduled while the span is current: the duration's exemplar names it.
            asyncio.get_running_loop().call_soon(
                _finish, span, recorded, facts, attributes, code, seconds, time.time_ns()
            )
            otel_context.detach(current)
        return response


def _finish(
    span: trace.Span,
    recorded: bool,
    facts: dict[str, AttributeValue],
    rpc: Mapping[str, str],
    code: int,
    seconds: float,
    ended: int,
) -> None:
    """The call's bookkeeping once grpc has its answer: the span's facts and end, and the metrics."""
    if recorded:
        span.set_attributes(facts)
    _record(facts, rpc, code, seconds)
    span.end(end_time=ended)


#: What the error interceptor found out about the failed call (``notify.error.reason``,
#: ``notify.vendor.errcode``), for the access log: a span that is not sampled keeps no attributes.
call_failure: ContextVar[Mapping[str, str | int] | None] = ContextVar("call_failure", default=None)


def mark_span_failed(code: grpc.StatusCode, message: str, attributes: dict[str, str | int]) -> None:
    """Called by the error interceptor: the status a failed RPC ends with, on its server span."""
    call_failure.set(attributes)
    span = trace.get_current_span()
    found: dict[str, AttributeValue] = {"rpc.grpc.status_code": code.value[0], **attributes}
    facts = call_facts.get()
    if facts is None:  # not inside the tracing interceptor (the error interceptor tested alone)
        span.set_attributes(found)
    else:
        facts.update(found)
    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {message}"))


def _record(facts: Mapping[str, AttributeValue], rpc: Mapping[str, str], code: int, seconds: float) -> None:
    """Counts the call and its duration, labelled with what the chain found out (its facts).

    The account is a label only once the chain has resolved it to a channel: a name a caller made
    up must not become a time series of its own.
    """
    channel = facts.get("notify.channel")
    account = facts.get("notify.account", "") if channel is not None else None
    tenant = facts.get("notify.tenant")
    key = (rpc["rpc.service"], rpc["rpc.method"], code, channel, account, tenant)
    labels = call_counts.labels(key)
    if labels is None:
        labels = {**rpc, "rpc.grpc.status_code": code}
        labels["notify.status"] = _CODES[code].name if code in _CODES else "UNKNOWN"
        if channel is not None:
            labels["notify.channel"] = channel
            labels["notify.account"] = account if account is not None else ""
        if tenant is not None:
            labels["notify.tenant"] = tenant
    call_counts.add(key, labels)
    rpc_duration.record(seconds, labels, key)


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _code_of(facts: Mapping[str, AttributeValue]) -> int:
    value = facts.get("rpc.grpc.status_code")
    return int(value) if isinstance(value, int) else grpc.StatusCode.UNKNOWN.value[0]
