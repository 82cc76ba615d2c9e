"""`python -m bench`: starts the parties, runs the scenarios, prints and keeps the results.

Processes, each on its own so the OS charges each with its own CPU: a Redis (throw-away), the
vendor sandbox, the floor A echo server, an OTLP sink (bench.otlp_sink), three gateways (`python
-m gateway serve`: everything on, the same sampling 10% of traces, and the minimal reference),
a gateway for queued Sends (no workers in it), and one load process per scenario and round. The
scenarios run one after the other against the same sandbox, with the same message, request
count and concurrency, `--rounds` times interleaved:

1. floor A: gRPC Sends to the bare echo server; and the same to an echo server that makes one
   Redis round trip per Send (the yardstick of the queued accept target);
2. floor B: the gateway's two vendor calls made straight from aiohttp;
3. gateway, everything on: API key, an idempotency key on every Send, a rate limit that never
   refuses, the message record, every call traced and shipped by the batch OTLP exporter;
4. gateway, sampling 10%: the same with `telemetry.sample_ratio: 0.1`;
5. gateway, minimal: the earlier default (no idempotency key, no rate limit, `none` exporter);
6. queued: accept: Sends asking for queued delivery, to the queued gateway, with no worker
   running anywhere: only accepting is measured;
7. Apprise: the same texts through Apprise's DingTalk and WeCom-bot plugins.

Then, each in its own phase: added latency at concurrency 1 (bench.scaling), `serve --processes
N` for N = 1, 2 (bench.scaling), the queued scenario's delivery by 1 and 2 worker processes
(bench.delivery), and a profile of the three gateways (bench.profiling) for the breakdown chart.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import chart, delivery, profiling, report
from bench.delivery import DeliveryPhase, DeliveryRun, QueueWatch
from bench.fixture import DingtalkRobot, Fixture, WecomApp
from bench.gateway_proc import (
    DINGTALK_ACCOUNT,
    MINIMAL_ACCOUNTS,
    NEVER_REFUSING_RATE_PER_MINUTE,
    PROCESSES_ACCOUNTS,
    QUEUED_DINGTALK_ACCOUNT,
    QUEUED_WECOM_APP_ACCOUNT,
    SAMPLE_RATIO,
    SAMPLED_ACCOUNTS,
    WECOM_APP_ACCOUNT,
    start_gateway,
    write_config,
)
from bench.procs import (
    REPO_ROOT,
    RESULTS_DIR,
    Child,
    descendants,
    free_port,
    otlp_telemetry,
    python_module,
    run_load,
    start_otlp_sink,
    start_sandbox,
)
from bench.redis_proc import redis_for_run
from bench.report import (
    APPRISE,
    FLOOR_A,
    FLOOR_A_REDIS,
    FLOOR_B,
    GATEWAY,
    MINIMAL,
    QUEUED_ACCEPT,
    SAMPLED,
    Row,
)
from bench.scaling import LatencyRound, ProcessRun, latency_median
from bench.spec import Driver, LoadResult, LoadSpec
from bench.trace_breakdown import TraceWindow, breakdown_line, median_over_rounds

PACKAGES = (
    "grpcio",
    "protobuf",
    "aiohttp",
    "redis",
    "hiredis",
    "uvloop",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "apprise",
    "requests",
)
PROCESS_CHANNELS = 16  # connections in the processes phase, so SO_REUSEPORT spreads them
LATENCY_WARMUP = 50


@dataclass(frozen=True)
class Options:
    rounds: int
    requests: int
    warmup: int
    concurrency: int
    max_seconds: float
    delivery_rounds: int  # runs per worker count in the queued delivery phase; 0: no delivery phase
    latency_requests: int  # sequential requests per side and round at concurrency 1; 0: no phase
    process_counts: list[int]  # `serve --processes N` for each N; empty: no processes phase
    profile: str | None  # None, "py-spy" or "cprofile"
    results_dir: Path


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each scenario runs (medians are kept)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per scenario and round")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests sent first, each time")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=25.0, help="time bound of each measured phase")
    parser.add_argument(
        "--delivery-rounds",
        type=int,
        default=3,
        help="queued delivery: runs with 1 and with 2 worker processes, each emptying a queue of "
        "--requests accepted Sends (0: skip the delivery phase)",
    )
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=500,
        help="added latency: sequential Sends through the gateway and direct aiohttp calls, each, "
        "per round (0: skip the phase)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[1, 2],
        metavar="N",
        help="`serve --processes N` runs for each N (none: skip the phase)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="auto",
        default="auto",
        choices=("auto", "py-spy", "cprofile", "none"),
        help="afterwards, profile the gateways under the same load for the CPU breakdown chart "
        "(auto: py-spy if installed, else cProfile; none: no profile)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    profile = None if args.profile == "none" else args.profile
    if profile == "auto":
        profile = "py-spy" if profiling.pyspy_binary() else "cprofile"
    return Options(
        rounds=args.rounds,
        requests=args.requests,
        warmup=args.warmup,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        delivery_rounds=args.delivery_rounds,
        latency_requests=args.latency_requests,
        process_counts=[n for n in args.processes if n > 0],
        profile=profile,
        results_dir=args.results_dir,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    options.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        document, rows = run(options, workdir, stamp)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench: failed: {exc}\n(logs kept in {workdir})", file=sys.stderr)
        return 1
    document["machine"]["loadavg_before"] = load_before
    document["machine"]["loadavg_after"] = os.getloadavg()
    document["total_seconds"] = round(time.monotonic() - started, 1)

    json_path = options.results_dir / f"{stamp}.json"
    png_path = options.results_dir / f"{stamp}.png"
    breakdown_path = options.results_dir / f"{stamp}-breakdown.png"
    ratio = document["ratios"]
    queued = document["queued"]
    report.write_json(json_path, document)
    chart.draw(
        png_path,
        rows,
        queued["delivery_median"],
        document["processes"]["median"],
        (document["latency_concurrency_1"] or {}).get("median"),
        title=f"notify-gateway bench {stamp}: medians of {options.rounds} rounds of {options.requests} "
        f"requests per scenario, concurrency {options.concurrency}, {os.cpu_count()} cores",
        subtitle=report.headline(ratio, document["latency_concurrency_1"]),
    )
    if document["breakdown_us_per_send"]:
        profile = next(iter(document["profile"].values()))
        weighted = ", weighted by each thread's CPU" if profile.get("weighting") == "thread CPU" else ""
        chart.draw_breakdown(
            breakdown_path,
            document["breakdown_us_per_send"],
            rows,
            title=f"notify-gateway bench {stamp}: where a Send's CPU goes, by component "
            f"({profile['tool']} profile{weighted}, scaled to each gateway's median CPU per Send)",
        )
    print()
    print(report.table(rows))
    print()
    print(report.summary(document))
    if document["processes"]["median"]:
        print()
        print(report.processes_table(document["processes"]["median"], os.cpu_count() or 1))
    if queued["delivery_median"]:
        print()
        print(
            report.delivery_table(
                queued["delivery_median"],
                queued["delivery_scaling"],
                options.delivery_rounds,
                options.requests,
                os.cpu_count() or 1,
                document["gettoken_calls"].get(queued["app_account"]),
                {r.scenario: r for r in rows},
            )
        )
    print(
        "vendor-accepted / sent: "
        + ", ".join(f"{k} {v['accepted']}/{v['sent']}" for k, v in document["vendor_accepted"].items())
    )
    sink = document["otlp_sink_received"]
    print(
        f"OTLP sink received: {sink.get('spans', 0)} spans in {sink.get('trace_requests', 0)} exports, "
        f"{sink.get('metric_requests', 0)} metric exports"
    )
    if document["breakdown_us_per_send"]:
        print()
        print(report.breakdown_table(document["breakdown_us_per_send"]))
    if document.get("profile") and GATEWAY in document["profile"]:
        print()  # the other gateways' profiles are in the JSON and the breakdown above
        print(f"{GATEWAY}: " + profiling.render(document["profile"][GATEWAY]))
    written = [json_path, png_path] + ([breakdown_path] if document["breakdown_us_per_send"] else [])
    print("\nwrote " + ", ".join(str(_shown(p)) for p in written))
    print(f"({document['total_seconds']} s in all; the targets are reported, never enforced)")
    with contextlib.suppress(OSError):
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
    return 0


def _shown(path: Path) -> Path:
    """The path relative to the repository when it is inside it (--results-dir may be anywhere)."""
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


@dataclass(frozen=True)
class GatewayUnderTest:
    """One started gateway: its process, address, config file and the Sends its scenario makes."""

    child: Child
    address: str
    config: Path
    accounts: tuple[str, str]
    idempotency_keys: bool


def run(options: Options, workdir: Path, stamp: str) -> tuple[dict[str, Any], list[Row]]:
    fixture = Fixture()
    spec_path = workdir / "sandbox.json"
    spec_path.write_text(json.dumps(fixture.sandbox_spec()))
    sent: collections.Counter[str] = collections.Counter()  # Sends per sandbox identity pair

    def counted(load_spec: LoadSpec, group: str) -> LoadResult:
        """A load process whose Sends (warm-up included) reach `group`'s sandbox robot and app."""
        result = run_load(load_spec, workdir)
        sent[group] += result.requests + load_spec.warmup
        return result

    with contextlib.ExitStack() as stack:
        redis_url, redis_where, redis_pid = stack.enter_context(redis_for_run())
        sandbox, sandbox_url = start_sandbox(stack, spec_path, workdir)
        echo = Child("echo server", python_module("bench.echo_server"), log=workdir / "echo.log")
        stack.callback(echo.stop)
        echo_port = echo.expect("READY ")
        echo_redis = Child(
            "echo server + Redis",
            python_module("bench.echo_server", redis_url),
            log=workdir / "echo-redis.log",
        )
        stack.callback(echo_redis.stop)
        echo_redis_port = echo_redis.expect("READY ")
        sink, sink_port = start_otlp_sink(stack, workdir)
        traced = otlp_telemetry(sink_port)
        namespace = f"bench-{stamp}-{secrets.token_hex(3)}"

        def gateway(
            name: str,
            robot: DingtalkRobot,
            app: WecomApp,
            accounts: tuple[str, str],
            *,
            telemetry: dict[str, Any],
            rate: int,
            keys: bool,
            queued: bool = False,
            processes: int | None = None,
        ) -> GatewayUnderTest:
            config = workdir / f"{name.replace(' ', '-')}.yaml"
            write_config(
                config,
                robot=robot,
                app=app,
                accounts=accounts,
                api_key=fixture.api_key,
                sandbox_url=sandbox_url,
                redis_url=redis_url,
                namespace=f"{namespace}-{name.replace(' ', '-')}",
                port=free_port(),
                telemetry=telemetry,
                rate_limit_per_minute=rate,
                queued=queued,
            )
            child, address = start_gateway(
                config, workdir / f"{config.stem}.log", name=name, processes=processes
            )
            stack.callback(child.stop)
            return GatewayUnderTest(child, address, config, accounts, keys)

        full = gateway(
            "gateway",
            fixture.gateway_dingtalk,
            fixture.gateway_app,
            (DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT),
            telemetry=traced,
            rate=NEVER_REFUSING_RATE_PER_MINUTE,
            keys=True,
        )
        sampled = gateway(
            "sampled gateway",
            fixture.sampled_dingtalk,
            fixture.sampled_app,
            SAMPLED_ACCOUNTS,
            telemetry={**traced, "sample_ratio": SAMPLE_RATIO},
            rate=NEVER_REFUSING_RATE_PER_MINUTE,
            keys=True,
        )
        minimal = gateway(
            "minimal gateway",
            fixture.minimal_dingtalk,
            fixture.minimal_app,
            MINIMAL_ACCOUNTS,
            telemetry={"exporter": "none"},
            rate=0,
            keys=False,
        )
        # The queued scenario's gateway: its own accounts, namespace and process, no workers in it.
        queued_gw = gateway(
            "queued gateway",
            fixture.queued_dingtalk,
            fixture.queued_app,
            (QUEUED_DINGTALK_ACCOUNT, QUEUED_WECOM_APP_ACCOUNT),
            telemetry=traced,
            rate=0,
            keys=False,
            queued=True,
        )
        print(
            f"bench: sandbox {sandbox_url} (pid {sandbox.pid}), echo 127.0.0.1:{echo_port} (pid {echo.pid}), "
            f"OTLP sink 127.0.0.1:{sink_port} (pid {sink.pid}), "
            f"gateway {full.address} (pid {full.child.pid}), "
            f"sampled {sampled.address} (pid {sampled.child.pid}), minimal {minimal.address} "
            f"(pid {minimal.child.pid}), queued gateway {queued_gw.address} (pid {queued_gw.child.pid}, "
            f"no workers), Redis {redis_where}",
            flush=True,
        )

        def spec(scenario: str, driver: Driver, **fields: Any) -> LoadSpec:
            return LoadSpec(
                scenario=scenario,
                driver=driver,
                requests=options.requests,
                warmup=options.warmup,
                concurrency=options.concurrency,
                max_seconds=options.max_seconds,
                **fields,
            )

        def grpc_spec(scenario: str, target: GatewayUnderTest, **fields: Any) -> LoadSpec:
            return spec(
                scenario,
                "grpc",
                grpc_target=target.address,
                watch={"gateway": target.child.pid, "sandbox": sandbox.pid},
                api_key=fixture.api_key,
                accounts=list(target.accounts),
                idempotency_keys=target.idempotency_keys,
                **fields,
            )

        floor_b_spec = spec(
            FLOOR_B,
            "http",
            sandbox_url=sandbox_url,
            dingtalk_token=fixture.floor_b_dingtalk.access_token,
            wecom_app=fixture.floor_b_wecom_app(),
            watch={"sandbox": sandbox.pid},
        )
        queued_spec = grpc_spec(QUEUED_ACCEPT, queued_gw, queued=True)

        def echo_spec(scenario: str, port: str, server: Child) -> LoadSpec:
            """Gateway-shaped Sends to one of the bench's echo servers (floor A, floor A + Redis)."""
            return spec(
                scenario,
                "grpc",
                grpc_target=f"127.0.0.1:{port}",
                watch={"echo": server.pid, "sandbox": sandbox.pid},
                api_key=fixture.api_key,
                accounts=[DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT],
            )

        floor_a_spec = echo_spec(FLOOR_A, echo_port, echo)
        floor_a_redis_spec = echo_spec(FLOOR_A_REDIS, echo_redis_port, echo_redis)
        plan: list[tuple[LoadSpec, str, str]] = [
            (floor_a_spec, "echo", ""),
            (floor_a_redis_spec, "echo", ""),
            (floor_b_spec, "client", FLOOR_B),
            (grpc_spec(GATEWAY, full), "gateway", GATEWAY),
            (grpc_spec(SAMPLED, sampled), "gateway", SAMPLED),
            (grpc_spec(MINIMAL, minimal), "gateway", MINIMAL),
            (queued_spec, "gateway", QUEUED_ACCEPT),
            (
                spec(
                    APPRISE,
                    "apprise",
                    sandbox_url=sandbox_url,
                    dingtalk_token=fixture.apprise_dingtalk.access_token,
                    wecom_key=fixture.apprise_wecom.key,
                    watch={"sandbox": sandbox.pid},
                ),
                "client",
                APPRISE,
            ),
        ]
        servers = (sandbox, echo, echo_redis, sink, full.child, sampled.child, minimal.child, queued_gw.child)
        rounds = measure_rounds(plan, options.rounds, counted, servers)

        latency: dict[str, Any] | None = None
        if options.latency_requests > 0:
            latency = measure_latency(
                grpc_spec(GATEWAY, full),
                floor_b_spec,
                floor_a_spec,
                floor_a_redis_spec,
                options.latency_requests,
                options.rounds,
                counted,
                lambda number: TraceWindow(sink, workdir / f"latency-spans-{number}.json"),
            )

        processes: dict[int, list[ProcessRun]] = {}
        if options.process_counts:
            processes = measure_processes(
                options,
                lambda n: gateway(
                    f"processes-{n}",
                    fixture.procs_dingtalk,
                    fixture.procs_app,
                    PROCESSES_ACCOUNTS,
                    telemetry=traced,
                    rate=NEVER_REFUSING_RATE_PER_MINUTE,
                    keys=True,
                    processes=n,
                ),
                lambda target, n: dataclasses.replace(
                    grpc_spec(f"processes {n}", target),
                    watch={
                        "sandbox": sandbox.pid,
                        "otlp sink": sink.pid,
                        **({"redis": redis_pid} if redis_pid else {}),
                    },
                    watch_trees={"gateway": target.child.pid},
                    channels=PROCESS_CHANNELS,
                ),
                counted,
            )

        queued_accounts = [QUEUED_DINGTALK_ACCOUNT, QUEUED_WECOM_APP_ACCOUNT]
        watch = QueueWatch(redis_url, f"{namespace}-queued-gateway", queued_accounts)
        stack.callback(watch.close)
        backlog = watch.depth()

        def fill(count: int) -> LoadResult:
            """Queued Sends to top the queue up between delivery runs (no worker runs meanwhile)."""
            return run_load(dataclasses.replace(queued_spec, requests=count, warmup=0, watch={}), workdir)

        phase = DeliveryPhase(
            config=queued_gw.config,
            watch=watch,
            sandbox_pid=sandbox.pid,
            redis_pid=redis_pid,
            workdir=workdir,
            bound_seconds=options.max_seconds * 4,
            fill=fill,
            log=lambda line: print(line, flush=True),
        )
        deliveries: dict[int, list[DeliveryRun]] = {}
        if options.delivery_rounds > 0:
            deliveries = phase.run(options.delivery_rounds, options.requests)
        queued = {
            "backlog_after_accept_rounds": backlog,
            "deliveries": deliveries,
            "fills": phase.fills,
            "drains": phase.drains,
        }

        profile = None
        if options.profile is not None:
            targets = {GATEWAY: full, SAMPLED: sampled, MINIMAL: minimal}
            profile = run_profiles(
                options.profile,
                {name: (grpc_spec(name, target), target) for name, target in targets.items()},
                workdir,
                stamp,
                options,
                counted,
            )
        sandbox.send("stats")
        vendor = json.loads(sandbox.read_line(timeout=30))
        sink.send("stats")
        exported = json.loads(sink.read_line(timeout=30))

    return assemble(
        options, stamp, fixture, rounds, vendor, profile, queued, latency, processes, sent, exported
    )


