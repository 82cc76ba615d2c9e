"""Where the gateway's CPU goes under load: py-spy attached to the running gateway, or cProfile.

py-spy samples the unmodified gateway process from outside (`--nonblocking`: it never pauses
it), so the profile is of the gateway as deployed. Where py-spy cannot attach (no ptrace), the
gateway is run under `bench.profile_gateway` (cProfile) instead. Either way the result is
summarised as the functions with the most samples of their own ("self") and the gateway
functions whose calls hold the most samples ("inclusive"), plus self samples by library, and
by component (`component_of`: one component per sample, so the shares add up to the whole) for
the CPU-per-Send breakdown chart.
"""

from __future__ import annotations

import collections
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT

TOP = 20
_STDLIB = re.compile(r"/lib/python3\.\d+/")
_AREAS = (  # leaf frame path fragment -> what it is, first match wins
    ("/gateway/", "gateway"),
    ("/generated/", "generated stubs"),
    ("/grpc/", "grpc"),
    ("/aiohttp/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/opentelemetry/", "opentelemetry"),
    ("/redis/", "redis"),
    ("/google/protobuf/", "protobuf"),
    ("/asyncio/", "asyncio"),
    ("/logging/", "logging"),
    ("/json/", "json"),
)


# What the gateway's CPU is spent on, one concern per sample (so the shares add up): the
# outermost frame of one of these libraries names it (logging's json.dumps is the access log's);
# failing that, the innermost gateway module; failing that, C code py-spy cannot look into.
_LIBRARIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tracing: opentelemetry", ("opentelemetry/",)),
    ("logging: access log, formatter, redaction filter", ("logging/", "gateway/logs.py")),
    ("Redis client (redis-py)", ("redis/",)),
    ("vendor HTTP client (aiohttp, yarl, multidict)", ("aiohttp/", "yarl/", "multidict/")),
    ("json", ("json/",)),
    ("protobuf (Python side)", ("google/protobuf/",)),
)
_INVISIBLE = ("Handle._run (asyncio/events.py)", "Thread.run (threading.py)")
"""Leaf frames under which py-spy sees no Python: grpc's Cython server code and its poller
thread, protobuf's C parser, the C parts of asyncio."""


def concern_of(frames: list[str]) -> str:
    for frame in frames:
        for concern, fragments in _LIBRARIES:
            if any(f"({fragment}" in frame for fragment in fragments):
                return concern
    if frames and frames[-1] in _INVISIBLE:
        return "grpc Cython / asyncio C (no Python frame)"
    for frame in reversed(frames):
        if "(gateway/" in frame:
            return "gateway code: " + frame.partition(" (")[2].rstrip(")")
    return "other: " + (frames[-1] if frames else "?")


# The breakdown chart's components, in the order they are stacked.
GRPC = "gRPC server + event loop (C: grpc core, Cython, uvloop)"
INTERCEPTORS = "interceptors (auth, errors, ...)"
CHAIN = "chain steps"
REDIS = "Redis (redis-py, gateway store code)"
VENDOR = "vendor call (aiohttp, adapters, tokens)"
OTEL = "OpenTelemetry (spans, batch export)"
LOGGING = "logging (access log)"
PROTOBUF = "protobuf (Python side)"
GATEWAY_OTHER = "other gateway code (service, handlers)"
OTHER = "other"
COMPONENTS = (GRPC, INTERCEPTORS, CHAIN, REDIS, VENDOR, OTEL, LOGGING, PROTOBUF, GATEWAY_OTHER, OTHER)

