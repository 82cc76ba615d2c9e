"""A LeanHistogram exports what the SDK's histogram exports: the same records give the same points.

Each test records one script into an SDK histogram (its provider with a cumulative and a delta
reader) and into a LeanHistogram (a LeanMeterProvider with two such readers), collects each reader
at the same steps, and compares every point: labels, count, sum, buckets, bounds, min, max and
exemplars. Timestamps differ between the two by construction; their rules are tested apart.
Values are multiples of 1/1024, so sums are exact whichever order they are added in.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    Histogram,
    MeterProvider,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gateway import lean_metrics
from gateway.lean_metrics import LeanHistogram, LeanMeterProvider

SCOPE = "notify-gateway"
NAME = "test.lean.duration"
BOUNDARIES = (0.005, 0.01, 0.1, 1.0, 2.5)
DELTA = {Histogram: AggregationTemporality.DELTA}
SAMPLED = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, False, TraceFlags(1))
UNSAMPLED = SpanContext(0x1AF7651916CD43DD8448EB211C80319C, 0x10F067AA0BA902B7, False, TraceFlags(0))
LABEL_SETS: list[dict[str, Any]] = [
    {"rpc.method": "Send", "rpc.grpc.status_code": 0, "notify.channel": "wecom_app"},
    {"rpc.method": "Send", "rpc.grpc.status_code": 14, "notify.channel": "wecom_app"},
    {"rpc.method": "Recall", "rpc.grpc.status_code": 0},
    {},
]


@dataclass(frozen=True)
class Record:
    value: float
    labels: int  # an index into LABEL_SETS
    span: SpanContext | None = None


@dataclass(frozen=True)
class Collect:
    reader: int  # 0: the cumulative reader, 1: the delta one


Step = Record | Collect


class Pair:
    """The SDK's histogram and ours, each behind its own provider with the same two readers."""

    def __init__(
        self, exemplar_filter: ExemplarFilter | None = None, resource: Resource | None = None
    ) -> None:
        self.sdk_readers = [InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA)]
        self.lean_readers = [InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA)]
        self.sdk_provider = MeterProvider(
            self.sdk_readers, resource=resource, exemplar_filter=exemplar_filter, shutdown_on_exit=False
        )
        self.sdk = self.sdk_provider.get_meter(SCOPE).create_histogram(
            NAME, unit="s", description="test", explicit_bucket_boundaries_advisory=BOUNDARIES
        )
        self.lean = LeanHistogram(
            SCOPE, NAME, unit="s", description="test", boundaries=BOUNDARIES, register=False
        )
        self.lean_provider = LeanMeterProvider(
            self.lean_readers,
            resource=resource,
            exemplar_filter=exemplar_filter,
            shutdown_on_exit=False,
            histograms=[self.lean],
        )

    def record(self, step: Record) -> None:
        with _current(step.span):
            self.sdk.record(step.value, LABEL_SETS[step.labels])
            self.lean.record(step.value, LABEL_SETS[step.labels])

    def collect(self, reader: int) -> tuple[MetricsData | None, MetricsData | None]:
        return self.sdk_readers[reader].get_metrics_data(), self.lean_readers[reader].get_metrics_data()

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            if isinstance(step, Record):
                self.record(step)
            else:
                sdk, lean = self.collect(step.reader)
                assert points(lean) == points(sdk), step
        for reader in (0, 1):
            sdk, lean = self.collect(reader)
            assert points(lean) == points(sdk)


@contextmanager
def _current(span: SpanContext | None) -> Iterator[None]:
    if span is None:
        yield
        return
    with trace.use_span(NonRecordingSpan(span)):
        yield


def _histogram_points(data: MetricsData | None) -> list[tuple[Any, ...]]:
    """Every point of the test's histogram, as (scope, metric, temporality, point) without times."""
    found = []
    for resource_metrics in data.resource_metrics if data is not None else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != NAME:
                    continue
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    found.append((scope_metrics.scope, metric, point))
    return found


def points(data: MetricsData | None) -> list[tuple[Any, ...]]:
    shapes = []
    for scope, metric, point in _histogram_points(data):
        exemplars = tuple((e.filtered_attributes, e.value, e.span_id, e.trace_id) for e in point.exemplars)
        shapes.append(
            (
                scope.name,
                scope.version,
                metric.unit,
                metric.description,
                type(metric.data).__name__,
                metric.data.aggregation_temporality,
                sorted(point.attributes.items()),
                point.count,
                point.sum,
                point.bucket_counts,
                tuple(point.explicit_bounds),
                point.min,
                point.max,
                exemplars,
            )
        )
    return sorted(shapes, key=repr)


