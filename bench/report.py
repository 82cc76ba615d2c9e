"""The table, the ratios and the targets, from the scenarios' LoadResults; and the JSON file.

"Server CPU" is the CPU of the process that does the scenario's work per message:

- floor A: the echo server (receive, parse, answer one Send over gRPC);
- floor B: the aiohttp client making the vendor call (the load process);
- the gateway scenarios (everything on, sampling 10%, minimal): the gateway process (it does A's
  work and B's work, plus everything it adds);
- Apprise: the application process that calls Apprise (the load process): Apprise is a library;
- queued: accept: the queued gateway process, with no workers in it and none running anywhere, so
  it is the cost of accepting a queued Send (checks, record and job written to Redis), nothing else.

So gateway CPU / (A + B) (issue 15's "ratio to the floors") says how much the gateway spends
per Send over the least any Python service spends to take a gRPC call and make one vendor call;
1.0 would be no overhead at all.
And queued accept CPU / A says what accepting costs over merely taking the gRPC call.

The queued scenario's delivery phase (bench.delivery) has a table of its own: its unit is a
message delivered by worker processes, not a request answered.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bench.spec import LoadResult
from bench.trace_breakdown import breakdown_line

if TYPE_CHECKING:
    from bench.delivery import DeliveryRun
    from bench.scaling import ProcessRun

FLOOR_A: Final = "floor A (bare gRPC)"
FLOOR_A_REDIS: Final = "floor A + Redis (1 round trip)"
FLOOR_B: Final = "floor B (bare vendor call)"
GATEWAY: Final = "gateway: everything on"
SAMPLED: Final = "gateway: sampling 10%"
MINIMAL: Final = "gateway: minimal"
APPRISE: Final = "apprise"
QUEUED_ACCEPT: Final = "queued: accept"
GATEWAYS: Final = (GATEWAY, SAMPLED, MINIMAL)

# Issue 15's targets, as ratios from one run; reported, never enforced.
CPU_TARGET: Final = 2.0  # CPU per Send, everything on, at most 2.0x (A + B)
SAMPLED_CPU_TARGET: Final = 1.5  # the same with 10% of traces sampled, at most 1.5x
THROUGHPUT_TARGET: Final = 2.0  # throughput at least 2x Apprise's now...
THROUGHPUT_GOAL: Final = 3.0  # ...and 3x after that
LATENCY_TARGET_MS: Final = 1.0  # added median latency at concurrency 1, over a direct aiohttp call
PROCESS_CPU_TARGET: Final = 1.0  # CPU per Send with N processes over 1 process: does not grow
GETTOKEN_TARGET: Final = 1  # per app account per token lifetime (the run is far shorter than 7200 s)
# Issue 15, for later: an accepted Send costs at most 1.2x floor A plus one Redis round trip, the
# round trip priced as what it adds to the bare echo server (floor A + Redis - floor A).
QUEUED_ACCEPT_TARGET: Final = 1.2
# A sync Send's Redis round trips: the claim, rate slot and record before the vendor call, the outcome after.
SYNC_SEND_ROUND_TRIPS: Final = 2
# The machine's cores busy for this share with 2 workers (by the workers, the sandbox and Redis, or
# by anyone: the machine is shared): the machine, not the workers, bounds the delivery rate, and a
# second worker has little left to use.
MACHINE_BOUND_SHARE: Final = 0.85


@dataclass
class Row:
    scenario: str
    measured_process: str
    requests: int
    concurrency: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # per message, the measured process
    client_cpu_ms: float  # per message, the load process
    vendor_cpu_ms: float  # per message, the sandbox
    wall_seconds: float
    truncated: bool
    # The machine's cores busy during the phase (every process, anyone's): how noisy it was.
    machine_busy: float = 0.0

    @classmethod
    def of(cls, result: LoadResult, measured: str) -> Row:
        def per_message(name: str) -> float:
            seconds = result.cpu_seconds.get(name, 0.0)
            return seconds / result.requests * 1000 if result.requests else 0.0

        return cls(
            scenario=result.scenario,
            measured_process=measured,
            requests=result.requests,
            concurrency=result.concurrency,
            errors=result.errors,
            throughput_rps=result.throughput_rps,
            p50_ms=result.latency_ms["p50"],
            p99_ms=result.latency_ms["p99"],
            server_cpu_ms=per_message(measured),
            client_cpu_ms=per_message("client"),
            vendor_cpu_ms=per_message("sandbox"),
            wall_seconds=result.wall_seconds,
            truncated=result.truncated,
            machine_busy=result.cpu_seconds.get("machine", 0.0) / result.wall_seconds
            if result.wall_seconds
            else 0.0,
        )

    @classmethod
    def median(cls, rounds: list[Row]) -> Row:
        """One row for several rounds of a scenario: medians of the rates, totals of the counts."""

        def mid(name: str) -> float:
            return float(statistics.median(getattr(r, name) for r in rounds))

        first = rounds[0]
        return cls(
            scenario=first.scenario,
            measured_process=first.measured_process,
            requests=sum(r.requests for r in rounds),
            concurrency=first.concurrency,
            errors=sum(r.errors for r in rounds),
            throughput_rps=mid("throughput_rps"),
            p50_ms=mid("p50_ms"),
            p99_ms=mid("p99_ms"),
            server_cpu_ms=mid("server_cpu_ms"),
            client_cpu_ms=mid("client_cpu_ms"),
            vendor_cpu_ms=mid("vendor_cpu_ms"),
            wall_seconds=sum(r.wall_seconds for r in rounds),
            truncated=any(r.truncated for r in rounds),
            machine_busy=mid("machine_busy"),
        )


def ratios(rows: dict[str, Row]) -> dict[str, float]:
    a, b, gateway, apprise = rows[FLOOR_A], rows[FLOOR_B], rows[GATEWAY], rows[APPRISE]
    floor_cpu = a.server_cpu_ms + b.server_cpu_ms
    out = {
        "gateway_cpu_over_floor_a_plus_b": _div(gateway.server_cpu_ms, floor_cpu),
        "gateway_throughput_over_floor_a": _div(gateway.throughput_rps, a.throughput_rps),
        "gateway_throughput_over_apprise": _div(gateway.throughput_rps, apprise.throughput_rps),
        # What a message costs on the sender's side in all (client + gateway vs the Apprise caller).
        "gateway_client_plus_server_cpu_over_apprise": _div(
            gateway.client_cpu_ms + gateway.server_cpu_ms, apprise.server_cpu_ms
        ),
    }
    for key, name in (("sampled", SAMPLED), ("minimal", MINIMAL)):
        if name in rows:
            out[f"{key}_cpu_over_floor_a_plus_b"] = _div(rows[name].server_cpu_ms, floor_cpu)
            out[f"{key}_throughput_over_apprise"] = _div(rows[name].throughput_rps, apprise.throughput_rps)
    round_trip = redis_round_trip_ms(rows)
    if round_trip is not None:
        # Beside the target, not instead of it: a sync Send that keeps our promises (a record of
        # its fate, no double delivery) makes two Redis round trips, the claim before the vendor
        # call and the outcome after, which neither floor pays.
        out["gateway_cpu_over_floors_plus_two_round_trips"] = _div(
            gateway.server_cpu_ms, floor_cpu + SYNC_SEND_ROUND_TRIPS * round_trip
        )
    return {**out, **queued_ratios(rows)}


def redis_round_trip_ms(rows: dict[str, Row]) -> float | None:
    """A Redis round trip's CPU, priced as what one adds to the bare echo server (floor A + Redis -
    floor A); None when the run has no Redis echo."""
    if FLOOR_A_REDIS not in rows:
        return None
    return rows[FLOOR_A_REDIS].server_cpu_ms - rows[FLOOR_A].server_cpu_ms


def process_ratios(medians: dict[int, ProcessRun]) -> dict[str, float]:
    """N processes against 1: CPU per Send (target: does not grow) and throughput."""
    one = medians.get(1)
    out: dict[str, float] = {}
    for n, run in sorted(medians.items()):
        if one is None or n == 1:
            continue
        out[f"processes_{n}_cpu_per_send_over_1"] = _div(run.gateway_cpu_ms, one.gateway_cpu_ms)
        out[f"processes_{n}_throughput_over_1"] = _div(run.throughput_rps, one.throughput_rps)
    return out


def queued_ratios(rows: dict[str, Row]) -> dict[str, float]:
    """Accepting a queued Send against floor A (taking a gRPC call) and against a sync Send."""
    queued = rows.get(QUEUED_ACCEPT)
    if queued is None:
        return {}
    a, gateway = rows[FLOOR_A], rows[GATEWAY]
    out = {}
    round_trip = redis_round_trip_ms(rows)
    if round_trip is not None:
        # Issue 15: accepting costs at most 1.2x floor A plus one Redis round trip; 1.0 is the
        # target exactly.
        out["queued_accept_cpu_over_target"] = _div(
            queued.server_cpu_ms, QUEUED_ACCEPT_TARGET * a.server_cpu_ms + round_trip
        )
        out["redis_round_trip_cpu_ms"] = round_trip
    return {
        **out,
        "queued_accept_cpu_over_floor_a": _div(queued.server_cpu_ms, a.server_cpu_ms),
        "queued_accept_throughput_over_floor_a": _div(queued.throughput_rps, a.throughput_rps),
        "queued_accept_cpu_over_gateway_sync": _div(queued.server_cpu_ms, gateway.server_cpu_ms),
        "queued_accept_throughput_over_gateway_sync": _div(queued.throughput_rps, gateway.throughput_rps),
    }


def targets(
    ratio: dict[str, float], latency: dict[str, float] | None, gettoken: dict[str, int], gateway_app: str
) -> dict[str, Any]:
    """Issue 15's targets beside this run's figures; `met` None: reported, not judged."""

    def goal(value: float, target: str, met: bool | None) -> dict[str, Any]:
        return {"value": value, "target": target, "met": met}

    cpu = ratio["gateway_cpu_over_floor_a_plus_b"]
    throughput = ratio["gateway_throughput_over_apprise"]
    calls = gettoken.get(gateway_app, -1)
    out = {
        "gateway_cpu_per_send": goal(cpu, f"<= {CPU_TARGET}x (A+B), everything on", cpu <= CPU_TARGET),
        "gateway_throughput": goal(
            throughput, f">= {THROUGHPUT_TARGET}x Apprise", throughput >= THROUGHPUT_TARGET
        ),
        "gateway_throughput_goal": goal(
            throughput, f">= {THROUGHPUT_GOAL}x Apprise (later)", throughput >= THROUGHPUT_GOAL
        ),
        "gettoken_calls": goal(calls, f"== {GETTOKEN_TARGET} for {gateway_app}", calls == GETTOKEN_TARGET),
    }
    if "sampled_cpu_over_floor_a_plus_b" in ratio:
        sampled = ratio["sampled_cpu_over_floor_a_plus_b"]
        out["sampled_cpu_per_send"] = goal(
            sampled, f"<= {SAMPLED_CPU_TARGET}x (A+B), sampling 10%", sampled <= SAMPLED_CPU_TARGET
        )
    if latency is not None:
        added = latency["added_p50_ms"]
        out["added_latency_c1"] = goal(
            added, f"median <= {LATENCY_TARGET_MS} ms (p99 reported)", added <= LATENCY_TARGET_MS
        )
    for key, value in ratio.items():
        if key.startswith("processes_") and key.endswith("_cpu_per_send_over_1"):
            n = key.split("_")[1]
            out[f"processes_{n}_cpu_per_send"] = goal(
                value,
                f"<= {PROCESS_CPU_TARGET}x 1 process (does not grow with N)",
                value <= PROCESS_CPU_TARGET,
            )
    if "queued_accept_cpu_over_target" in ratio:
        over = ratio["queued_accept_cpu_over_target"]
        out["queued_accept_cpu"] = goal(
            over, f"<= 1.0x ({QUEUED_ACCEPT_TARGET}x floor A + one Redis round trip)", over <= 1.0
        )
    return out


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(rows: list[Row]) -> str:
    header = (
        f"{'scenario':<30} {'requests':>8} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU ms/msg':>17} {'(process)':<10} {'client':>7} {'vendor':>7} {'errors':>6} "
        f"{'machine':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:  # machine: its cores busy during the phase, by anyone (the machine is shared)
        lines.append(
            f"{r.scenario:<30} {r.requests:>8} {r.concurrency:>4} {r.throughput_rps:>8.0f} "
            f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.server_cpu_ms:>17.3f} {r.measured_process:<10} "
            f"{r.client_cpu_ms:>7.3f} {r.vendor_cpu_ms:>7.3f} {r.errors:>6} {r.machine_busy:>7.2f}"
            + ("  (time bound hit)" if r.truncated else "")
        )
    return "\n".join(lines)


def headline(ratio: dict[str, float], latency: dict[str, Any] | None) -> str:
    """One line of the main targets for the chart's subtitle."""
    parts = [
        f"everything on: CPU/(A+B) {ratio['gateway_cpu_over_floor_a_plus_b']:.2f}x (target <= {CPU_TARGET})",
    ]
    if "sampled_cpu_over_floor_a_plus_b" in ratio:
        parts.append(
            f"sampling 10%: {ratio['sampled_cpu_over_floor_a_plus_b']:.2f}x (<= {SAMPLED_CPU_TARGET})"
        )
    parts.append(
        f"throughput/Apprise {ratio['gateway_throughput_over_apprise']:.2f}x "
        f"(>= {THROUGHPUT_TARGET}, later {THROUGHPUT_GOAL})"
    )
    if latency:
        m = latency["median"]
        parts.append(
            f"added latency c=1: p50 {m['added_p50_ms']:.2f} ms (<= {LATENCY_TARGET_MS}), "
            f"p99 {m['added_p99_ms']:.2f} ms"
        )
    for key, value in ratio.items():
        if key.startswith("processes_") and key.endswith("_throughput_over_1"):
            parts.append(f"{key.split('_')[1]} processes/1: throughput {value:.2f}x")
    return "   ".join(parts)


