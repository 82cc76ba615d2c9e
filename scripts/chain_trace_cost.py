"""CPU per call of a 10-step chain inside a server span, for each way of recording its steps.

Decides how the chain records its steps (gateway/chain/chain.py): a span per step nested (the old
way), a sibling span per step timed for its own work, an event per step on the server span, one
event on the server span with every step's time (the chain's way), or nothing. The SDK is on
with a batch processor, as in production; its exporter drops the spans, so the figures leave out
encoding (which spans would pay more of than events).
``.venv/bin/python scripts/chain_trace_cost.py [calls]``; prints µs of process CPU per call.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.chain.chain import Chain, Next, _Timings
from gateway.chain.context import CallContext
from gateway.telemetry import current_span, tracer

STEPS = 10


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def step(name: str) -> Any:
    async def run(ctx: CallContext[Any], call_next: Next) -> Any:
        if ctx.attributes.get("last") == name:
            return name
        return await call_next()

    run.__name__ = name
    return run


class Nested(Chain[Any]):
    """The old chain: a span per step, made current, nesting inside the previous one."""

    async def __call__(self, ctx: CallContext[Any]) -> Any:
        return await self._nested(0, ctx)

    async def _nested(self, index: int, ctx: CallContext[Any]) -> Any:
        with current_span(self._names[index]):
            return await self.steps[index](ctx, lambda: self._nested(index + 1, ctx))


class Siblings(Chain[Any]):
    """A span per step, children of the server span, each as long as the step's own work.

    Spans are made after the chain, from its timings: the cheapest way to have siblings (no
    context switching), so this variant's figure is a floor for them.
    """

    async def __call__(self, ctx: CallContext[Any]) -> Any:
        timings = _Timings(len(self.steps))
        started = time.time_ns()
        try:
            return await self._timed(0, ctx, timings)
        finally:
            parent = trace.set_span_in_context(ctx.span)
            for index in range(timings.reached + 1):
                span = tracer.start_span(self._names[index], context=parent, start_time=started)
                started += timings.own[index]
                span.end(end_time=started)


class EventPerStep(Chain[Any]):
    """An event per step on the server span, with its own duration."""

    async def __call__(self, ctx: CallContext[Any]) -> Any:
        timings = _Timings(len(self.steps))
        try:
            return await self._timed(0, ctx, timings)
        finally:
            for index in range(timings.reached + 1):
                ctx.span.add_event(self._names[index], {"duration_ms": timings.own[index] / 1e6})


class Untraced(Chain[Any]):
    async def __call__(self, ctx: CallContext[Any]) -> Any:
        return await self._run(0, ctx)


async def measure(chain: Chain[Any], calls: int) -> float:
    """µs of process CPU (all threads: the batch processor's too) per call, server span included."""
    names = [f"s{i}" for i in range(STEPS)]
    started = time.process_time()
    for _ in range(calls):
        with current_span("Service/Send", kind=SpanKind.SERVER):
            ctx: CallContext[Any] = CallContext("send", None)
            ctx.attributes["last"] = names[-1]
            await chain(ctx)
    return (time.process_time() - started) / calls * 1e6


async def main(calls: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=65536))
    trace.set_tracer_provider(provider)
    steps = [step(f"s{i}") for i in range(STEPS)]
    variants: dict[str, Chain[Any]] = {
        "no step recording": Untraced("send", steps),
        "one event, every step's time": Chain("send", steps),
        "an event per step": EventPerStep("send", steps),
        "sibling spans (own time)": Siblings("send", steps),
        "nested spans (before)": Nested("send", steps),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for chain in variants.values():
        await measure(chain, calls // 10)  # warm up
    for _ in range(5):  # interleaved rounds, median: the machine is shared and noisy
        for name, chain in variants.items():
            results[name].append(await measure(chain, calls))
    provider.shutdown()
    base = statistics.median(results["no step recording"])
    print(f"{'10 steps, recorded as':<30} {'µs CPU/call':>12} {'over none':>10}")
    for name, figures in results.items():
        median = statistics.median(figures)
        print(f"{name:<30} {median:12.1f} {median - base:10.1f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