def measure_rounds(
    plan: list[tuple[LoadSpec, str, str]],
    rounds: int,
    counted: Callable[[LoadSpec, str], LoadResult],
    children: tuple[Child, ...],
) -> dict[str, list[Row]]:
    """Every scenario once per round, rounds one after the other, so that a burst of noise on the
    shared machine hits one round of each scenario instead of all of one scenario."""
    measured: dict[str, list[Row]] = {load_spec.scenario: [] for load_spec, _, _ in plan}
    for round_number in range(1, rounds + 1):
        for load_spec, process, group in plan:
            for child in children:
                child.check_alive()
            result = counted(load_spec, group)
            measured[load_spec.scenario].append(Row.of(result, process))
            print(
                f"bench: round {round_number}/{rounds}: {load_spec.scenario}: "
                f"{result.throughput_rps:.0f} req/s, p50 {result.latency_ms['p50']:.1f} ms, "
                f"{result.errors} errors"
                + (f" (e.g. {result.error_samples[0]})" if result.error_samples else ""),
                flush=True,
            )
    return measured


def measure_latency(
    gateway_spec: LoadSpec,
    direct_spec: LoadSpec,
    echo_spec: LoadSpec,
    echo_redis_spec: LoadSpec,
    requests: int,
    rounds: int,
    counted: Callable[[LoadSpec, str], LoadResult],
    traces: Callable[[int], TraceWindow],
) -> dict[str, Any]:
    """Concurrency 1: gateway Sends (everything on), the same vendor calls straight from aiohttp,
    the bare gRPC echo and the echo making one Redis round trip, `requests` each per round, one
    after the other, `rounds` times. The two echoes price the hops a Send adds to a direct call:
    the gRPC hop, and each Redis round trip (the gateway makes two per sync Send). The gateway's
    Sends' spans, kept by the OTLP sink, say where inside the gateway their time went
    (bench.trace_breakdown)."""

    def sequential(load_spec: LoadSpec) -> LoadSpec:
        return dataclasses.replace(
            load_spec, concurrency=1, requests=requests, warmup=LATENCY_WARMUP, watch={}
        )

    measured: list[LatencyRound] = []
    breakdowns: list[dict[str, Any] | None] = []
    for number in range(1, rounds + 1):
        window = traces(number)
        through = counted(sequential(gateway_spec), GATEWAY)
        breakdown = window.breakdown(sends=LATENCY_WARMUP + requests, skip=LATENCY_WARMUP)
        if breakdown is not None:
            breakdown["outside_server_span_p50_ms"] = round(
                through.latency_ms["p50"] - breakdown["server_span_p50_ms"], 3
            )
        breakdowns.append(breakdown)
        direct = counted(sequential(direct_spec), FLOOR_B)
        echo = counted(sequential(echo_spec), "")
        echo_redis = counted(sequential(echo_redis_spec), "")
        one = LatencyRound(
            gateway_p50_ms=through.latency_ms["p50"],
            gateway_p99_ms=through.latency_ms["p99"],
            direct_p50_ms=direct.latency_ms["p50"],
            direct_p99_ms=direct.latency_ms["p99"],
            echo_p50_ms=echo.latency_ms["p50"],
            echo_p99_ms=echo.latency_ms["p99"],
            echo_redis_p50_ms=echo_redis.latency_ms["p50"],
            echo_redis_p99_ms=echo_redis.latency_ms["p99"],
            requests=requests,
        )
        measured.append(one)
        print(
            f"bench: latency {number}/{rounds} at concurrency 1: gateway p50 {one.gateway_p50_ms:.2f} ms "
            f"p99 {one.gateway_p99_ms:.2f} ms, direct aiohttp p50 {one.direct_p50_ms:.2f} ms "
            f"p99 {one.direct_p99_ms:.2f} ms, bare gRPC echo p50 {one.echo_p50_ms:.2f} ms, "
            f"echo + one Redis round trip p50 {one.echo_redis_p50_ms:.2f} ms "
            f"({through.errors + direct.errors + echo.errors + echo_redis.errors} errors)",
            flush=True,
        )
        if breakdown is not None:
            print(f"bench: latency {number}/{rounds}: {breakdown_line(breakdown)}", flush=True)
    return {
        "median": latency_median(measured),
        "rounds": measured,
        "breakdown_from_spans": median_over_rounds(breakdowns),
        "breakdown_rounds": breakdowns,
    }


