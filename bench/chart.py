"""The table as a PNG (matplotlib, Agg: no display needed) for people who would rather look.

Three panels: throughput, p50/p99 latency, and server CPU per message with the floor (A + B)
and the 1.5x target drawn across, so "where we stand" is one glance. A fourth shows the queued
scenario's delivery rate with 1 and 2 worker processes (when the delivery phase ran), with the
cores they kept busy, since on a small machine that is what bounds the second worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
from matplotlib.axes import Axes

from bench.report import CPU_TARGET, FLOOR_A, FLOOR_B, QUEUED_ACCEPT, Row

if TYPE_CHECKING:
    from bench.delivery import DeliveryRun

_COLOURS = {"floor": "#9aa5b1", "gateway": "#2f6fdf", "queued": "#2e9e6b", "apprise": "#e07b39"}


def _colour(row: Row) -> str:
    if row.scenario.startswith("floor"):
        return _COLOURS["floor"]
    if row.scenario == QUEUED_ACCEPT:
        return _COLOURS["queued"]
    return _COLOURS["gateway"] if row.scenario == "gateway" else _COLOURS["apprise"]


def _short(row: Row) -> str:
    return row.scenario.replace(" (", "\n(")


def draw(path: Path, rows: list[Row], deliveries: dict[int, DeliveryRun], title: str, subtitle: str) -> None:
    labels = [_short(r) for r in rows]
    colours = [_colour(r) for r in rows]
    positions = list(range(len(rows)))
    panels = 4 if deliveries else 3
    figure, axes = plt.subplots(1, panels, figsize=(5.4 * panels, 5.2))
    throughput, latency, cpu = axes[:3]
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.915, subtitle, ha="center", fontsize=9, color="#444444")

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
        cpu.axhline(
            floor * CPU_TARGET,
            color="#c62828",
            linestyle="--",
            linewidth=1,
            label=f"target {CPU_TARGET}x(A+B) = {floor * CPU_TARGET:.3f}",
        )
        cpu.legend(fontsize=8, loc="upper left")
    cpu.set_title("server CPU ms per message [measured process] (lower is better)", fontsize=10)

    cpu.set_xticks(
        positions, [f"{label}\n[{r.measured_process}]" for label, r in zip(labels, rows, strict=True)]
    )
    for axis in (throughput, latency):
        axis.set_xticks(positions, labels)
    if deliveries:
        _delivery_panel(axes[3], deliveries)
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
