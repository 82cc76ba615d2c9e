"""Our OTLP span encoder's bytes parse to what the library's encoder builds, field for field, cache bounded.

The property test's strategies are shared with tests/fuzz/test_otlp_encoding.py, which runs many
more cases under ``make fuzz``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as library_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.lean_spans import LeanTracerProvider
from gateway.otlp_spans import SpanEncoder, encode_spans

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TRACE_ID, SPAN_ID, PARENT_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 0x00F067AA0BA902B7


def assert_same(spans: Sequence[ReadableSpan], encoder: SpanEncoder | None = None) -> None:
    ours = encoder.encode(spans) if encoder is not None else encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == library_encode_spans(spans)


def assert_same_allowing_nan(spans: Sequence[ReadableSpan], encoder: SpanEncoder | None = None) -> None:
    """As ``assert_same``, for batches with NaN: NaN != NaN in message equality, so the messages are
    compared as protobuf serializes each, after ours is parsed (same fields, same bits)."""
    ours = encoder.encode(spans) if encoder is not None else encode_spans(spans)
    parsed = ExportTraceServiceRequest.FromString(ours)
    assert parsed.SerializeToString(deterministic=True) == library_encode_spans(spans).SerializeToString(
        deterministic=True
    )


def recorded(
    limits: SpanLimits | None = None,
    resource: Resource | None = None,
    provider_class: type[TracerProvider] = TracerProvider,
) -> tuple[Any, InMemorySpanExporter]:
    """A tracer on its own provider, and the exporter that keeps what it records: the SDK's spans,
    or the gateway's ``LeanSpan``s (``LeanTracerProvider``), whose fields the encoder reads directly."""
    exporter = InMemorySpanExporter()
    provider = provider_class(
        resource=resource or Resource.create({"service.name": "test"}), span_limits=limits
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("notify-gateway", "1.2.3"), exporter


def span(name: str = "span", **fields: Any) -> ReadableSpan:
    """A finished span built directly, for the fields a tracer would not set as a test needs them."""
    fields.setdefault("context", SpanContext(TRACE_ID, SPAN_ID, is_remote=False))
    fields.setdefault("start_time", 1_700_000_000_000_000_000)
    fields.setdefault("end_time", 1_700_000_000_001_000_000)
    return ReadableSpan(name, **fields)


PROVIDERS = pytest.mark.parametrize("provider_class", [TracerProvider, LeanTracerProvider])


@PROVIDERS
def test_a_send_shaped_like_the_gateways_encodes_as_the_library_does(
    provider_class: type[TracerProvider],
) -> None:
    tracer, exporter = recorded(provider_class=provider_class)
    for i in range(3):
        with tracer.start_as_current_span(
            "notify.v1.NotificationService/Send",
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.method": "Send",
                "notify.account": "team-wecom",
                "notify.message_id": f"msg-{i}",
                "rpc.grpc.status_code": 0,
                "notify.deduplicated": False,
            },
        ) as server:
            server.add_event("send.steps", {"admit": 0.0001 * i, "deliver": 0.012, "total": 0.0125})
            with tracer.start_as_current_span(
                "POST",
                kind=SpanKind.CLIENT,
                attributes={
                    "http.request.method": "POST",
                    "server.port": 443,
                    "url.full": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=REDACTED",
                    "http.response.status_code": 200,
                },
            ) as client:
                client.set_status(Status(StatusCode.OK))
    spans = exporter.get_finished_spans()
    assert len(spans) == 6
    assert_same(spans)
    assert_same(spans)  # the second time from the cache


def test_every_attribute_value_type_the_library_encodes() -> None:
    attributes: dict[str, Any] = {
        "str": "text",
        "empty": "",
        "unicode": "通知 ✓ \U0001f680",
        "true": True,
        "false": False,
        "zero": 0,
        "one": 1,
        "negative": -1,
        "int64 max": INT64_MAX,
        "int64 min": INT64_MIN,
        "float": 1.5,
        "negative zero": -0.0,
        "inf": math.inf,
        "-inf": -math.inf,
        "bytes": b"\x00\xff",
        "strings": ("a", "", "ü"),
        "bools": (True, False),
        "ints": (0, -1, INT64_MAX),
        "floats": (0.5, -2.0),
        "empty sequence": (),
        "list": [1, 2],
        "none": None,
        "mapping": {"inner": "value", 1: (True,), "nested": {"deep": 2.5}},
        "mixed sequence": ("a", 1, None, b"b"),
        "": "an empty key",
    }
    assert_same([span(attributes=attributes)])
    assert_same([span(attributes=attributes)])


