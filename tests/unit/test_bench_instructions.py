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


# A thread of grpc core's: C only.
GRPC_THREAD_DUMP = """\
# callgrind format
version: 1
events: Ir
summary: 200

ob=(1) /venv/grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so
fl=(1) cygrpc.c
fn=(1) grpc_poll
10 200
"""


def test_threads_are_counted_apart_and_labelled_by_what_runs_in_them(tmp_path: Path) -> None:
    main, exporter, grpc_core = (tmp_path / f"callgrind-x.42.1-0{n}" for n in (1, 8, 3))
    main.write_text(DUMP.replace("summary: 1000", "summary: 3000"))
    exporter.write_text(DUMP)
    grpc_core.write_text(GRPC_THREAD_DUMP)
    assert instructions.thread_counts(instructions.read_dumps([grpc_core, exporter, main]), per=10) == [
        ["thread 1 (main: event loop)", 300, ["libpython3.11.so.1.0", 70.0]],
        ["thread 8 (Python: an exporter's)", 100, ["libpython3.11.so.1.0", 70.0]],
        ["thread 3 (cygrpc)", 20, ["cygrpc.cpython-311-x86_64-linux-gnu.so", 100.0]],
    ]


def test_a_servers_counts_are_its_last_dump_of_every_thread(tmp_path: Path) -> None:
    server = instructions.CountedServer.__new__(instructions.CountedServer)
    server.out = tmp_path / "callgrind-gateway"
    server.child = type("Child", (), {"pid": 42})()  # type: ignore[assignment]
    server._control = lambda *args: None  # type: ignore[method-assign]
    for name in ("42.1-01", "42.1-02", "42.2-01", "42.2-02", "42.2-10", "43.2-01"):
        (tmp_path / f"callgrind-gateway.{name}").write_text(DUMP)
    assert [dump.name for dump in server.stop()] == [
        "callgrind-gateway.42.2-01",
        "callgrind-gateway.42.2-02",
        "callgrind-gateway.42.2-10",
    ]


def test_the_report_shows_the_threads_beside_the_libraries() -> None:
    threads = [
        ["thread 1 (main: event loop)", 2_500_000, ["libpython3.11.so.1.0", 83.0]],
        ["thread 8 (Python: an exporter's)", 240_000, ["libpython3.11.so.1.0", 91.0]],
        ["thread 6 (cygrpc)", 14_000, ["cygrpc", 82.0]],
        ["thread 5 (cygrpc)", 9_000, ["cygrpc", 80.0]],
        ["thread 4 (cygrpc)", 7_000, ["cygrpc", 85.0]],
    ]
    counts = {
        "gateway: everything on": {
            "instructions_per_call": 2_770_000.0,
            "calls": 300,
            "by_object": [["libpython3.11.so.1.0", 82.0]],
            "by_thread": threads,
        }
    }
    assert (
        "by thread: thread 1 (main: event loop) 2500k, thread 8 (Python: an exporter's) 240k, "
        "thread 6 (cygrpc) 14k, 2 more 16k" in instructions.render(counts)
    )