def summary(document: dict[str, Any]) -> str:
    """Every issue-15 target as a ratio beside its figure, then the other ratios of the run."""
    ratio, spread, goals = document["ratios"], document["ratios_min_max_over_rounds"], document["targets"]
    rows = {r.scenario: r for r in document["scenarios"]}
    floor = rows[FLOOR_A].server_cpu_ms + rows[FLOOR_B].server_cpu_ms

    def verdict(name: str) -> str:
        met = goals[name]["met"]
        return "reported only" if met is None else ("met" if met else "NOT met")

    def value(key: str) -> str:
        if key not in spread:
            return f"{ratio[key]:.2f}x"
        low, high = spread[key]
        return f"{ratio[key]:.2f}x (rounds {low:.2f}-{high:.2f})"

    def target(name: str) -> str:
        return f"target {goals[name]['target']}: {verdict(name)}"

    rounds = len(document["rounds"][GATEWAY])
    lines = [
        f"issue 15's targets (reported, never enforced; each ratio the median of the {rounds} rounds' "
        f"ratios; floors A + B = {floor:.3f} ms CPU per Send, medians):",
        f"  CPU per Send, everything on / (A + B):    {value('gateway_cpu_over_floor_a_plus_b')}"
        f", gateway {rows[GATEWAY].server_cpu_ms:.3f} ms   {target('gateway_cpu_per_send')}",
    ]
    if "sampled_cpu_per_send" in goals:
        lines.append(
            f"  CPU per Send, sampling 10% / (A + B):     {value('sampled_cpu_over_floor_a_plus_b')}"
            f", gateway {rows[SAMPLED].server_cpu_ms:.3f} ms   {target('sampled_cpu_per_send')}"
        )
    lines.append(
        f"  throughput, everything on / Apprise:      {value('gateway_throughput_over_apprise')}"
        f", {rows[GATEWAY].throughput_rps:.0f} and {rows[APPRISE].throughput_rps:.0f} req/s   "
        f"{target('gateway_throughput')}; {target('gateway_throughput_goal')}"
    )
    latency = document.get("latency_concurrency_1")
    if latency:
        m = latency["median"]
        lines.append(
            f"  added latency at concurrency 1 (gateway Send - direct aiohttp call, medians of "
            f"{m['rounds']} x {m['requests_per_side_per_round']}): p50 {m['added_p50_ms']:.2f} ms "
            f"(rounds {m['added_p50_ms_min']:.2f}-{m['added_p50_ms_max']:.2f}; {m['gateway_p50_ms']:.2f} vs "
            f"{m['direct_p50_ms']:.2f}), p99 {m['added_p99_ms']:.2f} ms ({m['gateway_p99_ms']:.2f} vs "
            f"{m['direct_p99_ms']:.2f})   {target('added_latency_c1')}"
        )
        lines.append(
            f"    of which the gRPC hop alone (bare echo, floor A's server, at concurrency 1): p50 "
            f"{m['echo_p50_ms']:.2f} ms, p99 {m['echo_p99_ms']:.2f} ms"
        )
        if "redis_round_trip_p50_ms" in m:
            lines.append(
                f"    and a Redis round trip (echo + one round trip - echo, at concurrency 1): p50 "
                f"{m['redis_round_trip_p50_ms']:.2f} ms; a sync Send makes two"
            )
        spans = latency.get("breakdown_from_spans")
        if spans:
            rounds = spans["rounds"]
            lines.append(f"    inside the gateway ({rounds} rounds' medians), {breakdown_line(spans)}")
    for name in goals:
        if name.startswith("processes_"):
            n = name.split("_")[1]
            lines.append(
                f"  CPU per Send, {n} processes / 1 process:  "
                f"{ratio[f'processes_{n}_cpu_per_send_over_1']:.2f}x   "
                f"{target(name)}; throughput {n}/1: {ratio[f'processes_{n}_throughput_over_1']:.2f}x "
                "(see the processes table for what bounds it)"
            )
    if "queued_accept_cpu" in goals:
        budget = QUEUED_ACCEPT_TARGET * rows[FLOOR_A].server_cpu_ms + ratio["redis_round_trip_cpu_ms"]
        lines.append(
            f"  queued accept CPU per Send / (1.2 A + one Redis round trip): "
            f"{value('queued_accept_cpu_over_target')}, medians {rows[QUEUED_ACCEPT].server_cpu_ms:.3f} and "
            f"{budget:.3f} ms (round trip: {ratio['redis_round_trip_cpu_ms'] * 1000:.0f} µs, floor A + 1 "
            f"round trip - floor A)   {target('queued_accept_cpu')}"
        )
    gettoken, app = document["gettoken_calls"], document["gateway_app_account"]
    lines.append(
        f"  gettoken calls for the gateway's app account: {gettoken.get(app)}   {target('gettoken_calls')}"
    )
    lines.append("other ratios:")
    if "gateway_cpu_over_floors_plus_two_round_trips" in ratio:
        lines.append(
            "  CPU per Send, everything on / (A + B + the 2 Redis round trips a sync Send makes): "
            + value("gateway_cpu_over_floors_plus_two_round_trips")
        )
    if "minimal_cpu_over_floor_a_plus_b" in ratio:
        lines.append(
            "  CPU per Send, minimal (no key, no limit, no export) / (A + B): "
            f"{value('minimal_cpu_over_floor_a_plus_b')}; everything on / minimal: "
            f"{_div(rows[GATEWAY].server_cpu_ms, rows[MINIMAL].server_cpu_ms):.2f}x"
        )
    lines += [
        f"  gateway throughput / floor A throughput:  {value('gateway_throughput_over_floor_a')}",
        "  sender-side CPU per message, (client + gateway) / Apprise caller: "
        + value("gateway_client_plus_server_cpu_over_apprise"),
    ]
    if "queued_accept_cpu_over_floor_a" in ratio:
        lines += [
            f"  queued accept CPU per Send / floor A:     {value('queued_accept_cpu_over_floor_a')}",
            f"  queued accept throughput / floor A:       {value('queued_accept_throughput_over_floor_a')}",
            "  queued accept / sync Send (everything on): CPU "
            + value("queued_accept_cpu_over_gateway_sync")
            + ", throughput "
            + value("queued_accept_throughput_over_gateway_sync"),
        ]
    others = {a: n for a, n in gettoken.items() if a not in (app, document["queued"]["app_account"])}
    if others:
        lines.append(
            "  gettoken calls of the other apps: " + ", ".join(f"{a}={n}" for a, n in others.items())
        )
    return "\n".join(lines)