def test_nan_encodes_as_the_library_does() -> None:
    assert_same_allowing_nan([span(attributes={"nan": math.nan, "nans": (math.nan, 1.0)})])


def test_values_the_library_cannot_encode_are_left_out_as_it_leaves_them_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attributes: dict[Any, Any] = {
        "kept": "yes",
        "past int64": INT64_MAX + 1,
        "below int64": INT64_MIN - 1,
        "in a sequence": (1, 2**64),
        "an object": object(),
        "a lone surrogate": "\udc80",
        "a set": {1},
        7: "a key that is not a string",
        "also kept": 2,
    }
    with caplog.at_level(logging.CRITICAL):  # both encoders log each one
        ours = ExportTraceServiceRequest.FromString(encode_spans([span(attributes=attributes)]))
        assert ours == library_encode_spans([span(attributes=attributes)])
    kept = [pair.key for pair in ours.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert kept == ["kept", "also kept"]


@PROVIDERS
def test_events_links_status_parent_and_dropped_counts(provider_class: type[TracerProvider]) -> None:
    limits = SpanLimits(
        max_span_attributes=3,
        max_events=2,
        max_links=2,
        max_event_attributes=2,
        max_link_attributes=1,
    )
    tracer, exporter = recorded(limits, provider_class=provider_class)
    remote_parent = SpanContext(
        TRACE_ID,
        PARENT_ID,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x=1")]),
    )
    links = [
        Link(SpanContext(TRACE_ID + 1, SPAN_ID + 1, is_remote=True), {"a": 1, "b": 2}),
        Link(SpanContext(TRACE_ID + 2, SPAN_ID + 2, is_remote=False, trace_state=TraceState([("k", "v")]))),
        Link(SpanContext(TRACE_ID + 3, SPAN_ID + 3, is_remote=False), {"c": "d"}),
    ]
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote_parent))
    with tracer.start_as_current_span("server", context=context, kind=SpanKind.SERVER, links=links) as server:
        server.set_attributes({"one": 1, "two": 2, "three": 3, "four": 4})
        for n in range(3):
            server.add_event(f"event {n}", {"x": n, "y": float(n), "z": str(n)})
        server.add_event("", {})
        server.set_status(Status(StatusCode.ERROR, "vendor refused: 45009"))
        for kind in (SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER):
            with tracer.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                child.set_status(Status(StatusCode.OK))
    spans = exporter.get_finished_spans()
    outer = spans[-1]
    assert (outer.dropped_attributes, outer.dropped_events, outer.dropped_links) == (1, 2, 1)
    assert outer.parent is not None and outer.parent.is_remote
    assert_same(spans)


def test_unset_fields_of_a_span_built_directly() -> None:
    bare = span("", start_time=None, end_time=None, status=Status(StatusCode.UNSET), parent=None)
    local_parent = span(parent=SpanContext(TRACE_ID, PARENT_ID, is_remote=False), status=None)
    events = [
        Event("no attributes", timestamp=5),
        Event("bounded", BoundedAttributes(1, {"a": 1, "b": 2}), 6),
    ]
    bounded = span(
        attributes=BoundedAttributes(2, {"a": 1, "b": 2, "c": 3}),
        events=BoundedList.from_seq(1, events),
        links=BoundedList.from_seq(1, [Link(SpanContext(1, 2, False)), Link(SpanContext(3, 4, True))]),
    )
    assert_same([bare, local_parent, bounded])


class _RenamedSpan(ReadableSpan):
    """A span class of someone else's whose properties differ from the fields behind them."""

    @property
    def name(self) -> str:
        return f"renamed {self._name}"

    @property
    def attributes(self) -> Mapping[str, Any]:
        return {**(self._attributes or {}), "added": True}

    @property
    def events(self) -> Sequence[Event]:
        return (*self._events, Event("added", {"n": 1}, 7))


def test_a_span_class_of_its_own_is_read_through_its_properties() -> None:
    renamed = _RenamedSpan("span", SpanContext(TRACE_ID, SPAN_ID, is_remote=False), attributes={"a": 1})
    assert_same([renamed])
    parsed = ExportTraceServiceRequest.FromString(encode_spans([renamed])).resource_spans[0]
    (encoded,) = parsed.scope_spans[0].spans
    assert encoded.name == "renamed span"
    assert [pair.key for pair in encoded.attributes] == ["a", "added"]
    assert [event.name for event in encoded.events] == ["added"]


def test_resources_and_scopes_are_grouped_in_first_seen_order() -> None:
    first = Resource(
        {"service.name": "a", "replica": 1}, schema_url="https://opentelemetry.io/schemas/1.21.0"
    )
    equal_to_first = Resource({"replica": 1, "service.name": "a"}, schema_url=first.schema_url)
    second = Resource({"service.name": "b"})
    empty = Resource({})
    scope = InstrumentationScope("notify-gateway", "1.0", "https://schema", {"scope.attribute": True})
    equal_scope = InstrumentationScope("notify-gateway", "1.0", "https://schema", {"scope.attribute": True})
    bare_scope = InstrumentationScope("")
    batch = [
        span("1", resource=second, instrumentation_scope=scope),
        span("2", resource=first, instrumentation_scope=bare_scope),
        span("3", resource=equal_to_first, instrumentation_scope=None),
        span("4", resource=second, instrumentation_scope=equal_scope),
        span("5", resource=first, instrumentation_scope=scope),
        span("6", resource=empty),
        span("7", resource=first, instrumentation_scope=bare_scope),
    ]
    assert_same(batch)
    assert_same(batch)
    parsed = ExportTraceServiceRequest.FromString(encode_spans(batch))
    assert [len(resource.scope_spans) for resource in parsed.resource_spans] == [1, 3, 1]


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == library_encode_spans([]).SerializeToString() == b""


def test_a_key_with_many_values_stops_being_cached_and_the_total_stays_bounded() -> None:
    encoder = SpanEncoder(values_per_key=8, max_entries=100)
    no_attributes = Resource({})
    for i in range(2000):
        attributes = {"notify.message_id": f"msg-{i}", "rpc.method": "Send"}
        assert_same([span(attributes=attributes, resource=no_attributes)], encoder)
        entries, _ = encoder.cache_size()
        assert entries <= 100
    entries, _ = encoder.cache_size()
    assert entries <= 1 + 1 + 1  # two keys, the one repeated value; the message id's values dropped
    for i in range(2000):
        assert_same([span(f"name {i}", attributes={f"key {i}": i, f"other {i % 7}": "v"})], encoder)
        entries, names = encoder.cache_size()
        assert entries <= 100
        assert names <= 100


def test_long_keys_names_and_values_are_encoded_but_not_cached() -> None:
    encoder = SpanEncoder(max_bytes=16)
    long = "x" * 17
    for i in range(3):
        attributes = {long: long, "k": long, f"{long}{i}": 1.5}
        assert_same([span(long, attributes=attributes, resource=Resource({}))], encoder)
    assert encoder.cache_size() == (1, 0)  # the key "k" alone


def test_an_int_value_and_a_bool_value_of_one_key_do_not_share_a_cache_entry() -> None:
    encoder = SpanEncoder()
    batch = [span(attributes={"flag": 1}), span(attributes={"flag": True}), span(attributes={"flag": "1"})]
    assert_same(batch, encoder)
    assert_same(list(reversed(batch)), encoder)


# Strategies for the property test, shared with tests/fuzz.
KEYS = st.one_of(st.sampled_from(["rpc.method", "notify.account", "server.port", "k"]), st.text(max_size=12))
SCALARS: Sequence[st.SearchStrategy[Any]] = (
    st.text(max_size=20),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=10),
)
SCALAR = st.one_of(*SCALARS, st.sampled_from(["POST", "grpc", "", "通知"]), st.integers(-2, 2))
VALUES = st.one_of(
    SCALAR,
    *(st.lists(scalar, max_size=4).map(tuple) for scalar in SCALARS),
    st.dictionaries(st.text(max_size=5), SCALAR, max_size=3),
    st.none(),
    st.integers(min_value=-(2**65), max_value=2**65),  # mostly outside int64: left out by both
    st.just("\ud800"),  # not UTF-8: left out by both
)
ATTRIBUTES = st.dictionaries(KEYS, VALUES, max_size=8)
IDS = st.integers(1, 2**64 - 1)
TIMES = st.one_of(st.none(), st.integers(0, 2**64 - 1))
COUNTS = st.integers(0, 3)


