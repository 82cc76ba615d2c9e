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
    Row,
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
    return row.scenario.replace(" (", "\n(")


def draw(
    path: Path,
    rows: list[Row],
    deliveries: dict[int, DeliveryRun],
    processes: dict[int, ProcessRun],
    title: str,
    subtitle: str,
) -> None:
    labels = [_short(r) for r in rows]
    colours = [_colour(r) for r in rows]
    positions = list(range(len(rows)))
    panels = 3 + bool(processes) + bool(deliveries)
    figure, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 5.6))
    throughput, latency, cpu = axes[:3]
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.915, subtitle, ha="center", fontsize=8.5, color="#444444", wrap=True)

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
    cpu.set_title("server CPU ms per message [measured process] (lower is better)", fontsize=10)

    cpu.set_xticks(
        positions, [f"{label}\n[{r.measured_process}]" for label, r in zip(labels, rows, strict=True)]
    )
    for axis in (throughput, latency):
        axis.set_xticks(positions, labels)
    extra = list(axes[3:])
    if processes:
        _processes_panel(extra.pop(0), processes)
    if deliveries:
        _delivery_panel(extra.pop(0), deliveries)
    for axis in axes:
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    figure.tight_layout(rect=(0, 0, 1, 0.91))
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
    from bench.profiling import COMPONENTS, UNSEEN

    names = list(breakdown_us)
    components = [c for c in (*COMPONENTS, UNSEEN) if any(c in parts for parts in breakdown_us.values())]
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
        axis.axvline(floor, color="#444444", linestyle=":", linewidth=1.2)
        axis.text(floor, -0.55, f"floors A+B\n{floor:.0f} µs", ha="center", va="top", fontsize=8)
        for ratio, style in ((SAMPLED_CPU_TARGET, "-."), (CPU_TARGET, "--")):
            axis.axvline(floor * ratio, color="#c62828", linestyle=style, linewidth=1)
            axis.text(
                floor * ratio,
                -0.55,
                f"{ratio}x\n{floor * ratio:.0f}",
                ha="center",
                va="top",
                fontsize=8,
                color="#c62828",
            )
    axis.set_yticks(range(len(names)), [n.replace(": ", ":\n") for n in names])
    axis.invert_yaxis()
    axis.set_ylim(len(names) - 0.4, -1.0)
    axis.set_xlabel("CPU µs per Send (gateway process)")
    axis.set_xlim(0, longest * 1.12)
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)
    axis.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.12 / len(names)), ncol=3, fontsize=8, frameon=False
    )
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