def test_a_sends_worth_of_records_collected_by_both_temporalities() -> None:
    steps: list[Step] = [
        Record(0.003, 0, SAMPLED),
        Record(0.005, 0, SAMPLED),  # on a boundary: the SDK counts it in the bucket below
        Record(0.0625, 1, UNSAMPLED),
        Record(3.0, 2),
        Collect(0),
        Record(0.5, 0, SAMPLED),
        Collect(1),
        Collect(1),  # nothing since: the delta reader gets no point, the cumulative one the same
        Collect(0),
        Record(1.0, 3, SAMPLED),
        Record(0.0, 3),
        Collect(0),
        Collect(1),
        # Two exemplars for one bucket, with the other reader's collection between them: the
        # cumulative reader gets the later one.
        Record(0.25, 0, SAMPLED),
        Collect(1),
        Record(0.375, 0, SAMPLED),
        Collect(0),
    ]
    Pair().run(steps)


@pytest.mark.parametrize("exemplar_filter", [AlwaysOnExemplarFilter(), AlwaysOffExemplarFilter()])
def test_exemplar_filters_are_the_providers(exemplar_filter: ExemplarFilter) -> None:
    steps: list[Step] = [Record(0.25, 0), Record(0.5, 0, SAMPLED), Record(0.5, 3, UNSAMPLED), Collect(1)]
    Pair(exemplar_filter).run(steps)


def test_values_the_sdk_ignores_are_ignored() -> None:
    steps: list[Step] = [
        Record(-1.0, 0),
        Record(math.nan, 0),
        Record(math.inf, 1),
        Record(0.5, 2),
        Collect(0),
    ]
    Pair().run(steps)


def test_past_the_cardinality_limit_measurements_go_to_the_overflow_point() -> None:
    pair = Pair()
    limit = lean_metrics.CARDINALITY_LIMIT
    for n in range(limit + 5):
        labels = {"n": n}
        pair.sdk.record(0.5, labels)
        pair.lean.record(0.5, labels)
    for reader in (0, 1):
        sdk, lean = pair.collect(reader)
        assert points(lean) == points(sdk)
        overflow = [
            p for _, _, p in _histogram_points(lean) if p.attributes == {"otel.metric.overflow": True}
        ]
        assert len(_histogram_points(lean)) == limit + 1 and overflow[0].count == 5


values = st.integers(min_value=0, max_value=4 * 1024).map(lambda n: n / 1024) | st.sampled_from(
    [*BOUNDARIES, 0.0, -0.5, math.inf, math.nan]
)
steps = st.lists(
    st.one_of(
        st.builds(
            Record,
            values,
            st.integers(min_value=0, max_value=len(LABEL_SETS) - 1),
            st.sampled_from([None, SAMPLED, UNSAMPLED]),
        ),
        st.builds(Collect, st.integers(min_value=0, max_value=1)),
    ),
    max_size=40,
)


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(steps)
def test_any_script_gives_the_sdks_points(script: list[Step]) -> None:
    Pair().run(script)


def test_times_follow_the_sdks_rules() -> None:
    """Cumulative: every point starts when its label set was first seen. Delta: at the reader's
    previous collection (or when first seen, before any). Every point ends at its collection."""
    pair = Pair()
    pair.lean.record(0.5, LABEL_SETS[0])
    first = pair.collect(0)[1], pair.collect(1)[1]
    pair.lean.record(0.5, LABEL_SETS[0])
    second = pair.collect(0)[1], pair.collect(1)[1]
    (_, _, c1), (_, _, d1) = _histogram_points(first[0])[0], _histogram_points(first[1])[0]
    (_, _, c2), (_, _, d2) = _histogram_points(second[0])[0], _histogram_points(second[1])[0]
    assert c1.start_time_unix_nano == c2.start_time_unix_nano == d1.start_time_unix_nano
    assert c1.start_time_unix_nano < c1.time_unix_nano < c2.time_unix_nano
    assert d2.start_time_unix_nano == d1.time_unix_nano < d2.time_unix_nano


