"""Fixed-concurrency load: C workers pull request numbers until N are sent, timing each one.

A warm-up phase first (connections, the access token, caches) that is not measured; then the
measured phase, with CPU readings of the load process itself and of every watched process
taken right before and right after it, so CPU and throughput cover the same messages. Both
phases are bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.procs import cpu_seconds, machine_cpu_seconds, tree_cpu_seconds
from bench.spec import LoadResult, LoadSpec

AsyncCall = Callable[[int], Awaitable[str | None]]
"""Sends message number i; returns None when it was delivered, else what went wrong."""
SyncCall = Callable[[int], str | None]

MAX_ERROR_SAMPLES = 5
WARMUP_MAX_SECONDS = 30.0


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def note(self, started: float, error: str | None) -> None:
        self.latencies.append(time.perf_counter() - started)
        if error is not None:
            self.errors += 1
            if len(self.error_samples) < MAX_ERROR_SAMPLES:
                self.error_samples.append(error[:300])


async def run_async(call: AsyncCall, first: int, count: int, concurrency: int, max_seconds: float) -> Phase:
    """`count` calls numbered from `first`, `concurrency` at a time, on this event loop."""
    phase = Phase()
    numbers = itertools.count(first)
    end = first + count
    started = time.perf_counter()
    give_up = started + max_seconds

    async def worker() -> None:
        while (i := next(numbers)) < end and time.perf_counter() < give_up:
            t0 = time.perf_counter()
            try:
                error = await call(i)
            except Exception as exc:  # a driver bug or a dead peer: count it, keep the load going
                error = f"{type(exc).__name__}: {exc}"
            phase.note(t0, error)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.wall_seconds = time.perf_counter() - started
    return phase


def run_threads(call: SyncCall, first: int, count: int, concurrency: int, max_seconds: float) -> Phase:
    """The same, with `concurrency` threads, for libraries that block (Apprise)."""
    phase = Phase()
    numbers = itertools.count(first)  # next() on a count is atomic under the GIL
    lock = threading.Lock()
    end = first + count
    started = time.perf_counter()
    give_up = started + max_seconds

    def worker() -> None:
        while (i := next(numbers)) < end and time.perf_counter() < give_up:
            t0 = time.perf_counter()
            try:
                error = call(i)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            with lock:
                phase.note(t0, error)

    threads = [threading.Thread(target=worker, name=f"load-{n}") for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.wall_seconds = time.perf_counter() - started
    return phase


def cpu_snapshot(spec: LoadSpec) -> dict[str, float]:
    """CPU seconds so far: this process (all threads) as "client", every watched pid (a tree: with
    its descendants), and the whole machine's busy time (the machine is shared: beside the
    bench's own processes it says whether the machine was the limit)."""
    return {
        "client": time.process_time(),
        "machine": machine_cpu_seconds(),
        **{name: cpu_seconds(pid) for name, pid in spec.watch.items()},
        **{name: tree_cpu_seconds(pid) for name, pid in spec.watch_trees.items()},
    }


async def measure_async(spec: LoadSpec, call: AsyncCall) -> LoadResult:
    await run_async(call, 0, spec.warmup, spec.concurrency, WARMUP_MAX_SECONDS)
    before = cpu_snapshot(spec)
    phase = await run_async(call, spec.warmup, spec.requests, spec.concurrency, spec.max_seconds)
    return result(spec, phase, before, cpu_snapshot(spec))


def measure_threads(spec: LoadSpec, call: SyncCall) -> LoadResult:
    run_threads(call, 0, spec.warmup, spec.concurrency, WARMUP_MAX_SECONDS)
    before = cpu_snapshot(spec)
    phase = run_threads(call, spec.warmup, spec.requests, spec.concurrency, spec.max_seconds)
    return result(spec, phase, before, cpu_snapshot(spec))


def result(spec: LoadSpec, phase: Phase, before: dict[str, float], after: dict[str, float]) -> LoadResult:
    done = len(phase.latencies)
    return LoadResult(
        scenario=spec.scenario,
        requests=done,
        concurrency=spec.concurrency,
        errors=phase.errors,
        error_samples=phase.error_samples,
        wall_seconds=phase.wall_seconds,
        throughput_rps=done / phase.wall_seconds if phase.wall_seconds > 0 else 0.0,
        latency_ms=latency_summary(phase.latencies),
        cpu_seconds={name: after[name] - before[name] for name in before},
        truncated=done < spec.requests,
    )


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """p50, p90, p99 (nearest rank), max and mean, in milliseconds."""
    if not latencies:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(latencies)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))] * 1000

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }
