"""What a Send's time at concurrency 1 is made of, read from the spans the gateway exported.

The latency phase's Sends are traced like every other (everything on: every trace recorded and
exported to bench.otlp_sink), so their spans already say where the time went, with no hook in the
gateway: the server span (the interceptors' start to the answer handed to grpc), the chain's
`send.steps` event (each step's own time, Redis scripts included: the admission script in
`deduplicate` when the Send has an idempotency key, else in `record_message`; the outcome in
`deliver`), and the vendor's client span (the HTTP request, inside `deliver`).

Each segment's figure is its median over the Sends, so the figures need not add up to the server
span's median; the time outside the server span (the client, the gRPC hop, grpc's server work
before the first interceptor and after the answer) is the client's p50 minus the server span's.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.phases import latency_summary
from bench.procs import Child

SERVER_KIND = 2  # OTLP's SPAN_KIND_SERVER
CLIENT_KIND = 3  # OTLP's SPAN_KIND_CLIENT
SEND_SPAN_SUFFIX = "/Send"
VENDOR_STEP = "deliver"  # the step that makes the vendor call: its own time holds the client span's
EXPORT_WAIT_SECONDS = 20.0  # the batch exporter sends every 5 s (the SDK's default) or 512 spans


class TraceWindow:
    """The spans of the Sends made from now until `breakdown`, as the OTLP sink received them."""

    def __init__(self, sink: Child, path: Path) -> None:
        self.sink, self.path = sink, path
        sink.send(f"record {time.time_ns()}")

    def breakdown(self, sends: int, skip: int) -> dict[str, Any] | None:
        """Waits for `sends` server spans (or EXPORT_WAIT_SECONDS), then breaks the Sends down."""
        self.sink.send(f"dump {self.path} {sends} {EXPORT_WAIT_SECONDS}")
        self.sink.expect("DUMPED ", timeout=EXPORT_WAIT_SECONDS + 30)
        rows = json.loads(self.path.read_text())
        self.path.unlink()
        return send_breakdown(rows, skip)


def send_breakdown(rows: list[dict[str, Any]], skip: int) -> dict[str, Any] | None:
    """Medians in milliseconds over the Sends in `rows` (bench.otlp_sink's span summaries), the
    first `skip` Sends (the load's warm-up) left out; None when no Send was traced."""
    servers = sorted(
        (r for r in rows if r["kind"] == SERVER_KIND and r["name"].endswith(SEND_SPAN_SUFFIX) and r["steps"]),
        key=lambda r: r["start_ns"],
    )[skip:]
    if not servers:
        return None
    client_ms: dict[str, float] = defaultdict(float)
    for r in rows:
        if r["kind"] == CLIENT_KIND:
            client_ms[r["trace"]] += (r["end_ns"] - r["start_ns"]) / 1e6

    order = [key.removesuffix("_ms") for key in servers[0]["steps"]]
    server_ms: list[float] = []
    around: list[float] = []
    vendor: list[float] = []
    own: dict[str, list[float]] = {step: [] for step in order}
    for span in servers:
        total = (span["end_ns"] - span["start_ns"]) / 1e6
        steps = {key.removesuffix("_ms"): value for key, value in span["steps"].items()}
        called = client_ms.get(span["trace"], 0.0)
        server_ms.append(total)
        around.append(total - sum(steps.values()))
        vendor.append(called)
        for step, value in steps.items():
            own.setdefault(step, []).append(value - called if step == VENDOR_STEP else value)

    def mid(values: list[float]) -> float:
        return round(float(statistics.median(values)), 3)

    segments = [["interceptors and service, around the chain", mid(around)]]
    segments += [
        [f"{step}, apart from the vendor call" if step == VENDOR_STEP else step, mid(values)]
        for step, values in own.items()
        if values
    ]
    segments.append(["vendor HTTP call (client spans)", mid(vendor)])
    span = latency_summary([ms / 1000 for ms in server_ms])  # the client's percentiles, alike
    return {
        "sends": len(servers),
        "server_span_p50_ms": round(span["p50"], 3),
        "server_span_p99_ms": round(span["p99"], 3),
        "segments_p50_ms": segments,
    }


def median_over_rounds(rounds: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Each figure's median over the rounds that had a breakdown."""
    present = [r for r in rounds if r]
    if not present:
        return None
    names = [name for name, _ in present[0]["segments_p50_ms"]]
    by_name = [dict(r["segments_p50_ms"]) for r in present]
    return {
        "rounds": len(present),
        "sends": sum(r["sends"] for r in present),
        "server_span_p50_ms": round(statistics.median(r["server_span_p50_ms"] for r in present), 3),
        "server_span_p99_ms": round(statistics.median(r["server_span_p99_ms"] for r in present), 3),
        "outside_server_span_p50_ms": round(
            statistics.median(r.get("outside_server_span_p50_ms", 0.0) for r in present), 3
        ),
        "segments_p50_ms": [
            [name, round(statistics.median(s[name] for s in by_name if name in s), 3)] for name in names
        ],
    }


def breakdown_line(breakdown: dict[str, Any]) -> str:
    """One line of the bench's output: the server span, what is outside it, and its segments."""
    segments = ", ".join(f"{name} {ms:.2f}" for name, ms in breakdown["segments_p50_ms"])
    outside = breakdown.get("outside_server_span_p50_ms")
    around = "" if outside is None else f"; outside it (client, gRPC hop, grpc's own work) {outside:.2f} ms"
    return (
        f"from {breakdown['sends']} Sends' spans, the server span p50 "
        f"{breakdown['server_span_p50_ms']:.2f} ms (p99 {breakdown['server_span_p99_ms']:.2f}){around}; "
        f"inside it, p50 ms: {segments}"
    )