def processes_table(medians: dict[int, ProcessRun], cores: int) -> str:
    """`serve --processes N`: throughput and CPU per Send, with who kept the machine's cores busy."""
    header = (
        f"{'serve --processes':<17} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'gateway CPU ms/Send':>19} "
        f"{'busiest child':>13}   cores busy: gateway + load + sandbox + redis + sink; machine"
    )
    lines = [header, "-" * len(header)]
    for n, r in sorted(medians.items()):
        b = r.cores_busy
        ours = sum(b.get(k, 0.0) for k in ("gateway", "load", "sandbox", "redis", "sink"))
        lines.append(
            f"{n:<17} {r.throughput_rps:>7.0f} {r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {r.gateway_cpu_ms:>19.3f} "
            f"{r.busiest_child_share:>12.0%}   {b.get('gateway', 0):.2f} + {b.get('load', 0):.2f} + "
            f"{b.get('sandbox', 0):.2f} + {b.get('redis', 0):.2f} + {b.get('sink', 0):.2f} = {ours:.2f}; "
            f"{b.get('machine', 0):.2f} of {cores}"
            + ("  (time bound hit)" if r.truncated else "")
            + (f"  ({r.errors} errors)" if r.errors else "")
        )
    top = max(medians)
    busy = medians[top].cores_busy.get("machine", 0.0)
    if top > 1 and busy >= MACHINE_BOUND_SHARE * cores:
        lines.append(
            f"  the machine was the limit with {top} processes: its {cores} cores were {busy:.2f} busy (the "
            "load generator, the sandbox, Redis and the sink share them with the gateway, and the machine "
            "is shared), so throughput against N says what this machine allows, not what N processes can do"
        )
    return "\n".join(lines)