def bounded(attributes: Mapping[str, Any], dropped: int) -> BoundedAttributes:
    """Attributes with ``dropped`` of them dropped by the bound, as a span limit drops them."""
    keep = max(len(attributes) - dropped, 0)
    items = dict(attributes)
    items.update({f"dropped {n}": n for n in range(dropped)})
    result = BoundedAttributes(keep, immutable=False)
    for key, value in items.items():
        result[key] = value
    return result


@st.composite
def attribute_sets(draw: st.DrawFn) -> Mapping[str, Any]:
    """A dict, or attributes with some dropped by a bound (counted in dropped_attributes_count)."""
    attributes: Mapping[str, Any] = draw(ATTRIBUTES)
    return bounded(attributes, draw(COUNTS)) if draw(st.booleans()) else attributes


@st.composite
def span_contexts(draw: st.DrawFn) -> SpanContext:
    trace_state = draw(
        st.lists(st.tuples(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.just("v")), max_size=2)
    )
    return SpanContext(
        draw(st.integers(1, 2**128 - 1)), draw(IDS), draw(st.booleans()), trace_state=TraceState(trace_state)
    )


@st.composite
def readable_spans(
    draw: st.DrawFn, resources: Sequence[Resource], scopes: Sequence[InstrumentationScope | None]
) -> ReadableSpan:
    events = [
        Event(draw(st.text(max_size=8)), draw(attribute_sets()), draw(st.integers(0, 2**64 - 1)))
        for _ in range(draw(COUNTS))
    ]
    links = [Link(draw(span_contexts()), draw(attribute_sets())) for _ in range(draw(COUNTS))]
    attributes = draw(attribute_sets())
    description = draw(st.one_of(st.none(), st.text(max_size=10)))
    code = draw(st.sampled_from(list(StatusCode)))
    return ReadableSpan(
        draw(st.text(max_size=10)),
        context=draw(span_contexts()),
        parent=draw(st.one_of(st.none(), span_contexts())),
        resource=draw(st.sampled_from(resources)),
        attributes=attributes,
        events=BoundedList.from_seq(draw(st.integers(0, 3)), events) if draw(st.booleans()) else events,
        links=BoundedList.from_seq(draw(st.integers(0, 3)), links) if draw(st.booleans()) else links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=Status(code, description if code is StatusCode.ERROR else None),
        start_time=draw(TIMES),
        end_time=draw(TIMES),
        instrumentation_scope=draw(st.sampled_from(scopes)),
    )


@st.composite
def batches(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans over a few resources and scopes, some equal to one another without being the same object."""
    resources = [
        Resource(draw(st.dictionaries(KEYS, SCALAR, max_size=3)), schema_url=draw(st.sampled_from(["", "s"])))
        for _ in range(draw(st.integers(1, 3)))
    ]
    resources.append(Resource(dict(resources[0].attributes), schema_url=resources[0].schema_url))
    scopes: list[InstrumentationScope | None] = [
        InstrumentationScope(
            draw(st.text(max_size=6)),
            draw(st.one_of(st.none(), st.text(max_size=4))),
            draw(st.one_of(st.none(), st.just("https://schema"))),
            draw(ATTRIBUTES),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    scopes.append(None)
    return draw(st.lists(readable_spans(resources, scopes), max_size=6))


SMALL = SpanEncoder(
    values_per_key=2, max_entries=16, max_bytes=8, max_parts=2
)  # its bounds are reached often


def check_batch(batch: list[ReadableSpan]) -> None:
    """Ours (with the default cache, and a small one) parses to the library's message."""
    logging.disable(logging.CRITICAL)  # both encoders log each value they leave out
    try:
        assert_same_allowing_nan(batch)
        assert_same_allowing_nan(batch, SMALL)
    finally:
        logging.disable(logging.NOTSET)


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(batches())
def test_random_batches_encode_as_the_library_encodes_them(batch: list[ReadableSpan]) -> None:
    check_batch(batch)
