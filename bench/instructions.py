"""Instructions per Send, counted by valgrind's callgrind: `python -m bench.instructions`.

CPU seconds on a shared 2-core machine move by 10-25% between runs, and a change worth 20 µs
hides in that. The instructions a process executes for a fixed amount of work barely move, so
this counts them, for the gateway (everything on, and sampling 10%) and for the floors: the bare
echo server (floor A) and the load process making the bare vendor calls (floor B). Their ratio
is the bench's main ratio counted in instructions instead of CPU time.

It is not the same figure. An instruction in the gateway costs more time than one in a floor:
the gateway runs far more code per call, so its caches and branch predictors miss more (a span
that takes 14 µs in a tight loop costs ~40 in the server, for the same ~50k instructions). And
each process runs ~50x slower under valgrind, so the load runs at concurrency 4, where fewer
calls share each wake-up of the event loop than at the CPU bench's 64. Use it to see what a
change buys, and where the instructions go by library; the CPU figures stay the targets.

A server runs under callgrind with counting off; after a warm-up the bench turns it on
(`callgrind_control -i on`), sends the measured calls, and dumps the counts (`-d`). The floor B
load process counts its whole run, twice with different call counts; the difference is per call.
Needs valgrind (Debian: `apt install valgrind`). About 5 minutes; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.fixture import Fixture
from bench.gateway_proc import (
    DINGTALK_ACCOUNT,
    NEVER_REFUSING_RATE_PER_MINUTE,
    SAMPLE_RATIO,
    WECOM_APP_ACCOUNT,
    wait_serving,
    write_config,
)
from bench.procs import (
    RESULTS_DIR,
    Child,
    free_port,
    otlp_telemetry,
    python_module,
    run_load,
    start_otlp_sink,
    start_sandbox,
)
from bench.redis_proc import redis_for_run
from bench.spec import LoadSpec

CONCURRENCY = 4  # under valgrind a Send takes ~50x longer: more in flight would meet the deadline
WARMUP = 60
# One dump per thread: the span exporter's thread runs on the gateway's CPU and GIL, and its share
# shows only when threads are counted apart (they are summed for the total).
CALLGRIND = ("valgrind", "--tool=callgrind", "--trace-children=no", "--separate-threads=yes")
# A dump file's thread: "<file>-<thread>", thread 01 being the main one; a server's dump files
# are "<file>.<pid>.<dump>-<thread>".
_THREAD = re.compile(r"-(\d+)$")
_DUMP_AND_THREAD = re.compile(r"\.(\d+)-\d+$")
# A shared object in a dump: named with its path where it first appears, as "ob=(id) path" (the code
# that follows is in it) or "cob=(id) path" (a call's callee is), and by "(id)" alone after that.
_OB = re.compile(r"^(c?)ob=\((\d+)\)(?: (.*))?$")


@dataclass(frozen=True)
class Variant:
    """A gateway set-up to count: the bench's main one, or it with one feature off."""

    name: str
    telemetry: Callable[[dict[str, Any]], dict[str, Any]] = lambda traced: traced
    rate_limit: bool = True
    idempotency_keys: bool = True


EVERYTHING_ON = Variant("gateway: everything on")
SAMPLED = Variant("gateway: sampling 10%", telemetry=lambda traced: {**traced, "sample_ratio": SAMPLE_RATIO})
# `--ablation`: each feature of "everything on" turned off alone, to show what it costs.
ABLATION = (
    EVERYTHING_ON,
    Variant("no OTLP export (exporter none, so no metric reader)", telemetry=lambda _: {"exporter": "none"}),
    Variant("no span recorded (sample_ratio 0)", telemetry=lambda traced: {**traced, "sample_ratio": 0.0}),
    Variant("no idempotency key", idempotency_keys=False),
    Variant("no rate limit", rate_limit=False),
    Variant(
        "gateway: minimal (none of these)",
        telemetry=lambda _: {"exporter": "none"},
        rate_limit=False,
        idempotency_keys=False,
    ),
)


def instructions(dump_file: Path) -> int:
    """The instructions a callgrind dump counted (its ``summary:`` line; ``totals:`` in older files)."""
    for line in dump_file.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"{dump_file}: no summary line, not a callgrind dump")


