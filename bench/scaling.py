"""The latency phase (added latency at concurrency 1) and the processes phase (`serve --processes N`).

Latency: a Send through the gateway with everything on, one at a time, against the same vendor
calls made straight from aiohttp (floor B's driver) one at a time: the difference of the
medians is what the gateway adds to a caller's wait when nothing queues. The bare gRPC echo
(floor A's) is timed the same way, so the reader sees how much of that is the gRPC hop itself.
Each is its own load process and phase (`--latency-requests` sequential requests), `--rounds`
times, interleaved.

Processes: the gateway with everything on, started as `serve --processes N` for each N, loaded
with the same Sends over several connections (SO_REUSEPORT hands each connection to one process).
Beside throughput and CPU per Send (parent and children, from /proc) it reads the cores kept
busy by the load generator, the sandbox, Redis, the OTLP sink and the whole machine: on a
small shared machine N processes can only go as fast as the cores the rest leaves them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.spec import LoadResult


@dataclass
class LatencyRound:
    gateway_p50_ms: float
    gateway_p99_ms: float
    direct_p50_ms: float
    direct_p99_ms: float
    echo_p50_ms: float  # floor A's bare gRPC echo at concurrency 1: the gRPC hop alone
    echo_p99_ms: float
    echo_redis_p50_ms: float  # the same echo making one Redis round trip per call: the hop's price
    echo_redis_p99_ms: float
    requests: int

    @property
    def added_p50_ms(self) -> float:
        return self.gateway_p50_ms - self.direct_p50_ms

    @property
    def added_p99_ms(self) -> float:
        return self.gateway_p99_ms - self.direct_p99_ms


def latency_median(rounds: list[LatencyRound]) -> dict[str, float]:
    """Medians over the rounds of each figure, the added latency included (median of the rounds'
    differences, so one noisy round does not pair one side's outlier with the other's median)."""

    def mid(values: list[float]) -> float:
        return float(statistics.median(values))

    return {
        "gateway_p50_ms": mid([r.gateway_p50_ms for r in rounds]),
        "gateway_p99_ms": mid([r.gateway_p99_ms for r in rounds]),
        "direct_p50_ms": mid([r.direct_p50_ms for r in rounds]),
        "direct_p99_ms": mid([r.direct_p99_ms for r in rounds]),
        "echo_p50_ms": mid([r.echo_p50_ms for r in rounds]),
        "echo_p99_ms": mid([r.echo_p99_ms for r in rounds]),
        "echo_redis_p50_ms": mid([r.echo_redis_p50_ms for r in rounds]),
        "echo_redis_p99_ms": mid([r.echo_redis_p99_ms for r in rounds]),
        "redis_round_trip_p50_ms": mid([r.echo_redis_p50_ms - r.echo_p50_ms for r in rounds]),
        "added_p50_ms": mid([r.added_p50_ms for r in rounds]),
        "added_p99_ms": mid([r.added_p99_ms for r in rounds]),
        "added_p50_ms_min": min(r.added_p50_ms for r in rounds),
        "added_p50_ms_max": max(r.added_p50_ms for r in rounds),
        "requests_per_side_per_round": rounds[0].requests,
        "rounds": len(rounds),
    }


@dataclass
class ProcessRun:
    """One measured run of `serve --processes N`; CPU per Send, and cores busy (CPU s / wall s)."""

    processes: int
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    gateway_cpu_ms: float  # per Send: the parent and every child together
    busiest_child_share: float  # of the children's CPU, the busiest one's (1/N: evenly spread)
    client_cpu_ms: float  # the load generator
    cores_busy: dict[str, float] = field(default_factory=dict)  # gateway, load, sandbox, redis, sink, machine
    truncated: bool = False

    @classmethod
    def of(cls, processes: int, result: LoadResult, children: list[str]) -> ProcessRun:
        cpu, wall, done = result.cpu_seconds, result.wall_seconds, max(1, result.requests)
        child_cpu = [cpu[name] for name in children]
        busy = {
            name: cpu[key] / wall
            for name, key in (
                ("gateway", "gateway"),
                ("load", "client"),
                ("sandbox", "sandbox"),
                ("redis", "redis"),
                ("sink", "otlp sink"),
                ("machine", "machine"),
            )
            if key in cpu and wall > 0
        }
        return cls(
            processes=processes,
            requests=result.requests,
            errors=result.errors,
            throughput_rps=result.throughput_rps,
            p50_ms=result.latency_ms["p50"],
            p99_ms=result.latency_ms["p99"],
            gateway_cpu_ms=cpu["gateway"] / done * 1000,
            busiest_child_share=max(child_cpu) / sum(child_cpu) if sum(child_cpu) > 0 else 1.0,
            client_cpu_ms=cpu["client"] / done * 1000,
            cores_busy=busy,
            truncated=result.truncated,
        )

    @classmethod
    def median(cls, runs: list[ProcessRun]) -> ProcessRun:
        def mid(name: str) -> float:
            return float(statistics.median(getattr(r, name) for r in runs))

        return cls(
            processes=runs[0].processes,
            requests=sum(r.requests for r in runs),
            errors=sum(r.errors for r in runs),
            throughput_rps=mid("throughput_rps"),
            p50_ms=mid("p50_ms"),
            p99_ms=mid("p99_ms"),
            gateway_cpu_ms=mid("gateway_cpu_ms"),
            busiest_child_share=mid("busiest_child_share"),
            client_cpu_ms=mid("client_cpu_ms"),
            cores_busy={
                name: float(statistics.median(r.cores_busy[name] for r in runs))
                for name in runs[0].cores_busy
            },
            truncated=any(r.truncated for r in runs),
        )
