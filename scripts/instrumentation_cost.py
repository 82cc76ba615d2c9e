"""CPU per call of the standard OpenTelemetry instrumentations against the gateway's hand-written spans.

Decided which stay hand-written (gateway/interceptors/tracing.py, gateway/store/redis_connection.py):
- Redis: ``opentelemetry-instrumentation-redis`` (a span per command) against ``traced`` (a span
  per store operation outside a call; inside one, a count on the call's tally), on GET against the
  Redis at 127.0.0.1:6379;
- gRPC server: ``opentelemetry-instrumentation-grpc``'s aio interceptor against ``TracingInterceptor``
  (which also records the RPC metrics), on a unary echo call (client and server in this process).
Both run inside a server span, the SDK on with a batch processor whose exporter drops the spans.
The instrumentations are not dependencies: ``.venv/bin/pip install
opentelemetry-instrumentation-redis==0.66b2 opentelemetry-instrumentation-grpc==0.66b2`` first.
(``-aiohttp-client`` has no 0.66b2 release; 0.66b1 pins opentelemetry-api 1.45.1, this SDK 1.45.2.)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.interceptors.tracing import TracingInterceptor
from gateway.store.redis_connection import connect, traced
from gateway.telemetry import RedisTally, current_span, redis_tally

CALLS = 2000


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def median_of_rounds(figures: dict[str, list[float]]) -> None:
    for name, values in figures.items():
        print(f"  {name:<36} {statistics.median(values):8.1f} µs CPU per call")


async def cpu_per_call(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.process_time()
    for _ in range(CALLS):
        with current_span("server"):
            await call()
    return (time.process_time() - started) / CALLS * 1e6


async def redis_cost() -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    class Store:
        def __init__(self) -> None:
            self.client = connect("redis://127.0.0.1:6379/0")

        @traced("GET")
        async def get(self) -> Any:
            return await self.client.get("instrumentation-cost")

    bare, hand, instrumented = (
        connect("redis://127.0.0.1:6379/0"),
        Store(),
        connect("redis://127.0.0.1:6379/0"),
    )
    RedisInstrumentor.instrument_client(instrumented)

    async def hand_in_a_call() -> Any:
        tallying = redis_tally.set(RedisTally())  # what the tracing interceptor sets for an RPC
        try:
            return await hand.get()
        finally:
            redis_tally.reset(tallying)

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "no Redis span": lambda: bare.get("instrumentation-cost"),
        "hand-written traced (per operation)": hand.get,
        "hand-written traced, in a call (tally)": hand_in_a_call,
        "RedisInstrumentor (per command)": lambda: instrumented.get("instrumentation-cost"),
    }
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(5):
        for name, call in variants.items():
            figures[name].append(await cpu_per_call(call))
    print("Redis GET, inside a server span:")
    median_of_rounds(figures)


async def grpc_cost() -> None:
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    async def per_call(interceptors: list[Any]) -> float:
        server = grpc.aio.server(interceptors=interceptors)
        handler = grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=bytes, response_serializer=bytes
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", {"Call": handler}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.Echo/Call", request_serializer=bytes, response_deserializer=bytes)
            for _ in range(200):
                await call(b"x")
            started = time.process_time()
            for _ in range(CALLS):
                await call(b"x")
            cost = (time.process_time() - started) / CALLS * 1e6
        await server.stop(None)
        return cost

    variants: dict[str, Callable[[], list[Any]]] = {
        "no interceptor": list,
        "TracingInterceptor (span + metrics)": lambda: [TracingInterceptor()],
        "otel aio_server_interceptor (span)": lambda: [aio_server_interceptor()],
    }
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):
        for name, make in variants.items():
            figures[name].append(await per_call(make()))
    print("gRPC unary echo (client and server in one process):")
    median_of_rounds(figures)


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=65536))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider())
    asyncio.run(redis_cost())
    asyncio.run(grpc_cost())
    provider.shutdown()


if __name__ == "__main__":
    main()
