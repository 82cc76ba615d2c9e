"""A local OTLP receiver that accepts and discards: `python -m bench.otlp_sink`.

The gateway's tracing is measured with the exporter its operators run, `exporter: otlp` (a
BatchSpanProcessor serialising every span to protobuf and shipping it, plus the periodic OTLP
metric export), and not with `none` (spans made, never serialised or sent) nor `console` (JSON
text to a file, a cost no one pays in production). Something has to answer those exports on
the same machine without being a cost of the gateway: this process, apart from the gateway so
the OS charges it with its own CPU.

It serves OTLP/gRPC, the gateway's default OTLP protocol (trace, metrics and logs services),
prints `READY <port>`, answers every export with an empty success, and counts what arrived. On
stdin, `stats` prints one JSON line (requests, bytes, spans received), so the runner can check
that spans really were exported.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections import Counter
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

COUNTS: Counter[str] = Counter()


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> int:
    return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    async def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        COUNTS["trace_requests"] += 1
        COUNTS["spans"] += _spans(request)
        COUNTS["bytes"] += request.ByteSize()
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    async def Export(self, request: Any, context: Any) -> metrics_service_pb2.ExportMetricsServiceResponse:
        COUNTS["metric_requests"] += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    async def Export(self, request: Any, context: Any) -> logs_service_pb2.ExportLogsServiceResponse:
        COUNTS["log_requests"] += 1
        return logs_service_pb2.ExportLogsServiceResponse()


async def serve() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)  # type: ignore[no-untyped-call]
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)  # type: ignore[no-untyped-call]
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {grpc_port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def commands() -> None:
        # A daemon thread: a blocked readline must not hold up the exit.
        for raw in sys.stdin:
            if raw.strip() == "stats":
                print(json.dumps(dict(COUNTS)), flush=True)
            elif raw.strip() == "quit":
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=commands, name="commands", daemon=True).start()
    await stop.wait()
    await server.stop(grace=0)


def main() -> int:
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
