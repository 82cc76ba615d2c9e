"""The table as a PNG (matplotlib, Agg: no display needed) for people who would rather look.

Three panels: throughput, p50/p99 latency, and server CPU per message with the floor (A + B)
and issue 15's targets (2.0x everything on, 1.5x sampling 10%) drawn across, so "where we
stand" is one glance. Then, when those phases ran, `serve --processes N` (throughput with the
cores each party kept busy) and the queued scenario's delivery rate with 1 and 2 worker
processes, since on a small machine the cores are what bound a second process.

`draw_breakdown` is the second chart: CPU per Send by component, one stacked bar per profiled
gateway, the floors and targets drawn across.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes

from bench.report import (
    CPU_TARGET,
    FLOOR_A,
    FLOOR_B,
    GATEWAYS,
    QUEUED_ACCEPT,
    SAMPLED_CPU_TARGET,
    SYNC_SEND_ROUND_TRIPS,
    Row,
    redis_round_trip_ms,
)

if TYPE_CHECKING:
    from bench.delivery import DeliveryRun
    from bench.scaling import ProcessRun

_COLOURS = {"floor": "#9aa5b1", "gateway": "#2f6fdf", "queued": "#2e9e6b", "apprise": "#e07b39"}


def _colour(row: Row) -> str:
    if row.scenario.startswith("floor"):
        return _COLOURS["floor"]
    if row.scenario == QUEUED_ACCEPT:
        return _COLOURS["queued"]
    return _COLOURS["gateway"] if row.scenario in GATEWAYS else _COLOURS["apprise"]


def _short(row: Row) -> str:
    """The scenario's name on lines of at most 12 characters, so eight labels do not overlap."""
    lines = row.scenario.replace(" (", "\n(").replace(": ", ":\n").split("\n")
    return "\n".join(textwrap.fill(line, 12) for line in lines)


def draw(
    path: Path,
    rows: list[Row],
    deliveries: dict[int, DeliveryRun],
    processes: dict[int, ProcessRun],
    latency_c1: dict[str, float] | None,
    title: str,
    subtitle: str,
) -> None:
    """Top row: the scenarios side by side; bottom row: latency at concurrency 1, processes and
    queued delivery, the phases that ran."""
    labels = [_short(r) for r in rows]
    colours = [_colour(r) for r in rows]
    positions = list(range(len(rows)))
    phases = [
        p for p in (latency_c1 and "latency", processes and "processes", deliveries and "delivery") if p
    ]
    figure, grid = plt.subplots(2 if phases else 1, 3, figsize=(21, 12 if phases else 6), squeeze=False)
    throughput, latency, cpu = grid[0]
    axes = list(grid[0])
    figure.suptitle(title, fontsize=13)
    figure.text(0.5, 0.955 if phases else 0.915, subtitle, ha="center", fontsize=9, color="#444444")

    bars = throughput.bar(positions, [r.throughput_rps for r in rows], color=colours)
    throughput.bar_label(bars, fmt="%.0f", fontsize=8)
    throughput.set_title("throughput (req/s, higher is better)", fontsize=10)

    width = 0.38
    p50 = latency.bar([p - width / 2 for p in positions], [r.p50_ms for r in rows], width, color=colours)
    p99 = latency.bar(
        [p + width / 2 for p in positions], [r.p99_ms for r in rows], width, color=colours, alpha=0.5
    )
    latency.bar_label(p50, fmt="%.1f", fontsize=7)
    latency.bar_label(p99, fmt="%.1f", fontsize=7)
    latency.set_title("latency ms: p50 (solid), p99 (light)", fontsize=10)

    bars = cpu.bar(positions, [r.server_cpu_ms for r in rows], color=colours)
    cpu.bar_label(bars, fmt="%.3f", fontsize=8)
    by_name = {r.scenario: r for r in rows}
    if FLOOR_A in by_name and FLOOR_B in by_name:
        floor = by_name[FLOOR_A].server_cpu_ms + by_name[FLOOR_B].server_cpu_ms
        cpu.axhline(floor, color="#444444", linestyle=":", linewidth=1, label=f"floor A+B = {floor:.3f}")
        for ratio, style in ((CPU_TARGET, "--"), (SAMPLED_CPU_TARGET, "-.")):
            cpu.axhline(
                floor * ratio,
                color="#c62828",
                linestyle=style,
                linewidth=1,
                label=f"target {ratio}x(A+B) = {floor * ratio:.3f}"
                + (" (everything on)" if ratio == CPU_TARGET else " (sampling 10%)"),
            )
        cpu.legend(fontsize=8, loc="upper left")
        cpu.set_ylim(0, max(r.server_cpu_ms for r in rows) * 1.35)  # room for the legend
    cpu.set_title("server CPU ms per message [measured process] (lower is better)", fontsize=10)

    cpu.set_xticks(
        positions, [f"{label}\n[{r.measured_process}]" for label, r in zip(labels, rows, strict=True)]
    )
    for axis in (throughput, latency):
        axis.set_xticks(positions, labels)
    if phases:
        bottom = list(grid[1])
        for axis in bottom[len(phases) :]:
            axis.set_visible(False)
        for axis, phase in zip(bottom, phases, strict=False):
            axes.append(axis)
            if phase == "latency" and latency_c1:
                _latency_panel(axis, latency_c1)
            elif phase == "processes":
                _processes_panel(axis, processes)
            else:
                _delivery_panel(axis, deliveries)
    for axis in axes:
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    figure.tight_layout(rect=(0, 0, 1, 0.94 if phases else 0.91))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _delivery_panel(axis: Axes, deliveries: dict[int, DeliveryRun]) -> None:
    counts = sorted(deliveries)
    runs = [deliveries[n] for n in counts]
    bars = axis.bar(range(len(counts)), [r.rate_per_second for r in runs], color=_COLOURS["queued"])
    axis.bar_label(
        bars,
        labels=[
            f"{r.rate_per_second:.0f}/s\nworkers {r.worker_cpu_ms:.2f} ms/msg\n"
            f"{r.cores_busy['total']:.2f} cores busy (machine {r.cores_busy['machine']:.2f})"
            for r in runs
        ],
        fontsize=7,
    )
    axis.set_xticks(range(len(counts)), [f"{n} worker\nprocess{'es' if n > 1 else ''}" for n in counts])
    axis.set_title("queued: messages delivered per second", fontsize=10)
    axis.margins(y=0.25)


