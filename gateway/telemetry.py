"""OpenTelemetry for the gateway: providers and exporters from config, and the instruments we record.

Code everywhere asks the global API (``trace.get_tracer``, ``metrics.get_meter``), which proxies
to whatever providers ``setup_telemetry`` installs at start-up; tests install in-memory ones the
same way. Nothing here ever records a credential: URLs pass through ``redaction.redact``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from gateway.lean_metrics import LeanHistogram, LeanMeterProvider, set_meter_provider
from gateway.lean_spans import LeanTracerProvider
from gateway.log_writer import dropped_lines

log = logging.getLogger("gateway.telemetry")

INSTRUMENTATION = "notify-gateway"
tracer = trace.get_tracer(INSTRUMENTATION)
meter = metrics.get_meter(INSTRUMENTATION)


class CallCounts:
    """``notify.rpc.calls``: counted here per label set, handed to the SDK when a reader collects.

    The SDK cleans, copies and hashes a measurement's labels on every ``add`` (~8 µs of CPU with
    the eight labels of an RPC), and every RPC also records ``rpc.server.call.duration`` with the
    same labels. Counting in a dict keyed by the labels' values costs well under a microsecond;
    the exported metric (a monotonic cumulative sum, by the same name and labels) is the same.
    Bounded as the labels are: accounts and tenants are configured ones, codes and methods few.
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[AttributeValue | None, ...], list[Any]] = {}

    def labels(self, key: tuple[AttributeValue | None, ...]) -> dict[str, AttributeValue] | None:
        """The labels counted under ``key`` (None: not seen yet), for the duration's record too."""
        entry = self._counts.get(key)
        return entry[1] if entry is not None else None

    def add(self, key: tuple[AttributeValue | None, ...], labels: dict[str, AttributeValue]) -> None:
        entry = self._counts.get(key)
        if entry is None:
            self._counts[key] = [1, labels]
        else:
            entry[0] += 1

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # Runs in the reader's thread: list() copies the values in one step under the GIL, while
        # the event loop may be adding a label set.
        return [Observation(count, labels) for count, labels in list(self._counts.values())]


# What an SRE watches: sends by outcome, vendor errors by code, vendor latency, token fetches.
call_counts = CallCounts()
rpc_calls = meter.create_observable_counter(
    "notify.rpc.calls", callbacks=[call_counts.observe], description="RPCs served, by method and gRPC status"
)
vendor_errors = meter.create_counter(
    "notify.vendor.errors", description="Vendor answers with a non-zero errcode"
)
# The SDK's default buckets are milliseconds (0, 5, 10 ... 10000): on a seconds unit every call up to
# 5 s would land in one bucket. These span a fast vendor answer to one that takes a long deadline.
VENDOR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A Send that stays in the gateway (refused, deduplicated) takes about a millisecond; one that waits
# for a rate-limit slot or retries a vendor can take up to its deadline.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Recorded on every Send: lean histograms (gateway/lean_metrics.py) cost a dict lookup per sample
# where the SDK's instrument cleans and hashes the labels each time; exported the same.
vendor_duration = LeanHistogram(
    INSTRUMENTATION,
    "notify.vendor.duration",
    unit="s",
    description="Vendor HTTP call latency, per attempt",
    boundaries=VENDOR_BUCKETS,
)
# The installed semantic conventions (0.66b2) name the seconds histogram rpc.server.call.duration and
# deprecate rpc.server.duration, whose unit is ms; attributes are the server span's, so they join.
rpc_duration = LeanHistogram(
    INSTRUMENTATION,
    "rpc.server.call.duration",
    unit="s",
    description="Duration of RPCs served, as long as their server span",
    boundaries=RPC_BUCKETS,
)
token_fetches = meter.create_counter(
    "notify.token.fetches", description="gettoken calls made by this replica, by account and outcome"
)
rate_limit_refusals = meter.create_counter(
    "notify.rate_limit.refusals",
    description="Sends refused by a rate limit, by scope (tenant or account) and account",
)
vendor_retries = meter.create_counter(
    "notify.vendor.retries", description="Vendor calls attempted again, by channel and reason"
)


def _observe_dropped_lines(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(dropped_lines())]


log_dropped_lines = meter.create_observable_counter(
    "notify.log.dropped_lines",
    callbacks=[_observe_dropped_lines],
    description="Log lines dropped because the log stream did not take them as fast as they came",
)


@dataclass(frozen=True)
class TelemetryOptions:
    exporter: Literal["none", "console", "otlp"] = "none"
    endpoint: str | None = None
    protocol: Literal["grpc", "http"] = "grpc"
    prometheus_listen: str | None = None
    service_name: str = "notify-gateway"
    sample_ratio: float = 1.0


def setup_telemetry(options: TelemetryOptions) -> TracerProvider:
    """Installs the global tracer and meter providers; call once per process, before serving."""
    resource = Resource.create({"service.name": options.service_name})
    # Spans cost CPU on every Send (bench/README.md has the figures): a ratio below 1 records
    # that share of traces; a caller that sends a sampled traceparent is always recorded.
    sampler = ParentBased(TraceIdRatioBased(options.sample_ratio))
    # The SDK's provider, recording spans without its per-attribute cost (gateway/lean_spans.py).
    tracer_provider = LeanTracerProvider(resource=resource, sampler=sampler)
    span_exporter = _span_exporter(options)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)

    readers: list[MetricReader] = []
    if options.exporter == "otlp":
        readers.append(PeriodicExportingMetricReader(_metric_exporter(options)))
    if options.prometheus_listen:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host, _, port = options.prometheus_listen.rpartition(":")
        start_http_server(int(port), addr=host)
        readers.append(PrometheusMetricReader())
    # The SDK's provider, whose readers also collect the lean histograms (gateway/lean_metrics.py).
    set_meter_provider(LeanMeterProvider(readers, resource=resource))
    log.info(
        "telemetry ready",
        extra={
            "exporter": options.exporter,
            "endpoint": options.endpoint,
            "prometheus": options.prometheus_listen,
        },
    )
    return tracer_provider