def by_object(dump_file: Path) -> dict[str, int]:
    """Self instructions per shared object (libpython, cygrpc, uvloop's loop, libc...): callgrind
    sees C functions only, so Python code is all in the interpreter's own library."""
    names: dict[str, str] = {}
    counts: collections.Counter[str] = collections.Counter()
    current = "?"
    in_call = False
    for line in dump_file.read_text(errors="replace").splitlines():
        if match := _OB.match(line):
            if match[3]:  # an object is named once, where it first appears (as ob= or cob=)
                names[match[2]] = Path(match[3]).name
            if not match[1]:
                current = names.get(match[2], "?")
            continue
        if line.startswith(("calls=", "cfn=", "cfi=", "cfl=")):
            in_call = line.startswith("calls=")  # the next cost line is the call's inclusive cost
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            if in_call:
                in_call = False  # inclusive cost of a call: not this function's own
                continue
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                counts[current] += int(parts[1])
    return dict(counts.most_common())


def thread_of(dump_file: Path) -> int:
    match = _THREAD.search(dump_file.name)
    return int(match[1]) if match else 1


def _dump_number(dump_file: Path) -> int:
    match = _DUMP_AND_THREAD.search(dump_file.name)
    if match is None:
        raise ValueError(f"{dump_file}: not a callgrind dump of one thread")
    return int(match[1])


@dataclass(frozen=True)
class ThreadDump:
    """One thread's dump file, read once: its total and its self instructions per shared object."""

    path: Path
    total: int
    objects: dict[str, int]


def read_dumps(dumps: list[Path]) -> list[ThreadDump]:
    return [ThreadDump(dump, instructions(dump), by_object(dump)) for dump in dumps]


def thread_counts(dumps: list[ThreadDump], per: float) -> list[list[Any]]:
    """Per thread: its label, instructions per call, its top library's share. Callgrind does not
    name threads, so they are told apart by number (1 is the main thread: the event loop) and by
    what runs in them: Python in a thread of our own (the batch span processor's and the metric
    reader's), grpc core's C in its threads."""
    rows = []
    for dump in dumps:
        objects = dump.objects
        total = sum(objects.values()) or 1
        top, top_count = next(iter(objects.items()), ("?", 0))
        number = thread_of(dump.path)
        if number == 1:
            label = "thread 1 (main: event loop)"
        elif "libpython" in top:
            label = f"thread {number} (Python: an exporter's)"
        else:
            label = f"thread {number} ({top.split('.')[0]})"
        rows.append([label, round(dump.total / per), [top, round(100 * top_count / total, 1)]])
    return sorted(rows, key=lambda row: -row[1])


def _summed_objects(dumps: list[ThreadDump]) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for dump in dumps:
        counts.update(dump.objects)
    return dict(counts.most_common())


def _object_shares(counts: dict[str, int], top: int = 8) -> list[list[Any]]:
    total = sum(counts.values()) or 1
    rows = [[name, round(100 * n / total, 1)] for name, n in list(counts.items())[:top]]
    rest = total - sum(n for n in list(counts.values())[:top])
    return [*rows, ["the rest", round(100 * rest / total, 1)]] if rest else rows


