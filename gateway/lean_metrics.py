"""Histograms recorded without the OpenTelemetry SDK's per-measurement label handling.

On every ``record`` the SDK copies the labels into a ``Measurement``, cleans each one through a
generic recursive check, then copies and hashes them (sorted, each value tagged with its type)
to find the label set's aggregation: ~120k instructions with an RPC's eight labels, and a Send
records two histograms. The gateway's call sites pass a handful of label sets over and over,
already clean and built in a fixed order, and the RPC's one already has a key for ``CallCounts``.
So a ``LeanHistogram`` finds its label set's running aggregate by a key, in a dict, and
aggregates as the SDK's explicit-bucket histogram does (counts per bucket, sum, min, max, and
the last sampled measurement per bucket as an exemplar).

``LeanMeterProvider`` is the SDK's ``MeterProvider``, with its readers, exporters, resource,
exemplar filter and every other instrument unchanged; on each collection it adds the lean
histograms' points to what the SDK collected, in the reader's temporality, as the SDK would
have made them. Where it cannot stand in for the SDK (views configured, a reader that prefers
another histogram aggregation, the SDK disabled) it does not take the histograms, and they record
through the SDK's own instrument of the same name. The gateway's histograms are registered when
made, and ``set_meter_provider`` gives them to the provider it makes global, as the SDK's
instruments follow the global provider. ``tests/unit/test_lean_metrics.py`` checks the collected
points against the SDK's histogram, for both temporalities and several readers.

Written against opentelemetry-sdk 1.45 (pinned): the reader's collect callback, the provider's
measurement consumer and the readers' preferences are the SDK's internals.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from time import time_ns
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Exemplar, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics._internal.instrument import _Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.view import DefaultAggregation, ExplicitBucketHistogramAggregation
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AttributeValue

log = logging.getLogger("gateway.lean_metrics")

#: As the SDK's: past this many label sets, measurements go to one overflow point.
CARDINALITY_LIMIT = 2000
_OVERFLOW_KEY = object()  # no caller's key can be it
_OVERFLOW_LABELS: Mapping[str, AttributeValue] = {"otel.metric.overflow": True}

_registered: list[LeanHistogram] = []
LabelSets = dict[Hashable, Mapping[str, AttributeValue]]
_default_owner: LeanMeterProvider | None = None  # the global provider, which took the registered ones


@dataclass(slots=True)
class _Sample:
    """An exemplar: the last sampled measurement that fell in a bucket."""

    value: float
    time_unix_nano: int
    span_id: int | None
    trace_id: int | None


@dataclass(slots=True)
class _Cell:
    """One label set's aggregate over an interval."""

    counts: list[int]
    sum: float = 0
    min: float = math.inf
    max: float = -math.inf
    samples: dict[int, _Sample] | None = None

    def copy(self) -> _Cell:
        samples = dict(self.samples) if self.samples else None
        return _Cell(list(self.counts), self.sum, self.min, self.max, samples)

    def absorb(self, later: _Cell) -> None:
        """Adds a later interval: its exemplars replace this one's in the same bucket."""
        self.counts = [a + b for a, b in zip(self.counts, later.counts, strict=True)]
        self.sum += later.sum
        self.min = min(self.min, later.min)
        self.max = max(self.max, later.max)
        if later.samples:
            self.samples = {**(self.samples or {}), **later.samples}