def test_the_providers_other_metrics_and_resource_are_kept() -> None:
    resource = Resource.create({"service.name": "lean-test"})
    pair = Pair(resource=resource)
    assert pair.collect(0)[1] is None  # nothing recorded: nothing collected, as the SDK's
    counter = pair.lean_provider.get_meter(SCOPE).create_counter("test.lean.calls")
    counter.add(3, {"a": "b"})
    other = pair.lean_provider.get_meter("another-scope").create_counter("test.other")
    other.add(1)
    pair.lean.record(0.5, LABEL_SETS[0])
    data = pair.collect(0)[1]
    assert data is not None
    (resource_metrics,) = data.resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "lean-test"
    by_scope = {s.scope.name: sorted(m.name for m in s.metrics) for s in resource_metrics.scope_metrics}
    assert by_scope == {SCOPE: ["test.lean.calls", NAME], "another-scope": ["test.other"]}


def test_a_caller_key_stands_for_its_labels() -> None:
    pair = Pair()
    for value in (0.25, 0.5, 2.0):
        pair.sdk.record(value, LABEL_SETS[0])
        pair.lean.record(value, LABEL_SETS[0], key=("Send", 0, "wecom_app"))
    sdk, lean = pair.collect(0)
    assert points(lean) == points(sdk) and len(points(lean)) == 1


def test_a_reader_added_later_gets_what_is_recorded_after() -> None:
    pair = Pair()
    pair.lean.record(0.5, LABEL_SETS[0])
    late = InMemoryMetricReader()
    pair.lean_provider.add_metric_reader(late)
    pair.lean.record(2.0, LABEL_SETS[0])
    (_, _, point) = _histogram_points(late.get_metrics_data())[0]
    assert (point.count, point.sum) == (1, 2.0)
    pair.lean_provider.remove_metric_reader(late)
    assert pair.collect(0)[1] is not None


