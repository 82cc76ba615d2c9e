"""grpc sends a call's answer when the outermost interceptor returns; the server span's end, the
call's metrics and its access log line follow in the event loop's next turn, with the times taken
before. The interceptors are composed here as the server composes them and called as grpc calls a
handler, so "returned" is the moment grpc would have the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.interceptors.access_log import AccessLogInterceptor
from gateway.interceptors.tracing import TracingInterceptor

METHOD = "/notify.v1.NotificationService/Send"


@dataclass
class Details:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class Context:
    """What the two interceptors ask of grpc's ServicerContext on a call that succeeds."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


async def answer(request: Any, context: Any) -> str:
    await asyncio.sleep(0.002)  # some work, so the span's duration is not zero
    return "the answer"


async def composed() -> Any:
    """Tracing outermost, the access log inside it, as gateway/server.py lists them."""
    handler = grpc.unary_unary_rpc_method_handler(answer)
    for interceptor in (AccessLogInterceptor(), TracingInterceptor()):

        async def continuation(details: Any, inner: grpc.RpcMethodHandler = handler) -> grpc.RpcMethodHandler:
            return inner

        handler = await interceptor.intercept_service(continuation, Details(METHOD))
    return handler.unary_unary


async def test_the_answer_is_returned_before_the_span_ends_and_the_line_is_written(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    behaviour = await composed()
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        returned = await behaviour(None, Context())
        answered_at = time.time_ns()

        assert returned == "the answer"
        assert not [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
        assert not [r for r in caplog.records if r.name == "gateway.access"]

        await asyncio.sleep(0)  # the loop's next turn

    (server,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server.name == METHOD.lstrip("/")
    assert server.end_time is not None and server.start_time is not None
    assert server.end_time <= answered_at  # the end is when the answer was ready, not when recorded
    assert server.end_time - server.start_time >= 2_000_000
    assert (server.attributes or {})["rpc.grpc.status_code"] == 0
    (line,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert line.levelno == logging.INFO
    assert line.__dict__["status"] == "OK"
    assert line.__dict__["rpc"] == METHOD
    assert line.__dict__["duration_ms"] >= 2.0
    assert line.__dict__["trace_id"] == format(server.context.trace_id, "032x")
