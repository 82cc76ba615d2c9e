"""The gateway's Redis for one run: a throw-away redis-server on a free loopback port when the
binary is installed, else $BENCH_REDIS_URL or the shared 127.0.0.1:6379.

A private server keeps other people's test runs from sharing (and slowing) the one the gateway
talks to, and leaves nothing behind. Either way the gateway's keys live under a namespace unique
to the run. The private server's pid is yielded too: the queued scenario's delivery phase reads
its CPU, since a worker's delivery is mostly Redis round trips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

from bench.procs import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def redis_for_run() -> Iterator[tuple[str, str, int | None]]:
    """Yields (url, where, pid of the private server or None) and stops the server afterwards if
    it started one."""
    url = os.environ.get("BENCH_REDIS_URL")
    binary = shutil.which("redis-server")
    if url or binary is None:
        url = url or SHARED_URL
        if not answers(url):
            raise RuntimeError(f"no Redis answers at {url} and redis-server is not installed")
        yield url, "shared", None
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="notify-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(200):  # bounded: 10 s
            if answers(url):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server did not answer on port {port}")
        yield url, f"private redis-server pid {process.pid}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