@pytest.mark.parametrize(
    "options",
    [
        {"views": [View(instrument_name=NAME, aggregation=ExplicitBucketHistogramAggregation((1.0,)))]},
        {
            "metric_readers": [
                InMemoryMetricReader(
                    preferred_aggregation={Histogram: ExplicitBucketHistogramAggregation((1.0,))}
                )
            ]
        },
        {
            "metric_readers": [
                InMemoryMetricReader(
                    preferred_aggregation={
                        Histogram: ExplicitBucketHistogramAggregation(record_min_max=False)
                    }
                )
            ]
        },
    ],
    ids=["views", "reader-boundaries", "reader-without-min-max"],
)
def test_where_it_cannot_stand_in_the_sdk_records(
    options: Mapping[str, Any], metric_reader: InMemoryMetricReader
) -> None:
    """Not taken: the histogram records through the SDK's instrument of the global provider."""
    histogram = LeanHistogram(SCOPE, "test.lean.fallback", boundaries=BOUNDARIES, register=False)
    provider = LeanMeterProvider(
        **{"metric_readers": [InMemoryMetricReader()], **options},
        histograms=[histogram],
        shutdown_on_exit=False,
    )
    histogram.record(0.5, {"a": "b"})
    names = {
        m.name
        for rm in (metric_reader.get_metrics_data() or MetricsData([])).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "test.lean.fallback" in names
    provider.shutdown()


class Kept(MetricExporter):
    """Keeps what a periodic reader exports."""

    def __init__(self) -> None:
        super().__init__()
        self.exported: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def test_shutdown_exports_the_last_interval_then_gives_the_histogram_back_to_the_sdk() -> None:
    """A periodic reader exports once more as the provider shuts down: that export has the
    histogram's last measurements. Then the histogram records through the SDK's instrument."""
    exporter = Kept()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    histogram = LeanHistogram(SCOPE, NAME, boundaries=BOUNDARIES, register=False)
    provider = LeanMeterProvider([reader], histograms=[histogram], shutdown_on_exit=False)
    histogram.record(0.5, LABEL_SETS[0])
    provider.shutdown()
    (_, _, point) = _histogram_points(exporter.exported[-1])[0]
    assert (point.count, point.sum) == (1, 0.5)
    assert histogram._owner is None and histogram._exemplar_filter is None


def test_the_global_provider_takes_the_gateways_histograms_and_no_other_does(
    metric_reader: InMemoryMetricReader,
) -> None:
    """As the SDK's instruments follow the first global provider, so do the registered histograms:
    the session's (installed by conftest as start-up installs it) has them, a later one does not."""
    from gateway.telemetry import rpc_duration, vendor_duration

    session = rpc_duration._owner
    assert isinstance(session, LeanMeterProvider) and vendor_duration._owner is session
    later = LeanMeterProvider([InMemoryMetricReader()], shutdown_on_exit=False)
    lean_metrics.set_meter_provider(later)  # refused by the API: the session's stays global
    assert rpc_duration._owner is session
    later.shutdown()
    assert rpc_duration._owner is session


def test_the_otlp_exporters_reader_is_served() -> None:
    """The OTLP metric exporters ask for explicit-bucket histograms by name, with no boundaries of
    their own: the same aggregation as the default, so the provider stands in for the SDK."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint="http://127.0.0.1:9"), export_interval_millis=3_600_000
    )
    histogram = LeanHistogram(SCOPE, "test.lean.otlp", boundaries=BOUNDARIES, register=False)
    provider = LeanMeterProvider([reader], histograms=[histogram], shutdown_on_exit=False)
    try:
        assert histogram._owner is provider
    finally:
        provider.shutdown(timeout_millis=1_000)


def _timeless_histogram_points(request: Any) -> list[Any]:
    """The histogram points of an OTLP export request, times zeroed, in a stable order (the SDK
    keeps a metric's points in the order their label sets were first seen)."""
    found = []
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.histogram.data_points:
                    point.start_time_unix_nano = point.time_unix_nano = 0
                    for exemplar in point.exemplars:
                        exemplar.time_unix_nano = 0
                    found.append(point)
                points = sorted(metric.histogram.data_points, key=lambda p: p.SerializeToString())
                del metric.histogram.data_points[:]
                metric.histogram.data_points.extend(points)
    return found


def test_the_otlp_encoding_is_the_sdks() -> None:
    """What the OTLP exporters send (their encoder's protobuf), with the times left out: the same
    for the SDK's histogram and ours, exemplars (trace and span ids) included."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    pair = Pair(resource=Resource.create({"service.name": "lean-test"}))
    for step in (
        Record(0.003, 0, SAMPLED),
        Record(0.5, 1, UNSAMPLED),
        Record(0.75, 2, SAMPLED),
        Record(7.0, 3),
    ):
        pair.record(step)
    for reader in (0, 1):
        sdk, lean = (encode_metrics(data) for data in pair.collect(reader) if data is not None)
        sdk_points, lean_points = _timeless_histogram_points(sdk), _timeless_histogram_points(lean)
        assert lean == sdk
        assert len(lean_points) == 4 and sum(len(p.exemplars) for p in lean_points) == 2
        assert {e.trace_id for p in sdk_points for e in p.exemplars} == {SAMPLED.trace_id.to_bytes(16, "big")}


def test_nothing_is_lost_or_counted_twice_while_readers_collect_from_other_threads() -> None:
    """The event loop records while a periodic reader (its own thread) and a Prometheus scrape
    (another) collect: every measurement reaches each reader exactly once."""
    pair = Pair()
    recorded = 20_000
    stop = threading.Event()
    delta_counts: list[int] = []

    def collect(reader: int) -> None:
        while not stop.is_set():
            _, lean = pair.collect(reader)
            if reader == 1:
                delta_counts.extend(p.count for _, _, p in _histogram_points(lean))

    threads = [threading.Thread(target=collect, args=(reader,)) for reader in (0, 1)]
    for thread in threads:
        thread.start()
    for n in range(recorded):
        pair.lean.record(0.5, LABEL_SETS[n % 2])
    stop.set()
    for thread in threads:
        thread.join()
    cumulative = _histogram_points(pair.collect(0)[1])
    delta_counts.extend(p.count for _, _, p in _histogram_points(pair.collect(1)[1]))
    assert sum(p.count for _, _, p in cumulative) == recorded
    assert sum(p.sum for _, _, p in cumulative) == recorded * 0.5
    assert sum(delta_counts) == recorded


def test_a_context_given_names_its_span_in_the_exemplar_as_the_sdks_does() -> None:
    pair = Pair()
    given = trace.set_span_in_context(NonRecordingSpan(SAMPLED))
    with _current(UNSAMPLED):  # the current span is not the one the exemplar names
        pair.sdk.record(0.5, LABEL_SETS[0], context=given)
        pair.lean.record(0.5, LABEL_SETS[0], context=given)
    sdk, lean = pair.collect(0)
    assert points(lean) == points(sdk)
    (_, _, point) = _histogram_points(lean)[0]
    assert [(e.trace_id, e.span_id) for e in point.exemplars] == [(SAMPLED.trace_id, SAMPLED.span_id)]