class CountedServer:
    """A server process under callgrind, counting only between ``start`` and ``stop``."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.out = workdir / f"callgrind-{name.replace(' ', '-')}"
        self.child = Child(
            name,
            [*CALLGRIND, "--instr-atstart=no", f"--callgrind-out-file={self.out}.%p", *args],
            log=workdir / f"{name.replace(' ', '-')}.log",
        )

    def start(self) -> None:
        self._control("-i", "on")

    def stop(self) -> list[Path]:
        """Dumps the counts since ``start`` and turns counting off; returns the dump's files, one
        per thread ("<out>.<pid>.<dump>-<thread>")."""
        self._control("-d")
        self._control("-i", "off")
        dumps = list(self.out.parent.glob(f"{self.out.name}.{self.child.pid}.*"))
        if not dumps:
            raise self.child.failure("wrote no callgrind dump")
        numbered = [(_dump_number(dump), dump) for dump in dumps]
        last = max(number for number, _ in numbered)
        return sorted(dump for number, dump in numbered if number == last)

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.child.pid)], check=True, capture_output=True)


def count_server(server: CountedServer, spec: LoadSpec, requests: int, workdir: Path) -> dict[str, Any]:
    """Warm-up uncounted, then ``requests`` calls counted: instructions per call."""
    run_load(replace(spec, requests=1, warmup=WARMUP), workdir)
    server.start()
    result = run_load(replace(spec, requests=requests, warmup=0), workdir)
    dump_files = server.stop()
    if result.errors:
        raise RuntimeError(f"{spec.scenario}: {result.errors} errors, e.g. {result.error_samples[:2]}")
    dumps = read_dumps(dump_files)
    return {
        "calls": result.requests,
        "instructions_per_call": sum(dump.total for dump in dumps) / result.requests,
        "by_object": _object_shares(_summed_objects(dumps)),
        "by_thread": thread_counts(dumps, result.requests),
    }


def count_client(spec: LoadSpec, requests: tuple[int, int], workdir: Path) -> dict[str, Any]:
    """The load process itself (floor B), counted whole at two call counts; the difference is
    what the extra calls cost, start-up and warm-up cancelling out."""
    totals: list[tuple[int, int, list[ThreadDump]]] = []
    for n in requests:
        out = workdir / f"callgrind-floor-b-{n}"
        prefix = (*CALLGRIND, f"--callgrind-out-file={out}")
        result = run_load(replace(spec, requests=n, warmup=WARMUP), workdir, prefix)
        if result.errors:
            raise RuntimeError(f"floor B: {result.errors} errors, e.g. {result.error_samples[:2]}")
        dumps = read_dumps(sorted(workdir.glob(f"{out.name}-*")) or [out])  # one file per thread
        totals.append((result.requests, sum(dump.total for dump in dumps), dumps))
    (n1, i1, out1), (n2, i2, out2) = totals
    fewer, more = _summed_objects(out1), _summed_objects(out2)
    extra = {name: n - fewer.get(name, 0) for name, n in more.items()}
    return {
        "calls": n2 - n1,
        "instructions_per_call": (i2 - i1) / (n2 - n1),
        "by_object": _object_shares(dict(sorted(extra.items(), key=lambda item: -item[1]))),
    }


def ratios(counts: dict[str, dict[str, Any]]) -> dict[str, float]:
    if "floor A" not in counts or "floor B" not in counts:
        return {}
    floors = counts["floor A"]["instructions_per_call"] + counts["floor B"]["instructions_per_call"]
    return {
        name: round(counts[name]["instructions_per_call"] / floors, 2)
        for name in counts
        if name.startswith("gateway")
    }


def render(counts: dict[str, dict[str, Any]]) -> str:
    lines = [f"instructions per call (callgrind, concurrency {CONCURRENCY}):"]
    main = counts.get(EVERYTHING_ON.name, {}).get("instructions_per_call")
    for name, figures in counts.items():
        per_call = figures["instructions_per_call"]
        shares = ", ".join(f"{obj} {share}%" for obj, share in figures["by_object"][:5])
        versus = ""
        if main and not name.startswith(("floor", EVERYTHING_ON.name)):
            versus = f" ({(per_call - main) / 1000:+.0f}k against everything on)"
        lines.append(
            f"  {name}: {per_call / 1000:.0f}k over {figures['calls']} calls{versus}\n"
            f"      by library: {shares}"
        )
        threads = figures.get("by_thread", [])
        if len(threads) > 1:
            shown = ", ".join(f"{label} {count / 1000:.0f}k" for label, count, _top in threads[:3])
            rest = sum(count for _label, count, _top in threads[3:])
            more = f", {len(threads) - 3} more {rest / 1000:.0f}k" if len(threads) > 3 else ""
            lines.append(f"      by thread: {shown}{more}")
    for name, ratio in ratios(counts).items():
        lines.append(f"  {name} / (floor A + floor B): {ratio:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="counted calls per server")
    parser.add_argument(
        "--gateway-only",
        action="store_true",
        help="count the everything-on gateway alone (to compare two trees)",
    )
    parser.add_argument(
        "--ablation", action="store_true", help="count the gateway again with each feature turned off alone"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    options = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench.instructions needs valgrind (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    with tempfile.TemporaryDirectory(prefix="notify-bench-instr-") as tmp:
        if options.gateway_only:
            variants: tuple[Variant, ...] = (EVERYTHING_ON,)
        else:
            variants = (*ABLATION, SAMPLED) if options.ablation else (EVERYTHING_ON, SAMPLED)
        counts = _run(options.requests, Path(tmp), variants, floors=not options.gateway_only)
    print(render(counts))
    options.results_dir.mkdir(parents=True, exist_ok=True)
    out = options.results_dir / f"{stamp}-instructions.json"
    out.write_text(
        json.dumps({"concurrency": CONCURRENCY, "counts": counts, "ratios": ratios(counts)}, indent=1)
    )
    print(f"wrote {out}")
    return 0


def _run(
    requests: int, workdir: Path, variants: tuple[Variant, ...], *, floors: bool = True
) -> dict[str, dict[str, Any]]:
    fixture = Fixture()
    spec_path = workdir / "sandbox.json"
    spec_path.write_text(json.dumps(fixture.sandbox_spec()))
    counts: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        redis_url, _where, _pid = stack.enter_context(redis_for_run())
        _sandbox, sandbox_url = start_sandbox(stack, spec_path, workdir)
        _sink, sink_port = start_otlp_sink(stack, workdir)
        traced = otlp_telemetry(sink_port)

        def base(scenario: str, driver: str, **fields: Any) -> LoadSpec:
            return LoadSpec(
                scenario=scenario,
                driver=driver,  # type: ignore[arg-type]
                requests=requests,
                warmup=WARMUP,
                concurrency=CONCURRENCY,
                max_seconds=1800.0,
                **fields,
            )

        if floors:
            echo = CountedServer("echo", python_module("bench.echo_server"), workdir)
            stack.callback(echo.child.stop)
            port = echo.child.expect("READY ", timeout=300)
            echo_spec = base(
                "floor A",
                "grpc",
                grpc_target=f"127.0.0.1:{port}",
                api_key=fixture.api_key,
                accounts=[DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT],
            )
            counts["floor A"] = count_server(echo, echo_spec, requests, workdir)
            floor_b = base(
                "floor B",
                "http",
                sandbox_url=sandbox_url,
                dingtalk_token=fixture.floor_b_dingtalk.access_token,
                wecom_app=fixture.floor_b_wecom_app(),
            )
            counts["floor B"] = count_client(floor_b, (requests // 3, requests), workdir)
        for variant in variants:
            slug = re.sub(r"[^a-z0-9]+", "-", variant.name.lower()).strip("-")
            config = workdir / f"{slug}.yaml"
            write_config(
                config,
                robot=fixture.gateway_dingtalk,
                app=fixture.gateway_app,
                accounts=(DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT),
                api_key=fixture.api_key,
                sandbox_url=sandbox_url,
                redis_url=redis_url,
                namespace=f"bench-instructions-{slug}-{int(time.time())}",
                port=free_port(),
                telemetry=variant.telemetry(traced),
                rate_limit_per_minute=NEVER_REFUSING_RATE_PER_MINUTE if variant.rate_limit else 0,
            )
            gateway = CountedServer(slug, python_module("gateway", "serve", "--config", str(config)), workdir)
            stack.callback(gateway.child.stop)
            address = str(yaml.safe_load(config.read_text())["server"]["listen"])
            wait_serving(gateway.child, address, timeout=600)
            spec = base(
                variant.name,
                "grpc",
                grpc_target=address,
                api_key=fixture.api_key,
                accounts=[DINGTALK_ACCOUNT, WECOM_APP_ACCOUNT],
                idempotency_keys=variant.idempotency_keys,
            )
            counts[variant.name] = count_server(gateway, spec, requests, workdir)
            gateway.child.stop()
    return counts


if __name__ == "__main__":
    sys.exit(main())
