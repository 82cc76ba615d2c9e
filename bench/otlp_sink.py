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

For the latency phase's breakdown (bench.trace_breakdown) it can also keep what the spans say:
`record <unix ns>` starts keeping a summary of each span that arrives and started at or after that
time (ids, name, kind, times, and the chain's `*.steps` event), and `dump <path> <server spans>
<seconds>` waits until that many server spans arrived or the seconds passed (the gateway's batch
exporter sends every few seconds), writes the summaries to `<path>` as JSON, stops keeping them
and prints `DUMPED <spans>`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

COUNTS: Counter[str] = Counter()
MAX_KEPT = 100_000  # span summaries kept between `record` and `dump`: the sink's memory stays bounded
SERVER_KIND = 2  # SpanKind.SPAN_KIND_SERVER in OTLP


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> int:
    return sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)


def span_summaries(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """What bench.trace_breakdown reads of each span: where it sits in its trace, its times, and
    the numbers of a `<chain>.steps` event (each step's own milliseconds)."""
    rows = []
    for resource_spans in request.resource_spans:
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                steps = {}
                for event in span.events:
                    if event.name.endswith(".steps"):
                        for attribute in event.attributes:
                            if attribute.value.HasField("double_value"):
                                steps[attribute.key] = attribute.value.double_value
                rows.append(
                    {
                        "trace": span.trace_id.hex(),
                        "span": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": span.kind,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "steps": steps,
                    }
                )
    return rows


class Recorder:
    """The span summaries kept between `record` and `dump`; exports arrive on the event loop's
    thread, commands on the command thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] | None = None  # None: not recording
        self._servers = 0
        self._since = 0

    def start(self, since_ns: int) -> None:
        with self._lock:
            self._rows, self._servers, self._since = [], 0, since_ns

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            rows = self._rows
            if rows is None:
                return
            for row in span_summaries(request):
                if row["start_ns"] >= self._since and len(rows) < MAX_KEPT:
                    rows.append(row)
                    self._servers += row["kind"] == SERVER_KIND

    def dump(self, path: Path, servers: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if self._rows is None or self._servers >= servers or len(self._rows) >= MAX_KEPT:
                    break
            time.sleep(0.05)
        with self._lock:
            rows, self._rows = self._rows or [], None
        path.write_text(json.dumps(rows))
        return len(rows)


RECORDER = Recorder()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    async def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        COUNTS["trace_requests"] += 1
        COUNTS["spans"] += _spans(request)
        COUNTS["bytes"] += request.ByteSize()
        RECORDER.add(request)
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
            command, *args = raw.split() or [""]
            if command == "stats":
                print(json.dumps(dict(COUNTS)), flush=True)
            elif command == "record":
                RECORDER.start(int(args[0]))
            elif command == "dump":
                kept = RECORDER.dump(Path(args[0]), int(args[1]), float(args[2]))
                print(f"DUMPED {kept}", flush=True)
            elif command == "quit":
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
