"""A Redis operation inside a call is counted on the call's span; outside one it keeps a span."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind

from gateway.store import redis_connection
from gateway.store.redis_connection import traced
from gateway.telemetry import UNRECORDED, RedisTally, redis_tally, tally_for


class Store:
    def __init__(self) -> None:
        self.calls = 0

    @traced("GET")
    async def get(self) -> str:
        self.calls += 1
        return "value"


def redis_spans(spans: InMemorySpanExporter) -> list[Any]:
    return [s for s in spans.get_finished_spans() if (s.attributes or {}).get("db.system") == "redis"]


async def test_outside_any_call_an_operation_is_a_client_span(spans: InMemorySpanExporter) -> None:
    assert await Store().get() == "value"

    (span,) = redis_spans(spans)
    assert (span.name, span.kind) == ("redis GET", SpanKind.CLIENT)
    assert dict(span.attributes or {}) == {"db.system": "redis", "db.operation.name": "GET"}


async def test_inside_a_recorded_call_operations_are_counted_and_timed_not_spanned(
    spans: InMemorySpanExporter,
) -> None:
    server = trace.get_tracer("test").start_span("server")
    tally = tally_for(server)
    redis_tally.set(tally)
    store = Store()
    for _ in range(3):
        await store.get()

    assert not redis_spans(spans)
    assert tally.calls == 3 and tally.seconds > 0
    tally.record_on(server)
    server.end()
    attributes = dict(server.attributes or {})  # type: ignore[attr-defined]
    assert attributes["notify.redis.calls"] == 3
    duration = attributes["notify.redis.duration_ms"]
    assert isinstance(duration, float) and duration == round(duration, 3)


async def test_a_call_not_recorded_neither_times_nor_spans_its_operations(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_clock() -> float:
        raise AssertionError("a call not recorded reads no clock")

    monkeypatch.setattr(redis_connection, "perf_counter", no_clock)
    sampled_out = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    assert tally_for(sampled_out) is UNRECORDED
    redis_tally.set(UNRECORDED)

    assert await Store().get() == "value"
    assert not redis_spans(spans)
    assert UNRECORDED.calls == 0


async def test_work_a_call_left_running_after_its_span_ended_gets_spans_again(
    spans: InMemorySpanExporter,
) -> None:
    tally = RedisTally()
    redis_tally.set(tally)
    await Store().get()
    tally.record_on(trace.get_tracer("test").start_span("server"))

    await Store().get()

    assert tally.calls == 1
    assert [s.name for s in redis_spans(spans)] == ["redis GET"]