def _latency_panel(axis: Axes, m: dict[str, float]) -> None:
    """Concurrency 1: gateway Send, direct aiohttp call and the two echoes, p50 and p99, and the
    difference."""
    width = 0.38
    sides: tuple[tuple[str, str, str], ...] = (
        ("gateway Send\n(everything on)", "gateway", _COLOURS["gateway"]),
        ("direct aiohttp\ncall", "direct", _COLOURS["floor"]),
        ("bare gRPC echo\n(floor A's server)", "echo", _COLOURS["floor"]),
        ("echo + Redis\nround trip", "echo_redis", _COLOURS["floor"]),
    )
    sides = tuple(side for side in sides if f"{side[1]}_p99_ms" in m)  # runs before the Redis echo
    for x, (_, key, colour) in enumerate(sides):
        p50 = axis.bar(x - width / 2, m[f"{key}_p50_ms"], width, color=colour)
        p99 = axis.bar(x + width / 2, m[f"{key}_p99_ms"], width, color=colour, alpha=0.5)
        axis.bar_label(p50, fmt="p50 %.2f", fontsize=8)
        axis.bar_label(p99, fmt="p99 %.2f", fontsize=8)
    axis.set_xticks(range(len(sides)), [label for label, _, _ in sides])
    axis.set_title(
        f"latency at concurrency 1 (ms): added p50 {m['added_p50_ms']:.2f} (target <= 1), "
        f"p99 {m['added_p99_ms']:.2f}",
        fontsize=10,
    )
    axis.margins(y=0.15)


