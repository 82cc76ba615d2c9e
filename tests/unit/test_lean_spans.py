"""A LeanSpan records what the SDK's span records: the same calls on both export the same content.

Each test drives the SDK's provider and ours with one script (fixed ids and times) and compares what
the exporter receives, field by field, the OTLP bytes our encoder makes of it and the console
exporter's JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway.lean_spans import LeanSpan, LeanTracerProvider
from gateway.otlp_spans import encode_spans

T0 = 1_700_000_000_000_000_000
REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)


class Counting(IdGenerator):
    """Ids 1, 2, 3...: both providers give their spans the same ones."""

    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        # Spread over the id space, so that a ratio sampler keeps some traces and drops others.
        return (self.next * 0x9E3779B97F4A7C15F39CC0605CEDC835) % 2**128


Script = Callable[[trace.Tracer], None]


def exported(
    provider_class: type[TracerProvider], script: Script, limits: SpanLimits | None, sampler: Sampler | None
) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = provider_class(
        resource=Resource.create({"service.name": "test"}),
        id_generator=Counting(),
        span_limits=limits,
        **({"sampler": sampler} if sampler is not None else {}),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    script(provider.get_tracer("notify-gateway", "1.2.3"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def content(span: ReadableSpan) -> dict[str, Any]:
    def attributes(of: Any) -> list[tuple[str, Any]]:
        return list((of or {}).items())  # in order: the order decides which attribute a full span drops

    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "times": (span.start_time, span.end_time),
        "attributes": attributes(span.attributes),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "events": [
            (e.name, e.timestamp, attributes(e.attributes), e.dropped_attributes) for e in span.events
        ],
        "links": [
            (link.context, attributes(link.attributes), link.dropped_attributes) for link in span.links
        ],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
    }


def console(span: ReadableSpan) -> str:
    """What the console exporter prints; the SDK's own span cannot print a bytes value either."""
    try:
        return span.to_json()
    except TypeError as exc:
        return f"TypeError: {exc}"


def assert_same(script: Script, limits: SpanLimits | None = None, sampler: Sampler | None = None) -> None:
    sdk = exported(TracerProvider, script, limits, sampler)
    lean = exported(LeanTracerProvider, script, limits, sampler)
    assert all(isinstance(span, LeanSpan) for span in lean)
    assert [content(span) for span in lean] == [content(span) for span in sdk]
    if sdk:
        assert encode_spans(lean) == encode_spans(sdk)
        assert [console(span) for span in lean] == [console(span) for span in sdk]


def send_shaped(tracer: trace.Tracer) -> None:
    """The spans of a Send as the gateway opens them (tracing interceptor, adapter, transport)."""
    server = tracer.start_span(
        "notify.v1.NotificationService/Send",
        context=trace.set_span_in_context(trace.NonRecordingSpan(REMOTE)),
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "rpc.service": "notify.v1.NotificationService",
            "rpc.method": "Send",
        },
        start_time=T0,
    )
    vendor = tracer.start_span(
        "vendor wecom_app /cgi-bin/message/send",
        context=trace.set_span_in_context(server),
        kind=SpanKind.CLIENT,
        start_time=T0 + 10,
    )
    vendor.set_attributes({"notify.channel": "wecom_app", "notify.account": "corp-app"})
    vendor.set_attributes(
        {"http.request.method": "POST", "server.port": 8080, "url.full": "http://h/p?k=REDACTED"}
    )
    vendor.set_attribute("http.response.status_code", 200)
    vendor.set_attribute("notify.vendor.errcode", 40014)
    vendor.set_status(Status(StatusCode.ERROR, "vendor errcode 40014"))
    vendor.end(end_time=T0 + 20)
    server.set_attributes(
        {"notify.message_id": "m-1", "notify.redis.duration_ms": 0.513, "rpc.grpc.status_code": 0}
    )
    server.end(end_time=T0 + 30)


def test_a_send_shaped_like_the_gateways() -> None:
    assert_same(send_shaped)


def test_events_links_exceptions_names_and_status() -> None:
    def script(tracer: trace.Tracer) -> None:
        link = Link(REMOTE, {"why": "batch", "n": 2})
        span = tracer.start_span("first", links=[link, Link(SpanContext(0, 0, False))], start_time=T0)
        span.add_event("retry", {"attempt": 2, "list": [1, 2]}, timestamp=T0 + 1)
        span.add_link(REMOTE, {"later": True})
        try:
            raise ValueError("bad")
        except ValueError as exc:
            span.record_exception(exc, {"extra": "x"}, timestamp=T0 + 2)
        span.update_name("renamed")
        span.set_status(Status(StatusCode.OK))
        span.set_status(Status(StatusCode.ERROR, "ignored after OK"))
        span.end(end_time=T0 + 3)

    assert_same(script)


