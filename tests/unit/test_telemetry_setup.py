"""The exporters a config names are the ones the gateway builds (no collector is needed to check)."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from gateway.config import parse_config
from gateway.lean_spans import LeanSpan, LeanTracerProvider
from gateway.telemetry import TelemetryOptions, _http_url, _metric_exporter, _span_exporter, setup_telemetry


def options(text: str) -> TelemetryOptions:
    return TelemetryOptions(**parse_config(f"auth: none\n{text}").telemetry.model_dump())


def test_the_tracer_provider_records_lean_spans() -> None:
    # The session's providers are installed already, so the global stays as it is: this checks
    # what setup_telemetry builds, with the sampler the options name.
    provider = setup_telemetry(TelemetryOptions(sample_ratio=1.0))
    try:
        assert isinstance(provider, LeanTracerProvider)
        span = provider.get_tracer("notify-gateway").start_span("Send")
        assert isinstance(span, LeanSpan) and span.is_recording()
        span.end()
    finally:
        provider.shutdown()


def test_none_exports_nothing() -> None:
    assert _span_exporter(options("telemetry: {exporter: none}")) is None


def test_console_prints_spans() -> None:
    assert isinstance(_span_exporter(options("telemetry: {exporter: console}")), ConsoleSpanExporter)


def test_otlp_over_grpc_is_the_default_protocol() -> None:
    chosen = options("telemetry: {exporter: otlp, endpoint: 'http://127.0.0.1:4317'}")
    assert isinstance(_span_exporter(chosen), GrpcSpans)
    assert isinstance(_metric_exporter(chosen), GrpcMetrics)


def test_otlp_over_http_when_asked() -> None:
    chosen = options(
        "telemetry: {exporter: otlp, protocol: http, endpoint: 'http://127.0.0.1:4318/v1/traces'}"
    )
    assert isinstance(_span_exporter(chosen), HttpSpans)
    assert isinstance(_metric_exporter(chosen), HttpMetrics)


def test_otlp_over_http_posts_each_signal_to_its_own_path() -> None:
    for endpoint in ("http://collector:4318", "http://collector:4318/", "http://collector:4318/v1/traces"):
        chosen = options(f"telemetry: {{exporter: otlp, protocol: http, endpoint: '{endpoint}'}}")
        assert _http_url(chosen.endpoint or "", "traces") == "http://collector:4318/v1/traces"
        assert _http_url(chosen.endpoint or "", "metrics") == "http://collector:4318/v1/metrics"
        # The exporters keep the URL they post to in _endpoint (opentelemetry-exporter-otlp-proto-http).
        assert getattr(_span_exporter(chosen), "_endpoint", None) == "http://collector:4318/v1/traces"
        assert getattr(_metric_exporter(chosen), "_endpoint", None) == "http://collector:4318/v1/metrics"


def test_sample_ratio_is_validated() -> None:
    assert options("telemetry: {sample_ratio: 0.25}").sample_ratio == 0.25
