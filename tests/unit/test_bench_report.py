"""bench.report: the ratios the bench prints beside issue 15's targets."""

from __future__ import annotations

import pytest

from bench import report


def _row(scenario: str, cpu_ms: float, rps: float = 100.0) -> report.Row:
    return report.Row(
        scenario=scenario,
        measured_process="server",
        requests=1000,
        concurrency=64,
        errors=0,
        throughput_rps=rps,
        p50_ms=1.0,
        p99_ms=2.0,
        server_cpu_ms=cpu_ms,
        client_cpu_ms=0.5,
        vendor_cpu_ms=0.3,
        wall_seconds=10.0,
        truncated=False,
    )


ROWS = {
    report.FLOOR_A: _row(report.FLOOR_A, 0.45),
    report.FLOOR_B: _row(report.FLOOR_B, 0.30),
    report.GATEWAY: _row(report.GATEWAY, 3.00, rps=330.0),
    report.APPRISE: _row(report.APPRISE, 2.90, rps=300.0),
}


def test_the_target_ratio_is_over_the_two_floors() -> None:
    ratios = report.ratios(ROWS)
    assert ratios["gateway_cpu_over_floor_a_plus_b"] == pytest.approx(3.00 / 0.75)
    assert ratios["gateway_throughput_over_apprise"] == pytest.approx(1.1)
    assert "gateway_cpu_over_floors_plus_two_round_trips" not in ratios  # no Redis echo measured


def test_beside_it_the_floors_with_a_sync_sends_two_redis_round_trips() -> None:
    rows = {**ROWS, report.FLOOR_A_REDIS: _row(report.FLOOR_A_REDIS, 0.72)}  # a round trip: 0.27 ms
    ratios = report.ratios(rows)
    assert ratios["gateway_cpu_over_floors_plus_two_round_trips"] == pytest.approx(3.00 / (0.75 + 2 * 0.27))
    # the target's own ratio is unchanged
    assert ratios["gateway_cpu_over_floor_a_plus_b"] == pytest.approx(3.00 / 0.75)