def _processes_panel(axis: Axes, processes: dict[int, ProcessRun]) -> None:
    counts = sorted(processes)
    runs = [processes[n] for n in counts]
    bars = axis.bar(range(len(counts)), [r.throughput_rps for r in runs], color=_COLOURS["gateway"])
    axis.bar_label(
        bars,
        labels=[
            f"{r.throughput_rps:.0f} req/s\n{r.gateway_cpu_ms:.2f} ms CPU/Send\ncores busy: gateway "
            f"{r.cores_busy.get('gateway', 0):.2f},\nload {r.cores_busy.get('load', 0):.2f}, sandbox "
            f"{r.cores_busy.get('sandbox', 0):.2f},\nmachine {r.cores_busy.get('machine', 0):.2f}"
            for r in runs
        ],
        fontsize=7,
    )
    axis.set_xticks(range(len(counts)), [f"serve\n--processes {n}" for n in counts])
    axis.set_title("everything on, by gateway processes (req/s)", fontsize=10)
    axis.margins(y=0.45)


def draw_breakdown(
    path: Path, breakdown_us: dict[str, dict[str, float]], rows: list[Row], title: str
) -> None:
    """One horizontal stacked bar per profiled gateway: µs of CPU per Send by component, with the
    floors (A + B) and the targets drawn across, and each segment labelled when it is wide enough."""
    from bench.profiling import COMPONENTS

    names = list(breakdown_us)
    components = [c for c in COMPONENTS if any(c in parts for parts in breakdown_us.values())]
    components += [c for parts in breakdown_us.values() for c in parts if c not in components]
    palette = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    colours = {c: palette[i % len(palette)] for i, c in enumerate(components)}
    figure, axis = plt.subplots(figsize=(13, 1.6 + 1.1 * len(names)))
    longest = max(sum(parts.values()) for parts in breakdown_us.values())
    labelled: set[str] = set()
    for y, name in enumerate(names):
        left = 0.0
        for c in components:
            width = breakdown_us[name].get(c, 0.0)
            if width <= 0:
                continue
            axis.barh(
                y,
                width,
                left=left,
                color=colours[c],
                edgecolor="white",
                height=0.6,
                label=None if c in labelled else c,
            )
            labelled.add(c)
            if width >= longest * 0.045:
                axis.text(
                    left + width / 2, y, f"{width:.0f}", ha="center", va="center", fontsize=8, color="white"
                )
            left += width
        axis.text(left + longest * 0.01, y, f"{left:.0f} µs", va="center", fontsize=9)
    by_name = {r.scenario: r for r in rows}
    if FLOOR_A in by_name and FLOOR_B in by_name:
        floor = (by_name[FLOOR_A].server_cpu_ms + by_name[FLOOR_B].server_cpu_ms) * 1000
        on_top = axis.get_xaxis_transform()  # x in data, y in axes fraction: labels above the plot
        axis.axvline(floor, color="#444444", linestyle=":", linewidth=1.2)
        axis.text(
            floor, 1.01, f"floors A+B\n{floor:.0f} µs", ha="center", va="bottom", fontsize=8, transform=on_top
        )
        round_trip = redis_round_trip_ms(by_name)
        if round_trip is not None:  # what the floors leave out and a sync Send cannot: its Redis round trips
            with_redis = floor + SYNC_SEND_ROUND_TRIPS * round_trip * 1000
            axis.axvline(with_redis, color="#444444", linestyle=":", linewidth=1.2)
            axis.text(  # inside the plot, along the line: above it, the target labels are close by
                with_redis,
                0.03,
                f" A+B + {SYNC_SEND_ROUND_TRIPS} Redis round trips: {with_redis:.0f} µs ",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                transform=on_top,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
            )
        for ratio, style in ((SAMPLED_CPU_TARGET, "-."), (CPU_TARGET, "--")):
            axis.axvline(floor * ratio, color="#c62828", linestyle=style, linewidth=1)
            axis.text(
                floor * ratio,
                1.01,
                f"target {ratio}x\n{floor * ratio:.0f} µs",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#c62828",
                transform=on_top,
            )
    axis.set_yticks(range(len(names)), [n.replace(": ", ":\n") for n in names])
    axis.set_ylim(len(names) - 0.5, -0.5)  # top to bottom, as listed
    axis.set_xlabel("CPU µs per Send (gateway process)")
    axis.set_xlim(0, longest * 1.12)
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)
    axis.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.12 / len(names)), ncol=3, fontsize=8, frameon=False
    )
    axis.set_title(title, fontsize=10, pad=34)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
