"""bench.profiling: py-spy samples weighted by each thread's measured CPU, and the unweighted path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bench import profiling
from bench.procs import REPO_ROOT

PID = 1000
STDLIB = "/root/.pyenv/versions/3.11.7/lib/python3.11"
SITE = f"{REPO_ROOT}/.venv/lib/python3.11/site-packages"
MAIN = (
    f"_run_module_as_main (<frozen runpy>:198);_run_code (<frozen runpy>:88);"
    f"<module> ({REPO_ROOT}/gateway/__main__.py:5);main ({REPO_ROOT}/gateway/cli.py:167);"
    f"Runner.run ({STDLIB}/asyncio/runners.py:118)"
)
THREAD = (
    f"Thread._bootstrap ({STDLIB}/threading.py:1002);"
    f"Thread._bootstrap_inner ({STDLIB}/threading.py:1045);Thread.run ({STDLIB}/threading.py:982)"
)
OTEL = f"{SITE}/opentelemetry/sdk/_shared_internal/__init__.py"
# As `py-spy record --format raw --threads` writes it (py-spy 0.4.3 on Linux): the first frame
# is "thread (TID): name".
RAW = f"""\
thread (1000): MainThread;{MAIN};Chain.run ({REPO_ROOT}/gateway/chain/chain.py:40) 60
thread (1000): MainThread;{MAIN} 20
thread (1000): MainThread;{MAIN};Redis.execute_command ({SITE}/redis/asyncio/client.py:601) 20
thread (1001): Thread-1 (_poll_wrapper);{THREAD} 50
thread (1002): OtelBatchSpanRecordProcessor;{THREAD};BatchProcessor.worker ({OTEL}:160) 10
"""
CPU: profiling.ThreadCpu = {
    1000: ("python", 8.0),
    1001: ("python", 0.5),
    1002: ("python", 0.5),
    1003: ("event_engine", 0.6),
    1004: ("event_engine", 0.2),
    1005: ("grpc_global_tim", 0.2),
}
SAMPLE_SHARES = {  # of 160 samples
    profiling.GRPC: 43.75,  # 20 + 50
    profiling.CHAIN: 37.5,
    profiling.REDIS: 12.5,
    profiling.OTEL: 6.25,
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyspy.txt"
    path.write_text(text)
    return path


def test_samples_are_weighted_by_their_threads_cpu(tmp_path: Path) -> None:
    summary = profiling.summarise_collapsed(_write(tmp_path, RAW), CPU, PID)
    # main thread: 8 s over 100 samples; poller 0.5 s, exporter 0.5 s; C threads 1 s -> gRPC
    assert dict(summary["by_component"]) == {
        profiling.GRPC: 31.0,  # 1.6 (main, bare loop) + 0.5 (poller) + 1.0 (C threads)
        profiling.CHAIN: 48.0,
        profiling.REDIS: 16.0,
        profiling.OTEL: 5.0,
    }
    assert summary["weighting"] == "thread CPU"
    assert summary["samples"] == 160
    assert summary["cpu_seconds"] == 10.0
    threads = {t["name"]: (t["cpu_percent"], t["samples"]) for t in summary["threads"]}
    assert threads == {
        "main": (80.0, 100),
        "Thread-1 (_poll_wrapper)": (5.0, 50),
        "OtelBatchSpanRecordProcessor": (5.0, 10),
        "C threads (event_engine x2, grpc_global_tim)": (10.0, 0),
    }
    assert "threads, % of CPU (samples): main 80.0 (100)" in profiling.render(summary)


def test_without_cpu_the_shares_are_of_samples(tmp_path: Path) -> None:
    summary = profiling.summarise_collapsed(_write(tmp_path, RAW))
    assert dict(summary["by_component"]) == SAMPLE_SHARES
    assert summary["weighting"] == "samples"
    assert "threads" not in summary


def test_a_file_without_thread_labels_stays_unweighted(tmp_path: Path) -> None:
    plain = "\n".join(line.split(";", 1)[1] for line in RAW.splitlines())
    summary = profiling.summarise_collapsed(_write(tmp_path, plain), CPU, PID)
    assert dict(summary["by_component"]) == SAMPLE_SHARES
    assert summary["weighting"] == "samples"
    assert summary["samples"] == 160


def test_pthread_ids_match_only_the_main_thread(tmp_path: Path) -> None:
    """py-spy falls back to the pthread id (hex) when it has no OS thread id: /proc cannot match a
    worker thread then, so the samples stay unweighted."""
    hex_ids = RAW.replace("thread (1001)", "thread (0x7FC1944856C0)")
    assert profiling.summarise_collapsed(_write(tmp_path, hex_ids), CPU, PID)["weighting"] == "samples"
    main_hex = RAW.replace("thread (1000)", "thread (0x7FC194FE4B80)")
    summary = profiling.summarise_collapsed(_write(tmp_path, main_hex), CPU, PID)
    assert summary["weighting"] == "thread CPU"
    assert dict(summary["by_component"])[profiling.CHAIN] == 48.0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_thread_cpu_reads_this_process() -> None:
    before = profiling.thread_cpu(os.getpid())
    sum(i * i for i in range(300_000))
    used = profiling.thread_cpu_used(before, profiling.thread_cpu(os.getpid()))
    assert threading.get_native_id() in used
    assert all(seconds >= 0 for _comm, seconds in used.values())