def measure_processes(
    options: Options,
    start: Callable[[int], Any],
    load_for: Callable[[Any, int], LoadSpec],
    counted: Callable[[LoadSpec, str], LoadResult],
) -> dict[int, list[ProcessRun]]:
    """`serve --processes N` for each N, all started first and left running; then `--rounds`
    runs of each, in the order 1 2, 2 1, 1 2 so that a drift of the machine's load hits all."""
    started = {n: start(n) for n in options.process_counts}
    measured: dict[int, list[ProcessRun]] = {n: [] for n in options.process_counts}
    for number in range(1, options.rounds + 1):
        order = options.process_counts if number % 2 else list(reversed(options.process_counts))
        for n in order:
            target = started[n]
            target.child.check_alive()
            children = [pid for pid in descendants(target.child.pid)] if n > 1 else [target.child.pid]
            load_spec = load_for(target, n)
            load_spec = dataclasses.replace(
                load_spec, watch={**load_spec.watch, **{f"child {pid}": pid for pid in children}}
            )
            result = counted(load_spec, "processes")
            run = ProcessRun.of(n, result, [f"child {pid}" for pid in children])
            measured[n].append(run)
            busy = run.cores_busy
            print(
                f"bench: processes {number}/{options.rounds}: --processes {n}: "
                f"{run.throughput_rps:.0f} req/s, "
                f"gateway CPU {run.gateway_cpu_ms:.3f} ms/Send, cores busy: gateway {busy['gateway']:.2f}, "
                f"load {busy['load']:.2f}, sandbox {busy['sandbox']:.2f}, machine {busy['machine']:.2f} "
                f"({result.errors} errors)",
                flush=True,
            )
    for target in started.values():
        target.child.stop()
    return measured