class LeanHistogram:
    """A histogram with explicit buckets, recorded by label-set key (see the module's docstring).

    ``record`` takes labels whose values are str, int, float or bool, and a key that stands for
    them; without one, the labels' items are the key. A caller that passes its own key passes the
    same labels with it every time.
    """

    def __init__(
        self,
        scope: str,
        name: str,
        *,
        unit: str = "",
        description: str = "",
        boundaries: Sequence[float],
        register: bool = True,
    ) -> None:
        self.scope = InstrumentationScope(scope)
        self.name = name
        self.unit = unit
        self.description = description
        self.boundaries = tuple(boundaries)
        # Where measurements go while no LeanMeterProvider has taken this histogram.
        self._fallback = metrics.get_meter(scope).create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=self.boundaries
        )
        self._owner: LeanMeterProvider | None = None
        self._exemplar_filter: ExemplarFilter | None = None
        self._lock = threading.Lock()
        self._cells: dict[Hashable, _Cell] = {}  # since the owner last collected
        self._labels: LabelSets = {}  # every label set seen
        self._first_seen: dict[Hashable, int] = {}
        if register:
            _registered.append(self)
            if _default_owner is not None:  # made after the provider that takes registered ones
                _default_owner._take(self)

    def record(
        self,
        amount: float,
        labels: Mapping[str, AttributeValue],
        key: Hashable | None = None,
        *,
        context: Context | None = None,
    ) -> None:
        """``context``, as in the SDK's ``record``: whose span an exemplar names (the current one's
        if None)."""
        exemplar_filter = self._exemplar_filter
        if exemplar_filter is None:
            self._fallback.record(amount, labels, context)
            return
        if not 0 <= amount < math.inf:  # False for NaN too; the SDK ignores these as well
            log.warning("histogram %s ignored a measurement that is negative or not finite", self.name)
            return
        if key is None:
            key = frozenset(labels.items())
        now = time_ns()
        sample = None
        if context is None:
            context = otel_context.get_current()
        if exemplar_filter.should_sample(amount, now, labels, context):
            span = trace.get_current_span(context)
            if span is trace.INVALID_SPAN:
                sample = _Sample(amount, now, None, None)
            else:
                ids = span.get_span_context()
                sample = _Sample(amount, now, ids.span_id, ids.trace_id)
        index = bisect_left(self.boundaries, amount)
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                key = self._known(key, labels, now)
                cell = self._cells.get(key)
                if cell is None:
                    cell = self._cells[key] = _Cell([0] * (len(self.boundaries) + 1))
            cell.counts[index] += 1
            cell.sum += amount
            if amount < cell.min:
                cell.min = amount
            if amount > cell.max:
                cell.max = amount
            if sample is not None:
                if cell.samples is None:
                    cell.samples = {}
                cell.samples[index] = sample

    def _known(self, key: Hashable, labels: Mapping[str, AttributeValue], now: int) -> Hashable:
        """The key to aggregate under, the label set remembered (under the lock)."""
        if key in self._labels:
            return key
        if len(self._labels) >= CARDINALITY_LIMIT:
            key, labels = _OVERFLOW_KEY, _OVERFLOW_LABELS
            if key in self._labels:
                return key
        self._labels[key] = dict(labels)  # the caller may reuse its dict
        self._first_seen[key] = now
        return key

    def _bind(self, owner: LeanMeterProvider | None, exemplar_filter: ExemplarFilter | None) -> None:
        with self._lock:
            self._owner = owner
            self._exemplar_filter = exemplar_filter
            self._cells = {}
            self._labels = {}
            self._first_seen = {}

    def _drain(self) -> tuple[dict[Hashable, _Cell], LabelSets, dict[Hashable, int]]:
        with self._lock:
            cells, self._cells = self._cells, {}
            return cells, dict(self._labels), dict(self._first_seen)


@dataclass
class _ReaderView:
    """What one reader has been given of one histogram, for its temporality and its exemplars."""

    temporality: AggregationTemporality
    last_collection: int | None = None
    pending: dict[Hashable, _Cell] = field(default_factory=dict)  # since this reader last collected
    totals: dict[Hashable, _Cell] = field(default_factory=dict)  # cumulative readers only

    def take(self, interval: Mapping[Hashable, _Cell]) -> None:
        for key, cell in interval.items():
            mine = self.pending.get(key)
            if mine is None:
                self.pending[key] = cell.copy()
            else:
                mine.absorb(cell)

    def points(
        self,
        histogram: LeanHistogram,
        labels: LabelSets,
        first_seen: Mapping[Hashable, int],
        now: int,
    ) -> list[HistogramDataPoint]:
        """The reader's points, as the SDK's: a cumulative reader gets every label set since it was
        first seen; a delta reader gets those measured since its last collection (or first seen)."""
        pending, self.pending = self.pending, {}
        previous, self.last_collection = self.last_collection, now
        if self.temporality is AggregationTemporality.DELTA:
            shown = [(key, cell, previous or first_seen[key]) for key, cell in pending.items()]
        else:
            for key, cell in pending.items():
                total = self.totals.get(key)
                if total is None:
                    self.totals[key] = _Cell(list(cell.counts), cell.sum, cell.min, cell.max)
                else:
                    total.absorb(_Cell(cell.counts, cell.sum, cell.min, cell.max))
            shown = [(key, total, first_seen[key]) for key, total in self.totals.items()]
        points = []
        for key, cell, start in shown:
            attributes = labels[key]
            samples = pending[key].samples if key in pending else None
            # Exemplars are those sampled since this reader's last collection, in bucket order.
            exemplars = (
                [
                    Exemplar({} if attributes else None, s.value, s.time_unix_nano, s.span_id, s.trace_id)
                    for _, s in sorted(samples.items())
                ]
                if samples
                else []
            )
            points.append(
                HistogramDataPoint(
                    attributes=dict(attributes),
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    count=sum(cell.counts),
                    sum=cell.sum,
                    bucket_counts=tuple(cell.counts),
                    explicit_bounds=histogram.boundaries,
                    min=cell.min,
                    max=cell.max,
                    exemplars=exemplars,
                )
            )
        return points