def breakdown(profiles: dict[str, Any], rows: dict[str, Row]) -> dict[str, dict[str, float]]:
    """µs of CPU per Send by component, for each profiled gateway: the profile's shares (one
    component per sample) times that gateway's median CPU per Send from the measured rounds."""
    out: dict[str, dict[str, float]] = {}
    for name, summary in profiles.items():
        row = rows.get(name)
        if row is None or not summary.get("by_component"):
            continue
        shares = dict(summary["by_component"])
        total = sum(shares.values())
        out[name] = {c: row.server_cpu_ms * 1000 * share / total for c, share in shares.items()}
    return out


def breakdown_table(breakdown_us: dict[str, dict[str, float]]) -> str:
    names = list(breakdown_us)
    components = list(dict.fromkeys(c for parts in breakdown_us.values() for c in parts))
    width = max(len(c) for c in [*components, "total"])
    lines = [
        "CPU per Send by component, µs (profile shares x the gateway's median CPU per Send):",
        f"  {'':<{width}} " + " ".join(f"{n.replace('gateway: ', ''):>15}" for n in names),
    ]
    for c in components:
        lines.append(f"  {c:<{width}} " + " ".join(f"{breakdown_us[n].get(c, 0.0):>15.0f}" for n in names))
    lines.append(
        f"  {'total':<{width}} " + " ".join(f"{sum(breakdown_us[n].values()):>15.0f}" for n in names)
    )
    return "\n".join(lines)


