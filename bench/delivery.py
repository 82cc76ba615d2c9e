"""The queued scenario's delivery phase: how fast `notify-gateway worker` processes empty a queue of
accepted Sends, with 1 worker process and with 2 (does delivery scale with workers?).

Each run starts from a queue holding `jobs` accepted Sends and no worker running (the queued
gateway has `queue.workers_in_serve: false`); then it starts the worker processes and measures
from the moment every one of them is consuming both accounts' streams until the queue is empty.
The start-up (imports, connections, the first reads) is left out on purpose: it is paid once per
process, not per message, and a second worker that starts a little later would otherwise make 2
workers look slower than they are.

What is read, and why it is cheap for the processes being measured:

- the queue's depth is XLEN of the two streams, polled from this process (a worker deletes a job
  only after the message's record holds its final state, so depth 0 means every message is
  final); nothing is asked of the workers or the sandbox while they work;
- CPU comes from /proc for every worker process, the sandbox and (when the bench started its own)
  redis-server, and for the whole machine from /proc/stat (other people's work included: the
  machine is shared), so "cores busy" says whether the machine, not the workers, was the limit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio

from bench.gateway_proc import start_worker
from bench.procs import Child, cpu_seconds, machine_cpu_seconds
from bench.spec import LoadResult
from gateway.queue.streams import GROUP, JobQueue

POLL_SECONDS = 0.025  # depth polling: ~1% of a 3000-message run at 1000/s, and two XLENs each time
CONSUMING_TIMEOUT = 60.0  # worker start-up (imports, Redis, the consumer group) on a busy machine
STOP_TIMEOUT = 30.0
WORKER_COUNTS = (1, 2)


@dataclass
class DeliveryRun:
    """One run: `workers` processes emptying the queue; CPU per message is per delivered message."""

    workers: int
    queued: int  # jobs in the queue when the workers were started
    delivered: int  # jobs finished inside the measured window
    delivered_before_window: int  # finished while the workers were still starting (not measured)
    wall_seconds: float
    rate_per_second: float
    worker_cpu_ms: float  # all worker processes together
    sandbox_cpu_ms: float
    redis_cpu_ms: float | None  # None: a shared Redis, whose CPU is not the bench's to read
    # CPU seconds / wall seconds: "workers", "sandbox", "redis", their "total", and "machine" (every
    # process on the machine, the bench's own and anyone else's)
    cores_busy: dict[str, float] = field(default_factory=dict)
    truncated: bool = False  # the time bound stopped it before the queue was empty

    @classmethod
    def median(cls, runs: list[DeliveryRun]) -> DeliveryRun:
        """Medians of the rates and CPU figures, totals of the counts (as `report.Row.median`)."""

        def mid(name: str) -> float:
            return float(statistics.median(getattr(r, name) for r in runs))

        redis_values = [r.redis_cpu_ms for r in runs if r.redis_cpu_ms is not None]
        return cls(
            workers=runs[0].workers,
            queued=sum(r.queued for r in runs),
            delivered=sum(r.delivered for r in runs),
            delivered_before_window=sum(r.delivered_before_window for r in runs),
            wall_seconds=sum(r.wall_seconds for r in runs),
            rate_per_second=mid("rate_per_second"),
            worker_cpu_ms=mid("worker_cpu_ms"),
            sandbox_cpu_ms=mid("sandbox_cpu_ms"),
            redis_cpu_ms=float(statistics.median(redis_values)) if redis_values else None,
            cores_busy={
                name: float(statistics.median(r.cores_busy[name] for r in runs))
                for name in runs[0].cores_busy
            },
            truncated=any(r.truncated for r in runs),
        )


class QueueWatch:
    """The queued accounts' streams, read from outside the measured processes."""

    def __init__(self, redis_url: str, namespace: str, accounts: list[str]) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
        # The gateway's own key layout rather than a copy of it: JobQueue needs a client only to
        # talk to Redis, and naming a stream does not (this client never connects).
        names = JobQueue(redis.asyncio.Redis(), namespace, records=None)  # type: ignore[arg-type]
        self.streams = [names.stream(account) for account in accounts]

    def depth(self) -> int:
        """Jobs waiting or in hand, in all the streams: one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xlen(stream)
        return sum(int(n) for n in pipe.execute())

    def consuming(self, pids: list[int]) -> bool:
        """Whether every one of these worker processes has read every stream (its consumer name,
        `<host>-<pid>-<hex>`, is in the group's consumer list)."""
        for stream in self.streams:
            try:
                names = [str(c["name"]) for c in self._client.xinfo_consumers(stream, GROUP)]
            except redis.ResponseError:  # no group yet: no worker has read this stream
                return False
            if not all(any(f"-{pid}-" in name for name in names) for pid in pids):
                return False
        return True

    def close(self) -> None:
        self._client.close()


@dataclass
class DeliveryPhase:
    """Runs the delivery measurements against one queued gateway's config and streams."""

    config: Path  # the queued gateway's config: the workers read the same file
    watch: QueueWatch
    sandbox_pid: int
    redis_pid: int | None
    workdir: Path
    bound_seconds: float  # each run stops after this long, emptied or not (then: truncated)
    fill: Callable[[int], LoadResult]  # sends n queued Sends through the gateway, no worker running
    log: Callable[[str], None] = print
    fills: list[dict[str, float | int]] = field(default_factory=list)
    drains: list[dict[str, float | int]] = field(default_factory=list)
    _started: int = 0

    def run(self, rounds: int, jobs: int) -> dict[int, list[DeliveryRun]]:
        """`rounds` runs per worker count, in the order 1 2, 2 1, 1 2... so that a drift of the
        machine's load over the phase hits both counts alike. The accept rounds' backlog is
        delivered first, unmeasured, and whatever a truncated run leaves is delivered last, so
        every accepted Send reaches the sandbox and its count can be checked."""
        self.drain("the accept rounds' backlog")
        measured: dict[int, list[DeliveryRun]] = {n: [] for n in WORKER_COUNTS}
        for number in range(1, rounds + 1):
            order = WORKER_COUNTS if number % 2 else tuple(reversed(WORKER_COUNTS))
            for workers in order:
                self.top_up(jobs)
                run = self.measure(workers)
                measured[workers].append(run)
                self.log(
                    f"bench: delivery {number}/{rounds}: {workers} worker process"
                    f"{'es' if workers > 1 else ''}: {run.rate_per_second:.0f} messages/s "
                    f"({run.delivered} in {run.wall_seconds:.1f} s), worker CPU {run.worker_cpu_ms:.3f} "
                    f"ms/msg, {run.cores_busy['total']:.2f} cores busy"
                    + (" (time bound hit)" if run.truncated else "")
                )
        self.drain("what the runs left")
        return measured

    def top_up(self, jobs: int) -> None:
        """Fills the queue to `jobs` with queued Sends, and checks that every ACCEPTED answer put
        exactly one job in the queue (nothing accepted that is not queued)."""
        before = self.watch.depth()
        missing = jobs - before
        if missing <= 0:
            return
        result = self.fill(missing)
        after = self.watch.depth()
        accepted = result.requests - result.errors
        self.fills.append(
            {
                "sends": result.requests,
                "errors": result.errors,
                "accept_rps": round(result.throughput_rps, 1),
                "jobs_added": after - before,
            }
        )
        if after - before != accepted:
            raise RuntimeError(
                f"{accepted} queued Sends were ACCEPTED but the queue grew by {after - before} "
                f"(from {before} to {after}); errors: {result.error_samples}"
            )

    def measure(self, workers: int) -> DeliveryRun:
        """One run: starts `workers` processes on the queue as it is, times them from the moment
        all consume to the moment the queue is empty, then stops them (SIGTERM, as an operator)."""
        queued = self.watch.depth()
        children = self.start(workers)
        try:
            self.wait_consuming(children)
            started, depth = time.perf_counter(), self.watch.depth()
            cpu_before = self.cpu(children)
            remaining, give_up, next_check = depth, started + self.bound_seconds, started + 1.0
            while remaining > 0 and time.perf_counter() < give_up:
                time.sleep(POLL_SECONDS)
                remaining = self.watch.depth()
                if time.perf_counter() >= next_check:
                    for child in children:
                        child.check_alive()
                    next_check += 1.0
            wall = time.perf_counter() - started
            cpu_after = self.cpu(children)
        finally:
            for child in children:
                child.stop(timeout=STOP_TIMEOUT)
        used = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
        delivered = depth - remaining

        def per_message(name: str) -> float:
            return used[name] / delivered * 1000 if delivered else 0.0

        machine = used.pop("machine")
        busy = {name: seconds / wall for name, seconds in used.items()}
        busy["total"] = sum(used.values()) / wall
        busy["machine"] = machine / wall
        return DeliveryRun(
            workers=workers,
            queued=queued,
            delivered=delivered,
            delivered_before_window=queued - depth,
            wall_seconds=wall,
            rate_per_second=delivered / wall if wall > 0 else 0.0,
            worker_cpu_ms=per_message("workers"),
            sandbox_cpu_ms=per_message("sandbox"),
            redis_cpu_ms=per_message("redis") if "redis" in used else None,
            cores_busy=busy,
            truncated=remaining > 0,
        )

    def drain(self, what: str) -> None:
        """Delivers every job left with 2 workers, unmeasured."""
        queued = self.watch.depth()
        if queued == 0:
            return
        children = self.start(max(WORKER_COUNTS))
        started = time.perf_counter()
        try:
            remaining = queued
            while remaining > 0 and time.perf_counter() < started + self.bound_seconds * 2:
                time.sleep(0.2)
                remaining = self.watch.depth()
                for child in children:
                    child.check_alive()
        finally:
            for child in children:
                child.stop(timeout=STOP_TIMEOUT)
        seconds = time.perf_counter() - started
        self.drains.append({"queued": queued, "left": remaining, "seconds": round(seconds, 1)})
        self.log(
            f"bench: delivered {what} ({queued} messages, unmeasured) in {seconds:.1f} s"
            + (f"; {remaining} left" if remaining else "")
        )

    def start(self, workers: int) -> list[Child]:
        """New worker processes, each with a log of its own (kept with the run's other logs)."""
        children = []
        for _ in range(workers):
            self._started += 1
            log = self.workdir / f"worker-{self._started}.log"
            children.append(start_worker(self.config, log, f"worker {self._started}"))
        return children

    def wait_consuming(self, children: list[Child]) -> None:
        deadline = time.monotonic() + CONSUMING_TIMEOUT
        pids = [child.pid for child in children]
        while not self.watch.consuming(pids):
            for child in children:
                child.check_alive()
            if time.monotonic() > deadline:
                raise children[0].failure(f"workers {pids} not consuming within {CONSUMING_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def cpu(self, children: list[Child]) -> dict[str, float]:
        readings = {
            "machine": machine_cpu_seconds(),
            "workers": sum(cpu_seconds(child.pid) for child in children),
            "sandbox": cpu_seconds(self.sandbox_pid),
        }
        if self.redis_pid is not None:
            readings["redis"] = cpu_seconds(self.redis_pid)
        return readings


def scaling(medians: dict[int, DeliveryRun]) -> float:
    """The 2-worker delivery rate over the 1-worker one: 2.0 would be perfect scaling."""
    one, two = medians.get(1), medians.get(2)
    if one is None or two is None or not one.rate_per_second:
        return float("nan")
    return two.rate_per_second / one.rate_per_second