class LeanMeterProvider(MeterProvider):
    """The SDK's meter provider, whose readers also collect the lean histograms it has taken:
    ``histograms``, and the gateway's own once ``set_meter_provider`` makes it the global one."""

    def __init__(
        self,
        metric_readers: Sequence[MetricReader] = (),
        *,
        histograms: Iterable[LeanHistogram] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(metric_readers=metric_readers, **kwargs)
        self._lean_lock = threading.Lock()
        self._views: dict[MetricReader, dict[LeanHistogram, _ReaderView]] = {}
        self._histograms: list[LeanHistogram] = []
        for reader in metric_readers:
            self._adopt(reader)
        self._refusal = self._cannot_stand_in(metric_readers)
        if self._refusal:
            log.info("histograms recorded by the SDK itself: %s", self._refusal)
            return
        for histogram in histograms:
            self._take(histogram)

    def _take_registered(self) -> None:
        global _default_owner
        if self._refusal:
            return
        for histogram in _registered:
            self._take(histogram)
        _default_owner = self

    def _take(self, histogram: LeanHistogram) -> None:
        with self._lean_lock:
            histogram._bind(self, self._sdk_config.exemplar_filter)
            self._histograms.append(histogram)
            for reader, views in self._views.items():
                views[histogram] = _ReaderView(reader._instrument_class_temporality[_Histogram])

    def _cannot_stand_in(self, readers: Sequence[MetricReader]) -> str | None:
        if self._disabled:
            return "the SDK is disabled"
        if self._sdk_config.views:
            return "views are configured"
        for reader in readers:
            if not _as_advised(reader):
                return f"{type(reader).__name__} prefers another histogram aggregation"
        return None

    def _adopt(self, reader: MetricReader) -> None:
        temporality = reader._instrument_class_temporality[_Histogram]
        with self._lean_lock:
            self._deal()  # what was recorded before the reader came is not the reader's, as in the SDK
            self._views[reader] = {h: _ReaderView(temporality) for h in self._histograms}
        # The SDK's annotation of the callback is not the signature it calls (reader, timeout_millis).
        reader._set_collect_callback(cast(Any, self._collect))

    def add_metric_reader(self, metric_reader: MetricReader) -> None:
        super().add_metric_reader(metric_reader)
        if self._histograms and not _as_advised(metric_reader):
            log.warning("%s gets explicit-bucket histograms: it was added after start", metric_reader)
        self._adopt(metric_reader)

    def remove_metric_reader(self, metric_reader: MetricReader) -> None:
        with self._lean_lock:
            self._views.pop(metric_reader, None)
        super().remove_metric_reader(metric_reader)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        global _default_owner
        if _default_owner is self:
            _default_owner = None
        super().shutdown(timeout_millis=timeout_millis)  # the readers' last collection has ours too
        for histogram in self._histograms:
            if histogram._owner is self:
                histogram._bind(None, None)

    def _deal(self) -> dict[LeanHistogram, tuple[LabelSets, dict[Hashable, int]]]:
        """Drains every histogram taken into every reader's view (under ``_lean_lock``): each
        reader is owed everything recorded since it came, whichever reader collects first."""
        known = {}
        for histogram in self._histograms:
            if histogram._owner is not self:
                continue
            interval, labels, first_seen = histogram._drain()
            for views in self._views.values():
                views[histogram].take(interval)
            known[histogram] = labels, first_seen
        return known

    def _collect(self, reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        collected = self._measurement_consumer.collect(reader, timeout_millis=timeout_millis)
        added: dict[InstrumentationScope, list[Metric]] = {}
        with self._lean_lock:
            now = time_ns()
            views = self._views.get(reader, {})
            for histogram, (labels, first_seen) in self._deal().items():
                view = views.get(histogram)
                if view is None:
                    continue
                points = view.points(histogram, labels, first_seen, now)
                if points:
                    data = HistogramData(data_points=points, aggregation_temporality=view.temporality)
                    metric = Metric(histogram.name, histogram.description, histogram.unit, data)
                    added.setdefault(histogram.scope, []).append(metric)
        return self._merged(collected, added)

    def _merged(
        self, collected: MetricsData | None, added: Mapping[InstrumentationScope, list[Metric]]
    ) -> MetricsData | None:
        if not added:
            return collected
        resource = self._sdk_config.resource
        if collected is None or not collected.resource_metrics:
            scopes: list[ScopeMetrics] = []
            schema_url = resource.schema_url
        else:
            first = collected.resource_metrics[0]
            scopes, schema_url = list(first.scope_metrics), first.schema_url
        for scope, found in added.items():
            for index, existing in enumerate(scopes):
                if existing.scope == scope:
                    scopes[index] = ScopeMetrics(
                        existing.scope, [*existing.metrics, *found], existing.schema_url
                    )
                    break
            else:
                scopes.append(ScopeMetrics(scope, found, scope.schema_url or ""))
        rest = collected.resource_metrics[1:] if collected is not None else []
        return MetricsData([ResourceMetrics(resource, scopes, schema_url), *rest])


def _as_advised(reader: MetricReader) -> bool:
    """Whether the reader aggregates histograms as a lean one does: explicit buckets, the
    instrument's own, with min and max (the OTLP exporters ask for that by name)."""
    aggregation = reader._instrument_class_aggregation[_Histogram]
    if isinstance(aggregation, DefaultAggregation):
        return True
    return (
        isinstance(aggregation, ExplicitBucketHistogramAggregation)
        and aggregation._boundaries is None
        and aggregation._record_min_max
    )


def set_meter_provider(provider: MeterProvider) -> None:
    """``metrics.set_meter_provider``, and the registered lean histograms follow the global
    provider as the SDK's instruments do: the first one set takes them, later ones do not."""
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is provider and isinstance(provider, LeanMeterProvider):
        provider._take_registered()