def delivery_table(
    medians: dict[int, DeliveryRun],
    scale: float,
    runs: int,
    jobs: int,
    cores: int,
    gettoken: int | None,
    rows: dict[str, Row],
) -> str:
    """The delivery phase: messages reaching a final state per second, and who spent the CPU; and
    what a queued message costs in all (accepting + delivering) next to a sync Send."""
    header = (
        f"{'queued: delivery':<18} {'delivered':>9} {'msg/s':>7} {'worker CPU ms/msg':>17} "
        f"{'sandbox':>8} {'redis':>7}   {'cores busy: workers + sandbox + redis = total; machine':<55}"
    )
    lines = [
        f"queued delivery: worker processes emptying a queue of {jobs} accepted Sends "
        f"(medians of {runs} run{'s' if runs != 1 else ''} per count; the window starts once every "
        "worker consumes)",
        header,
        "-" * len(header),
    ]
    for workers, r in sorted(medians.items()):
        busy = r.cores_busy
        redis_ms = f"{r.redis_cpu_ms:>7.3f}" if r.redis_cpu_ms is not None else f"{'n/a':>7}"
        redis_busy = f"{busy['redis']:.2f}" if "redis" in busy else "n/a"
        lines.append(
            f"{f'{workers} worker process' + ('es' if workers > 1 else ''):<18} {r.delivered:>9} "
            f"{r.rate_per_second:>7.0f} {r.worker_cpu_ms:>17.3f} {r.sandbox_cpu_ms:>8.3f} {redis_ms}   "
            f"{busy['workers']:.2f} + {busy['sandbox']:.2f} + {redis_busy} = {busy['total']:.2f}; "
            f"{busy['machine']:.2f} of {cores}" + ("  (time bound hit)" if r.truncated else "")
        )
    lines.append(f"does it scale? 2 workers / 1 worker delivery rate: {scale:.2f}x (2.0 would be linear)")
    two = medians.get(2)
    if two is not None and machine_bound(medians, cores):
        ours, machine = two.cores_busy["total"], two.cores_busy["machine"]
        lines.append(
            f"  the machine was the limit with 2 workers: its {cores} cores were {machine:.2f} busy "
            f"({ours:.2f} by the workers, the sandbox and Redis, {max(0.0, machine - ours):.2f} by "
            "everything else on this shared machine), so the ratio is what this machine allows, a "
            "lower bound of what the workers would do on more (or quieter) cores"
        )
    one, accept, sync = medians.get(1), rows.get(QUEUED_ACCEPT), rows.get(GATEWAY)
    if one is not None and accept is not None and sync is not None:
        total = accept.server_cpu_ms + one.worker_cpu_ms
        lines.append(
            f"a queued message in all: accepting {accept.server_cpu_ms:.3f} + delivering (1 worker) "
            f"{one.worker_cpu_ms:.3f} = {total:.3f} ms CPU, {_div(total, sync.server_cpu_ms):.2f}x "
            f"a sync Send's {sync.server_cpu_ms:.3f} ms"
        )
    if gettoken is not None:
        lines.append(f"gettoken calls for the queued app account (all worker processes and runs): {gettoken}")
    return "\n".join(lines)


def machine_bound(medians: dict[int, DeliveryRun], cores: int) -> bool:
    """Whether the 2-worker runs had the machine's cores about all busy, by the bench or anyone."""
    two = medians.get(2)
    if two is None:
        return False
    busy = max(two.cores_busy["total"], two.cores_busy.get("machine", 0.0))
    return busy >= MACHINE_BOUND_SHARE * cores


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=_plain) + "\n")


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