# Libraries that own everything they call: the outermost frame of one of them on a stack names
# the sample (a span exported through grpc is OpenTelemetry's; asyncio streams under redis-py
# are Redis's).
_OWNING = (
    (OTEL, ("opentelemetry/",)),
    (LOGGING, ("logging/", "gateway/logs.py")),
    (REDIS, ("redis/",)),
    (VENDOR, ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    (PROTOBUF, ("google/protobuf/",)),
)
# Gateway modules, for a stack with no owning library: the innermost gateway frame names it.
_GATEWAY_MODULES = (
    (OTEL, ("gateway/telemetry.py", "gateway/interceptors/tracing.py")),
    (LOGGING, ("gateway/interceptors/access_log.py", "gateway/redaction.py")),
    (INTERCEPTORS, ("gateway/interceptors/", "gateway/tenants.py")),
    (CHAIN, ("gateway/chain/",)),
    (REDIS, ("gateway/store/", "gateway/lifecycle/")),
    (VENDOR, ("gateway/channels/", "gateway/tokens/")),
    (PROTOBUF, ("generated/",)),
)
# Frames every sample of the main thread has below the work: the entry point and the loop's run.
_ENTRY = (
    "(<frozen runpy>)",
    "(runpy.py)",
    "(gateway/__main__.py)",
    "(gateway/cli.py)",
    "(asyncio/runners.py)",
    "(bench/profile_gateway.py)",
)
_THREAD_ENTRY = ("(threading.py)",)


def component_of(frames: list[str]) -> str:
    """The component one sample's stack (short frames, outermost first) is charged to."""
    for frame in frames:
        for component, fragments in _OWNING:
            if any(f"({fragment}" in frame for fragment in fragments):
                return component
    work = [f for f in frames if not any(f.endswith(entry) for entry in _ENTRY)]
    for frame in reversed(work):
        if "(gateway/" in frame:
            for component, fragments in _GATEWAY_MODULES:
                if any(f"({fragment}" in frame for fragment in fragments):
                    return component
            return GATEWAY_OTHER
        if "(generated/" in frame:
            return PROTOBUF
    if (
        not work
        or any("(grpc/" in f for f in work)
        or all("(asyncio/" in f for f in work)
        or all(f.endswith(_THREAD_ENTRY) for f in work)
    ):
        # No Python frame of ours: grpc's Cython server and C core, protobuf's C parser and the
        # event loop's own work (uvloop is C) show as the loop's run, a bare grpc frame, or a
        # thread whose target is C (grpc.aio's poller).
        return GRPC
    return OTHER


ThreadCpu = dict[int, tuple[str, float]]
"""Linux thread id -> (its comm, CPU seconds used: utime + stime)."""


def thread_cpu(pid: int) -> ThreadCpu:
    """Per-thread CPU of a process now, from /proc: what py-spy's samples are weighted with."""
    out: ThreadCpu = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return out


def thread_cpu_used(before: ThreadCpu, after: ThreadCpu) -> ThreadCpu:
    return {tid: (comm, cpu - before.get(tid, ("", 0.0))[1]) for tid, (comm, cpu) in after.items()}


# `--threads` makes py-spy put "thread (ID): NAME" (or "thread (ID)" for a thread it has no name
# for) first on each stack. On Linux ID is the OS thread id (the TID in /proc/PID/task, read from
# the thread state's native_thread_id) when py-spy knows it, else the pthread id in hex (0x...),
# which /proc does not show: then only the main thread (name MainThread, TID == PID) is matched.
_THREAD_LABEL = re.compile(r"thread \((\d+|0x[0-9A-Fa-f]+)\)(?:: (.*))?")
UNSAMPLED = "threads without Python (grpc core C threads)"


def coverage(samples: int, cpu_seconds: float, rate: int = 200) -> float:
    """Sampled seconds over the process's CPU seconds in its measured phase, a sanity check kept
    in the JSON: py-spy also samples the warm-up, so it runs above 1; far below 1 would mean CPU
    in threads py-spy cannot see (grpc core's C threads)."""
    return (samples / rate) / cpu_seconds if cpu_seconds > 0 else 1.0


def pyspy_binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_pyspy(pid: int, out: Path, log: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    binary = pyspy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed")
    args = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--full-filenames"]
    args.append("--threads")  # which thread each stack is from, to weight it by that thread's CPU
    with log.open("wb") as errors:
        return subprocess.Popen(
            [*args, "--nonblocking", "--output", str(out)], stdout=errors, stderr=subprocess.STDOUT
        )


def stop_pyspy(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """py-spy writes its output when interrupted, as after Ctrl-C."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _short(frame: str) -> str:
    """ "Send (/work/main/gateway/service.py:17)" -> "Send (gateway/service.py)": import paths,
    so "trace/__init__.py" still says whether it is OpenTelemetry's."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    head, colon, line = path.rpartition(":")
    if colon and line.isdigit():
        path = head
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return f"{name} ({path.split(marker, 1)[1]})"
    stdlib = _STDLIB.search(path)
    if stdlib:
        return f"{name} ({path[stdlib.end() :]})"
    root = str(REPO_ROOT) + "/"
    return f"{name} ({path.removeprefix(root)})"


def _area(frame: str) -> str:
    path = "/" + frame.partition(" (")[2]
    return next((area for fragment, area in _AREAS if fragment in path), "other")


Stack = tuple[str | None, str, list[str], int]
"""One line of py-spy's raw output: thread id label (None without --threads), thread name, short
frames outermost first, sample count."""


def read_collapsed(path: Path) -> list[Stack]:
    stacks: list[Stack] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        raw = [f for f in stack.split(";") if f]
        label = _THREAD_LABEL.fullmatch(raw[0]) if raw else None
        if label:
            raw = raw[1:]
        frames = [_short(f) for f in raw]
        if frames:
            stacks.append(
                (label[1] if label else None, (label[2] or "") if label else "", frames, int(count_text))
            )
    return stacks


def thread_weights(
    stacks: list[Stack], cpu: ThreadCpu, pid: int
) -> tuple[dict[str, float], float, list[dict[str, Any]]] | None:
    """CPU µs per sample for each sampled thread, the CPU seconds of the threads py-spy never
    sampled (C threads), and a table of the threads; None when a sampled thread has no TID (no
    --threads, or a pthread id), and the samples stay unweighted. A TID gone from /proc by the
    end (a thread that ended) counts as no CPU: its CPU is no longer in any thread's figures."""
    samples: collections.Counter[str] = collections.Counter()
    names: dict[str, str] = {}
    for thread, name, _frames, count in stacks:
        samples[thread or ""] += count
        names[thread or ""] = name
    tids = {
        t: pid if names[t] == "MainThread" else int(t)
        for t in samples
        if t.isdigit() or names[t] == "MainThread"
    }
    if len(tids) < len(samples):
        return None
    used = {t: cpu.get(tid, ("", 0.0))[1] for t, tid in tids.items()}
    total = sum(seconds for _comm, seconds in cpu.values()) or 1.0
    table = [
        {
            "tid": tids[t],
            "name": "main" if tids[t] == pid else names[t] or cpu.get(tids[t], ("?", 0.0))[0],
            "cpu_seconds": round(used[t], 3),
            "cpu_percent": round(100 * used[t] / total, 1),
            "samples": n,
        }
        for t, n in samples.most_common()
    ]
    unsampled = [(comm, seconds) for tid, (comm, seconds) in cpu.items() if tid not in tids.values()]
    c_seconds = sum(seconds for _comm, seconds in unsampled)
    if unsampled:
        comms = collections.Counter(comm for comm, seconds in unsampled if seconds > 0)
        table.append(
            {
                "tid": None,
                "name": "C threads ("
                + ", ".join(f"{c} x{n}" if n > 1 else c for c, n in sorted(comms.items()))
                + ")",
                "cpu_seconds": round(c_seconds, 3),
                "cpu_percent": round(100 * c_seconds / total, 1),
                "samples": 0,
            }
        )
    return {t: used[t] * 1e6 / samples[t] for t in tids}, c_seconds, table


def summarise_collapsed(path: Path, cpu: ThreadCpu | None = None, pid: int | None = None) -> dict[str, Any]:
    """Self and inclusive shares per function, from py-spy's raw (collapsed) output. Given each
    thread's CPU over the recording (`thread_cpu_used`, for a file recorded with --threads), the
    shares are of CPU: each thread's samples are scaled to its CPU, since py-spy counts a thread
    that waits in C as busy (grpc.aio's poller) and does not see C threads at all (grpc core's,
    whose CPU goes to GRPC). Otherwise they are shares of samples."""
    stacks = read_collapsed(path)
    weighted = thread_weights(stacks, cpu, pid) if cpu is not None and pid is not None else None
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    concerns: collections.Counter[str] = collections.Counter()
    components: collections.Counter[str] = collections.Counter()
    for thread, _name, frames, count in stacks:
        weight = round(count * weighted[0].get(thread or "", 0.0)) if weighted else count  # µs or samples
        own[frames[-1]] += weight
        areas[_area(frames[-1])] += weight
        for frame in set(frames):
            inclusive[frame] += weight
        concerns[concern_of(frames)] += weight
        components[component_of(frames)] += weight
    if weighted:
        c_threads = round(weighted[1] * 1e6)
        for counter in (own, areas, concerns):
            counter[UNSAMPLED] += c_threads
        components[GRPC] += c_threads
    total = sum(own.values())
    summary = {
        "tool": "py-spy",
        "samples": sum(count for *_rest, count in stacks),
        "self": _shares(own, total),
        "inclusive_gateway": _shares(
            collections.Counter({f: n for f, n in inclusive.items() if "(gateway/" in f}), total
        ),
        "self_by_area": _shares(areas, total),
        "by_concern": _shares(concerns, total),
        "by_component": _ordered(components, total),
        "weighting": "thread CPU" if weighted else "samples",
    }
    if weighted:
        summary["cpu_seconds"] = round(total / 1e6, 3)
        summary["threads"] = weighted[2]
    return summary


def summarise_pstats(path: Path) -> dict[str, Any]:
    """The same summary from a cProfile dump (times instead of samples)."""
    stats: Any = pstats.Stats(str(path))
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    for (filename, _line, name), (_cc, _nc, tottime, cumtime, _callers) in stats.stats.items():
        frame = _short(f"{name} ({filename}:0)")
        own[frame] += int(tottime * 1e6)
        cumulative[frame] += int(cumtime * 1e6)
    total = sum(own.values())
    return {
        "tool": "cProfile",
        "samples": total,
        "self": _shares(own, total),
        "inclusive_gateway": _shares(
            collections.Counter({f: n for f, n in cumulative.items() if "(gateway/" in f}), total
        ),
        "self_by_area": _shares(_areas_of(own), total),
        "by_component": _ordered(_components_of(own), total),
    }


def _components_of(own: collections.Counter[str]) -> collections.Counter[str]:
    """cProfile has no stacks: each function's own time goes to the component of its file (so a
    library's time is its own, not its caller's; rougher than py-spy's)."""
    components: collections.Counter[str] = collections.Counter()
    for frame, n in own.items():
        components[component_of([frame])] += n
    return components


def _ordered(counter: collections.Counter[str], total: int) -> list[list[Any]]:
    """Shares in the chart's stacking order, the empty ones (to 0.01%) left out."""
    shares = [[c, round(100 * counter[c] / total, 2)] for c in COMPONENTS] if total else []
    return [share for share in shares if share[1]]


def _areas_of(own: collections.Counter[str]) -> collections.Counter[str]:
    areas: collections.Counter[str] = collections.Counter()
    for frame, n in own.items():
        areas[_area(frame)] += n
    return areas


def _shares(counter: collections.Counter[str], total: int) -> list[list[Any]]:
    return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(TOP)] if total else []


def render(summary: dict[str, Any]) -> str:
    lines = [f"profile of the gateway under load ({summary['tool']}, {summary['samples']} samples)"]
    if "threads" in summary:
        lines[0] = lines[0][:-1] + f", weighted by each thread's CPU, {summary['cpu_seconds']:.2f} s)"
        lines.append(
            "  threads, % of CPU (samples): "
            + ", ".join(f"{t['name']} {t['cpu_percent']:.1f} ({t['samples']})" for t in summary["threads"])
        )
    elif "coverage" in summary:
        lines[0] = lines[0][:-1] + f"; sampled seconds / CPU seconds = {summary['coverage']:.2f})"
    for key, title in (
        ("by_component", "by component, as in the breakdown chart (%)"),
        ("by_concern", "where the samples go, one concern each (%)"),
        ("self_by_area", "self time by library (% of samples)"),
        ("self", "top functions by self time (%)"),
        ("inclusive_gateway", "gateway functions by inclusive time (%)"),
    ):
        lines.append(f"  {title}:")
        lines.extend(f"    {share:5.1f}  {name}" for name, share in summary.get(key, []))
    return "\n".join(lines)
