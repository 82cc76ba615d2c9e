"""bench.trace_breakdown and the OTLP sink's span summaries: the latency phase's Sends broken down
from the spans the gateway exports, as the sink receives them (the gateway's own encoder)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind

from bench import trace_breakdown
from bench.otlp_sink import Recorder, span_summaries
from gateway.chain.chain import Chain, Next
from gateway.chain.context import CallContext
from gateway.otlp_spans import encode_spans

SEND = "notify.v1.NotificationService/Send"


async def traced_send(vendor_seconds: float = 0.02) -> list[Any]:
    """A Send's two spans as the gateway makes them: the server span with the chain's steps event,
    and the vendor's client span, a child of it, inside the `deliver` step."""
    tracer = trace.get_tracer("test")
    server = tracer.start_span(SEND, kind=SpanKind.SERVER)

    async def check_message(ctx: CallContext[Any], call_next: Next) -> Any:
        await asyncio.sleep(0.01)
        return await call_next()

    async def deliver(ctx: CallContext[Any], call_next: Next) -> Any:
        await asyncio.sleep(0.002)  # the step's own work: the outcome's write, in the gateway
        vendor = tracer.start_span(
            "vendor wecom_app /cgi-bin/message/send",
            kind=SpanKind.CLIENT,
            context=trace.set_span_in_context(ctx.span),
        )
        await asyncio.sleep(vendor_seconds)
        vendor.end()
        spans.append(vendor)
        return "sent"

    spans: list[Any] = []
    chain: Chain[str] = Chain("send", [check_message, deliver])
    assert await chain(CallContext("send", request=None, span=server)) == "sent"
    server.end()
    return [*spans, server]


def received(spans: list[Any]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encode_spans(spans))


async def test_the_sink_keeps_each_spans_place_times_and_the_steps_event() -> None:
    vendor, server = await traced_send()
    rows = span_summaries(received([vendor, server]))

    by_kind = {row["kind"]: row for row in rows}
    assert by_kind[2]["name"] == SEND and by_kind[3]["name"].startswith("vendor ")
    assert by_kind[3]["trace"] == by_kind[2]["trace"] == format(server.context.trace_id, "032x")
    assert by_kind[3]["parent"] == by_kind[2]["span"]
    assert list(by_kind[2]["steps"]) == ["check_message_ms", "deliver_ms"]
    assert by_kind[2]["end_ns"] - by_kind[2]["start_ns"] >= 30_000_000
    assert by_kind[3]["steps"] == {}


async def test_a_send_breaks_down_into_its_steps_and_its_vendor_call() -> None:
    vendor, server = await traced_send(vendor_seconds=0.02)
    rows = span_summaries(received([vendor, server]))
    server_row = next(r for r in rows if r["kind"] == 2)
    vendor_ms = (vendor.end_time - vendor.start_time) / 1e6

    breakdown = trace_breakdown.send_breakdown(rows, skip=0)

    assert breakdown is not None and breakdown["sends"] == 1
    segments = dict(breakdown["segments_p50_ms"])
    assert list(segments) == [
        "interceptors and service, around the chain",
        "check_message",
        "deliver, apart from the vendor call",
        "vendor HTTP call (client spans)",
    ]
    assert segments["vendor HTTP call (client spans)"] == pytest.approx(vendor_ms, abs=0.001)
    assert segments["vendor HTTP call (client spans)"] >= 20
    assert segments["deliver, apart from the vendor call"] == pytest.approx(
        server_row["steps"]["deliver_ms"] - vendor_ms, abs=0.002
    )
    assert segments["check_message"] >= 10
    total = (server.end_time - server.start_time) / 1e6
    assert breakdown["server_span_p50_ms"] == pytest.approx(total, abs=0.001)
    # The span's time is its steps' and what lies around them: the parts add up to the whole.
    assert sum(segments.values()) == pytest.approx(total, abs=0.01)


async def test_the_warm_up_sends_and_other_spans_are_left_out() -> None:
    first = await traced_send()
    second = await traced_send(vendor_seconds=0.03)
    tracer = trace.get_tracer("test")
    other = tracer.start_span("notify.v1.NotificationService/GetMessage", kind=SpanKind.SERVER)
    other.end()
    rows = span_summaries(received([*second, other, *first]))  # the order they arrive in is any

    breakdown = trace_breakdown.send_breakdown(rows, skip=1)

    assert breakdown is not None and breakdown["sends"] == 1
    assert dict(breakdown["segments_p50_ms"])["vendor HTTP call (client spans)"] >= 30
    assert trace_breakdown.send_breakdown(rows, skip=2) is None


def test_rounds_are_summarised_by_each_figures_median() -> None:
    def one(server: float, vendor: float) -> dict[str, Any]:
        return {
            "sends": 100,
            "server_span_p50_ms": server,
            "server_span_p99_ms": server * 2,
            "outside_server_span_p50_ms": 0.5,
            "segments_p50_ms": [["deduplicate", 0.3], ["vendor HTTP call (client spans)", vendor]],
        }

    summary = trace_breakdown.median_over_rounds([one(1.0, 0.5), None, one(2.0, 0.7), one(3.0, 0.6)])

    assert summary is not None
    assert summary["rounds"] == 3 and summary["sends"] == 300
    assert summary["server_span_p50_ms"] == 2.0 and summary["server_span_p99_ms"] == 4.0
    assert summary["segments_p50_ms"] == [["deduplicate", 0.3], ["vendor HTTP call (client spans)", 0.6]]
    assert trace_breakdown.median_over_rounds([None]) is None
    assert "0.60" in trace_breakdown.breakdown_line(summary)


async def test_the_recorder_keeps_only_spans_that_started_in_its_window(tmp_path: Path) -> None:
    before = await traced_send()
    recorder = Recorder()
    recorder.add(received(before))  # not recording yet: dropped
    since = max(span.end_time for span in before)
    recorder.start(since)
    recorder.add(received(before))  # arrived late, but started before the window: dropped
    after = await traced_send()
    recorder.add(received(after))

    kept = recorder.dump(tmp_path / "spans.json", servers=1, seconds=60)  # one server span: no wait

    rows = json.loads((tmp_path / "spans.json").read_text())
    assert kept == len(rows) == 2
    assert {row["span"] for row in rows} == {format(span.context.span_id, "016x") for span in after}
    assert recorder.dump(tmp_path / "again.json", servers=1, seconds=60) == 0  # stopped: nothing kept
    assert json.loads((tmp_path / "again.json").read_text()) == []