def assemble(
    options: Options,
    stamp: str,
    fixture: Fixture,
    rounds: dict[str, list[Row]],
    vendor: dict[str, Any],
    profile: dict[str, Any] | None,
    queued: dict[str, Any],
    latency: dict[str, Any] | None,
    processes: dict[int, list[ProcessRun]],
    sent: collections.Counter[str],
    exported: dict[str, Any],
) -> tuple[dict[str, Any], list[Row]]:
    """The results document: median rows; each ratio the median of the rounds' ratios, with its
    range. A round runs every scenario back to back, so a ratio within a round compares figures
    taken under the same load of the shared machine; the ratio of two medians could pair a
    quiet round's figure with a busy round's, and even fall outside the rounds' range."""
    rows = [Row.median(per_round) for per_round in rounds.values()]
    by_name = {r.scenario: r for r in rows}
    process_medians = {n: ProcessRun.median(runs) for n, runs in processes.items() if runs}
    per_round = [
        report.ratios({name: runs[i] for name, runs in rounds.items()})
        | report.process_ratios({n: runs[i] for n, runs in processes.items() if len(runs) > i})
        for i in range(options.rounds)
    ]
    ratio = {key: float(statistics.median(r[key] for r in per_round)) for key in per_round[0]}
    spread = {key: [min(r[key] for r in per_round), max(r[key] for r in per_round)] for key in per_round[0]}
    gettoken = {name: int(n) for name, n in vendor["gettoken_calls"].items()}
    names = {
        FLOOR_B: (fixture.floor_b_dingtalk.name, fixture.floor_b_app.name),
        GATEWAY: (fixture.gateway_dingtalk.name, fixture.gateway_app.name),
        SAMPLED: (fixture.sampled_dingtalk.name, fixture.sampled_app.name),
        MINIMAL: (fixture.minimal_dingtalk.name, fixture.minimal_app.name),
        "processes": (fixture.procs_dingtalk.name, fixture.procs_app.name),
        APPRISE: (fixture.apprise_dingtalk.name, fixture.apprise_wecom.name),
        QUEUED_ACCEPT: (fixture.queued_dingtalk.name, fixture.queued_app.name),
    }
    accepted = {
        group: {"sent": sent[group], "accepted": sum(vendor["accepted"].get(n, 0) for n in robots)}
        for group, robots in names.items()
        if sent[group]
    }
    # Queued Sends reach the vendor in the delivery phase, with those of the fills between its runs;
    # without it (--delivery-rounds 0) they wait in the queue, and there is nothing to count.
    deliveries: dict[int, list[DeliveryRun]] = queued["deliveries"]
    if deliveries:
        accepted[QUEUED_ACCEPT]["sent"] += sum(int(f["sends"]) for f in queued["fills"])
    else:
        accepted.pop(QUEUED_ACCEPT, None)
    medians = {workers: DeliveryRun.median(runs) for workers, runs in deliveries.items() if runs}
    breakdown = report.breakdown(profile, by_name) if profile else {}
    document: dict[str, Any] = {
        "timestamp": stamp,
        "settings": {
            "rounds": options.rounds,
            "requests_per_round": options.requests,
            "warmup_per_round": options.warmup,
            "concurrency": options.concurrency,
            "max_seconds": options.max_seconds,
            "delivery_rounds": options.delivery_rounds,
            "latency_requests": options.latency_requests,
            "process_counts": options.process_counts,
            "process_channels": PROCESS_CHANNELS,
            "trace_export": "OTLP/gRPC batch exporter to bench.otlp_sink (accepts and discards)",
            "sample_ratio_of_sampled_gateway": SAMPLE_RATIO,
            "rate_limit_per_minute": NEVER_REFUSING_RATE_PER_MINUTE,
        },
        "machine": machine(),
        "scenarios": rows,
        "rounds": rounds,
        "ratios": ratio,
        "ratios_min_max_over_rounds": spread,
        "latency_concurrency_1": latency,
        "processes": {"runs": processes, "median": process_medians},
        "targets": report.targets(
            ratio, latency["median"] if latency else None, gettoken, fixture.gateway_app.name
        ),
        "gettoken_calls": gettoken,
        "gateway_app_account": fixture.gateway_app.name,
        "vendor_accepted": accepted,
        "vendor_refusals": vendor["refusals"],
        "otlp_sink_received": exported,
        "queued": {
            "accounts": [QUEUED_DINGTALK_ACCOUNT, QUEUED_WECOM_APP_ACCOUNT],
            "app_account": fixture.queued_app.name,
            "backlog_after_accept_rounds": queued["backlog_after_accept_rounds"],
            "delivery_rounds": options.delivery_rounds,
            "jobs_per_delivery_run": options.requests,
            "delivery_runs": deliveries,
            "delivery_median": medians,
            "delivery_scaling": delivery.scaling(medians),
            "machine_bound": report.machine_bound(medians, os.cpu_count() or 1),
            "fills": queued["fills"],
            "drains": queued["drains"],
        },
        "profile": profile,
        "breakdown_us_per_send": breakdown,
    }
    return document, rows


