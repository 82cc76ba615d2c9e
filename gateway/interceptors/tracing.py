"""The server span of every RPC, continuing the caller's W3C trace context when it sends one.

Outermost interceptor, so the span covers authentication, the chain and the vendor call. The
error interceptor (inside it) marks the span with the status it aborts with; this one marks
success. (OpenTelemetry's own aio instrumentation records abort_with_status as status 0.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.interceptors.cancellation import cancelled_code
from gateway.interceptors.wrap import HandlerWrapper, Invoke
from gateway.telemetry import current_span, rpc_calls


class TracingInterceptor(HandlerWrapper):
    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        carrier = {
            key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
        }
        service, _, name = method.lstrip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        with current_span(
            f"{service}/{name}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
            error_on_exception=False,  # the error interceptor sets the status it aborts with
        ) as span:
            try:
                response = await invoke(request, context)
            except asyncio.CancelledError:
                status = cancelled_code(context)
                mark_span_failed(status, "the call ended before its answer", {})
                rpc_calls.add(1, {"rpc.method": name, "rpc.grpc.status_code": status.value[0]})
                raise
            except BaseException:
                code = _code_of(span)
                rpc_calls.add(1, {"rpc.method": name, "rpc.grpc.status_code": code})
                raise
            span.set_attribute("rpc.grpc.status_code", 0)
            rpc_calls.add(1, {"rpc.method": name, "rpc.grpc.status_code": 0})
            return response


def mark_span_failed(code: grpc.StatusCode, message: str, attributes: dict[str, str | int]) -> None:
    """Called by the error interceptor: the status a failed RPC ends with, on its server span."""
    span = trace.get_current_span()
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    for key, value in attributes.items():
        span.set_attribute(key, value)
    span.set_status(Status(StatusCode.ERROR, f"{code.name}: {message}"))


def _code_of(span: trace.Span) -> int:
    attributes = getattr(span, "attributes", None) or {}
    value = attributes.get("rpc.grpc.status_code")
    return int(value) if isinstance(value, int) else grpc.StatusCode.UNKNOWN.value[0]