def test_a_span_used_as_a_context_manager_records_the_escaping_exception() -> None:
    def script(tracer: trace.Tracer) -> None:
        with pytest.raises(KeyError), tracer.start_as_current_span("outer", start_time=T0) as outer:
            with tracer.start_as_current_span("inner", start_time=T0 + 1):
                outer.set_attribute("k", "v")
            raise KeyError("missing")

    sdk = exported(TracerProvider, script, None, None)
    lean = exported(LeanTracerProvider, script, None, None)
    # The exception event's timestamp and the end times are the clock's; everything else must match.
    for ours, theirs in zip(lean, sdk, strict=True):
        a, b = content(ours), content(theirs)
        for fields in (a, b):
            fields["times"] = fields["times"][0]
            fields["events"] = [(name, attrs) for name, _, attrs, _ in fields["events"]]
        assert a == b
    assert lean[1].status.status_code is StatusCode.ERROR
    assert lean[1].events[0].name == "exception"


def test_after_its_end_a_span_changes_no_more(caplog: pytest.LogCaptureFixture) -> None:
    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("s", attributes={"a": 1}, start_time=T0)
        span.end(end_time=T0 + 1)
        span.set_attribute("b", 2)
        span.set_attributes({"c": 3})
        span.add_event("late", timestamp=T0 + 2)
        span.set_status(Status(StatusCode.ERROR, "late"))
        span.end(end_time=T0 + 5)

    with caplog.at_level(logging.WARNING):
        assert_same(script)
    assert any("ended span" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("sampler", "fewest", "most"),  # of the 40 spans (20 traces of two)
    [(ALWAYS_OFF, 0, 0), (ParentBased(TraceIdRatioBased(0.5)), 2, 38), (TraceIdRatioBased(0.0), 0, 0)],
    ids=["off", "half", "none"],
)
def test_sampling_decides_the_same_spans(sampler: Sampler, fewest: int, most: int) -> None:
    def script(tracer: trace.Tracer) -> None:
        for i in range(20):
            with tracer.start_as_current_span(f"root {i}", start_time=T0 + i, end_on_exit=False) as root:
                child = tracer.start_span("child", start_time=T0 + i)
                child.end(end_time=T0 + i + 1)
            root.end(end_time=T0 + i + 2)

    assert_same(script, sampler=sampler)
    assert fewest <= len(exported(LeanTracerProvider, script, None, sampler)) <= most


# Keys the SDK keeps, drops or converts; values of every kind it cleans.
keys = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e", ""]), st.sampled_from([7, None, b"k", (1, 2), object()])
)
# The values stored as they are (str, int, float, bool); ``values`` adds those the SDK cleans.
plain = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)
values = st.one_of(
    plain,
    st.none(),
    st.binary(max_size=4),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=3),
    st.tuples(st.booleans(), st.booleans()),
    st.dictionaries(st.sampled_from(["x", "y", ""]), st.integers(0, 3), max_size=2),
    st.just(object()),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set_attributes"), st.dictionaries(keys, values, max_size=6)),
        st.tuples(st.just("set_attribute"), st.tuples(keys, values)),
        st.tuples(st.just("start"), st.dictionaries(keys, values, max_size=4)),
        st.tuples(st.just("add_event"), st.dictionaries(keys, values, max_size=5)),
        # plain values under str keys, as the gateway's events have them: LeanSpan's own path
        st.tuples(st.just("add_event"), st.dictionaries(st.sampled_from("abcde"), plain, max_size=5)),
    ),
    max_size=8,
)
limits = st.builds(
    SpanLimits,
    max_span_attributes=st.sampled_from([0, 1, 3, 128]),
    max_span_attribute_length=st.sampled_from([None, 0, 3]),
    max_event_attributes=st.sampled_from([0, 1, 3, 128]),
    max_attribute_length=st.sampled_from([None, None, 3]),
)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(ops=operations, limits=limits)
def test_any_attributes_under_any_limits_are_kept_dropped_and_cleaned_alike(
    ops: list[tuple[str, Any]], limits: SpanLimits
) -> None:
    def script(tracer: trace.Tracer) -> None:
        span = tracer.start_span("s", start_time=T0)
        for op, argument in ops:
            if op == "set_attributes":
                span.set_attributes(argument)
            elif op == "set_attribute":
                span.set_attribute(*argument)
            elif op == "add_event":
                span.add_event("e", argument, timestamp=T0 + 1)
            else:  # a new span, started with these attributes
                span.end(end_time=T0 + 1)
                span = tracer.start_span("s", attributes=argument, start_time=T0)
        span.end(end_time=T0 + 1)

    assert_same(script, limits)