def run_profiles(
    tool: str,
    targets: dict[str, tuple[LoadSpec, Any]],
    workdir: Path,
    stamp: str,
    options: Options,
    counted: Callable[[LoadSpec, str], LoadResult],
) -> dict[str, Any]:
    """Each gateway's scenario once more, profiled; the timings are not reported (the profiler
    costs). py-spy attaches to the running gateways in turn; cProfile needs a gateway started
    under it, so only the main one (everything on) is profiled that way."""
    print(f"bench: profiling the gateways with {tool} under their scenarios' load", flush=True)
    profiles: dict[str, Any] = {}
    if tool == "py-spy":
        for name, (load_spec, target) in targets.items():
            slug = name.split(":")[-1].strip().replace(" ", "-").replace("%", "pc")
            out = workdir / f"pyspy-{slug}.txt"
            # Threads' CPU around py-spy's whole recording, the window its samples come from (the
            # second before the load and the stop included), so each thread's samples and CPU match.
            cpu_before = profiling.thread_cpu(target.child.pid)
            spy = profiling.start_pyspy(target.child.pid, out, workdir / f"pyspy-{slug}.log")
            time.sleep(1.0)  # let it attach
            if spy.poll() is not None:
                raise RuntimeError(
                    f"py-spy could not attach: {(workdir / f'pyspy-{slug}.log').read_text()[-500:]}"
                )
            try:
                result = counted(load_spec, name)
            finally:
                profiling.stop_pyspy(spy)
            cpu = profiling.thread_cpu_used(cpu_before, profiling.thread_cpu(target.child.pid))
            summary = profiling.summarise_collapsed(out, cpu, target.child.pid)
            summary["coverage"] = profiling.coverage(
                summary["samples"], result.cpu_seconds.get("gateway", 0.0)
            )
            raw = options.results_dir / f"{stamp}-pyspy-{slug}.txt"
            raw.write_bytes(out.read_bytes())
            summary["raw"] = str(_shown(raw))
            profiles[name] = summary
        return profiles
    load_spec, target = targets[GATEWAY]
    out = workdir / "gateway.pstats"
    profiled_config = workdir / "gateway-profiled.yaml"
    port = free_port()
    profiled_config.write_text(target.config.read_text().replace(target.address, f"127.0.0.1:{port}"))
    profiled, address = start_gateway(profiled_config, workdir / "gateway-profiled.log", cprofile_out=out)
    try:
        counted(dataclasses.replace(load_spec, grpc_target=address, watch={}), GATEWAY)
    finally:
        profiled.stop(timeout=30)
    summary = profiling.summarise_pstats(out)
    raw = options.results_dir / f"{stamp}-cprofile.pstats"
    raw.write_bytes(out.read_bytes())
    summary["raw"] = str(_shown(raw))
    profiles[GATEWAY] = summary
    return profiles


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    # Other people edit the gateway in this tree: say whether it differed from the commit.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "gateway", "generated", "protos"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "gateway_tree_modified": bool(dirty),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "packages": versions,
    }