def _span_exporter(options: TelemetryOptions) -> SpanExporter | None:
    if options.exporter == "console":
        return ConsoleSpanExporter()
    if options.exporter == "otlp":
        if options.protocol == "http":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

            return (
                HttpSpans(endpoint=_http_url(options.endpoint, "traces")) if options.endpoint else HttpSpans()
            )
        # The library's exporter with our encoder (gateway/otlp_spans.py): same channel, retries, metrics.
        from gateway.otlp_spans import GrpcSpanExporter

        return GrpcSpanExporter(endpoint=options.endpoint) if options.endpoint else GrpcSpanExporter()
    return None


def _http_url(endpoint: str, signal: str) -> str:
    """The collector's base URL plus the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT works: the
    OTLP/HTTP exporters post to an explicit endpoint as it is, so one URL for both would send spans
    and metrics to the same path. A URL given with a signal's path already is taken as its base."""
    base = endpoint.rstrip("/")
    for known in ("/v1/traces", "/v1/metrics"):
        base = base.removesuffix(known)
    return f"{base}/v1/{signal}"


def _metric_exporter(options: TelemetryOptions) -> MetricExporter:
    if options.protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

        return (
            HttpMetrics(endpoint=_http_url(options.endpoint, "metrics"))
            if options.endpoint
            else HttpMetrics()
        )
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

    return GrpcMetrics(endpoint=options.endpoint) if options.endpoint else GrpcMetrics()


class RedisTally:
    """The Redis operations made for one call, counted and timed instead of given a span each.

    A span per operation cost ~20 µs of CPU each, two or three per Send, for what an SRE reads as
    one figure: how many round trips the call made and how long they took. The server span (or a
    queued delivery's) carries them as ``notify.redis.calls`` and ``notify.redis.duration_ms``.
    """

    __slots__ = ("calls", "closed", "seconds")

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        # Set once the call's span has its figures: work the call left running (a record written
        # after the answer) is then traced with spans of its own rather than counted unseen.
        self.closed = False

    def record_on(self, span: trace.Span) -> None:
        """Writes the figures on ``span`` and closes the tally."""
        span.set_attributes(self.close())

    def close(self) -> dict[str, AttributeValue]:
        """Closes the tally and returns its figures, for a caller that writes them with others."""
        self.closed = True
        return {"notify.redis.calls": self.calls, "notify.redis.duration_ms": round(self.seconds * 1000, 3)}


#: Stands for "this call is not recorded" (sampled out): its Redis operations are neither timed nor traced.
UNRECORDED = RedisTally()

#: The tally of the call being served. None outside any call (start-up, health checks, a background
#: token refresh): there each Redis operation keeps a client span of its own.
redis_tally: ContextVar[RedisTally | None] = ContextVar("redis_tally", default=None)


#: What the call's chain found out (``notify.account``, ``notify.message_id``, labels, the gRPC
#: code...), gathered over the call and written on the server span once, as the call ends: one
#: ``set_attributes`` takes the span's lock once where a ``set_attribute`` per fact took it ten times
#: (~5 µs of CPU instead of ~8.5 for a Send's). The metrics and the access log read the facts here,
#: which a call not sampled keeps too (its span keeps none). None outside a gRPC call (a queue
#: worker's delivery): facts go straight to the span.
call_facts: ContextVar[dict[str, AttributeValue] | None] = ContextVar("call_facts", default=None)


def tally_for(span: trace.Span) -> RedisTally:
    """A new tally for a call whose span is ``span``; ``UNRECORDED`` if the span is not recorded."""
    return RedisTally() if span.is_recording() else UNRECORDED


class current_span:  # noqa: N801 - used like the context manager it replaces
    """``tracer.start_as_current_span`` without its two generator-based context managers.

    Every Send opens a few spans (server, vendor attempt, a token fetch), so their bookkeeping is
    on the hot path: this does the same (start, make current, end; mark an escaping
    exception as an error, unless ``error_on_exception=False``) with plain calls.
    """

    __slots__ = ("_attributes", "_context", "_error_on_exception", "_kind", "_name", "_span", "_token")

    def __init__(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        context: Context | None = None,
        error_on_exception: bool = True,
    ) -> None:
        self._name, self._kind, self._attributes, self._context = name, kind, attributes, context
        self._error_on_exception = error_on_exception

    def __enter__(self) -> trace.Span:
        self._span = tracer.start_span(
            self._name, context=self._context, kind=self._kind, attributes=self._attributes
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._token)
        if exc is not None and self._error_on_exception and self._span.is_recording():
            status = getattr(self._span, "status", None)
            if status is None or status.status_code is StatusCode.UNSET:  # keep a status set on purpose
                self._span.set_status(Status(StatusCode.ERROR, exc_type.__name__ if exc_type else "error"))
        self._span.end()
