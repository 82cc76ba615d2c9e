"""bench.instructions: reading callgrind's dumps (the counts per call and per library)."""

from __future__ import annotations

from pathlib import Path

from bench import instructions

# The shape callgrind 3.19 writes: an object is named where it first appears (as ob= or, for a
# callee, cob=) and referred to by number after; a `calls=` line is followed by the call's
# inclusive cost, which is the callee's, not the caller's own.
DUMP = """\
# callgrind format
version: 1
positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 500
+2 100
cob=(2) /venv/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so
cfl=(2) cygrpc.c
cfn=(2) grpc_call
calls=3 40
* 300
ob=(2)
fl=(2)
fn=(2)
40 300
ob=(1)
fn=(1)
-1 100
"""


def test_the_count_is_the_summary_line(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(DUMP)
    assert instructions.instructions(dump) == 1000


def test_self_instructions_by_object_leave_out_calls_inclusive_costs(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(DUMP)
    assert instructions.by_object(dump) == {
        "libpython3.11.so.1.0": 700,
        "cygrpc.cpython-311-x86_64-linux-gnu.so": 300,
    }


def test_gateway_ratios_are_over_both_floors() -> None:
    counts = {
        "floor A": {"instructions_per_call": 300_000.0},
        "floor B": {"instructions_per_call": 500_000.0},
        "gateway: everything on": {"instructions_per_call": 3_200_000.0},
    }
    assert instructions.ratios(counts) == {"gateway: everything on": 4.0}


def test_the_report_prices_each_variant_against_everything_on() -> None:
    counts = {
        "floor A": {"instructions_per_call": 300_000.0, "calls": 300, "by_object": [["libpython", 50.0]]},
        "floor B": {"instructions_per_call": 500_000.0, "calls": 200, "by_object": [["libpython", 60.0]]},
        "gateway: everything on": {"instructions_per_call": 3_200_000.0, "calls": 300, "by_object": []},
        "no rate limit": {"instructions_per_call": 3_050_000.0, "calls": 300, "by_object": []},
    }
    report = instructions.render(counts)
    assert "no rate limit: 3050k over 300 calls (-150k against everything on)" in report
    assert "gateway: everything on / (floor A + floor B): 4.00x" in report
    assert "floor A: 300k over 300 calls\n" in report
