"""GrpcSpanExporter sends our encoder's bytes through the library's exporter to a real TraceService.

A collector stand-in on a free loopback port records each request as it parsed it; the exporter
keeps the library's retries and reconnection, checked against a collector that is UNAVAILABLE once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as library_encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.lean_spans import LeanTracerProvider
from gateway.otlp_spans import GrpcSpanExporter


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Records each Export; answers UNAVAILABLE (retry after 50 ms) to the first ``unavailable`` calls."""

    def __init__(self, unavailable: int = 0) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.calls = 0
        self.unavailable = unavailable

    def Export(
        self, request: Any, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.calls += 1
        if self.calls <= self.unavailable:
            retry = RetryInfo(retry_delay=Duration(nanos=50_000_000))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry.SerializeToString()),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector starting")
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def serve(collector: Collector) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def spans() -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = LeanTracerProvider(
        resource=Resource.create({"service.name": "notify-gateway"})
    )  # the gateway's
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("notify-gateway")
    with tracer.start_as_current_span(
        "Send", kind=SpanKind.SERVER, attributes={"rpc.method": "Send"}
    ) as server:
        server.add_event("send.steps", {"total": 0.0125})
        with tracer.start_as_current_span(
            "POST", kind=SpanKind.CLIENT, attributes={"server.port": 443}
        ) as client:
            client.set_status(Status(StatusCode.OK))
    return exporter.get_finished_spans()


@pytest.fixture
def collector(request: pytest.FixtureRequest) -> Iterator[tuple[Collector, str]]:
    collector = Collector(unavailable=getattr(request, "param", 0))
    server, endpoint = serve(collector)
    yield collector, endpoint
    server.stop(grace=None)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_the_collector_receives_what_the_library_would_have_sent(
    collector: tuple[Collector, str], spans: tuple[ReadableSpan, ...], compression: grpc.Compression
) -> None:
    received, endpoint = collector
    exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=5, compression=compression)
    assert isinstance(exporter._translate_data(spans), bytes)  # what the stub sends as it is
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert received.requests == [library_encode_spans(spans)]


@pytest.mark.parametrize("collector", [1], indirect=True)
def test_an_unavailable_collector_is_retried_on_a_new_channel(
    collector: tuple[Collector, str], spans: tuple[ReadableSpan, ...]
) -> None:
    received, endpoint = collector
    exporter = GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=5)
    first_channel = exporter._channel
    started = time.monotonic()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert time.monotonic() - started < 3  # the collector asked for 50 ms; the library's own backoff is ~1 s
    assert received.calls == 2
    assert received.requests == [library_encode_spans(spans)]
    assert exporter._channel is not first_channel  # the library re-created the channel, with our stub
