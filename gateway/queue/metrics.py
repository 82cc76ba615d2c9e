"""What an SRE watches of the queue: depth and age per account, outcomes, and accept-to-final time."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Observation

from gateway.queue.streams import Backlog
from gateway.telemetry import meter

# Queued messages reach their final state in seconds when the account has room, in minutes when they
# wait for a robot's 20-a-minute, and up to their expiry when the vendor is down.
ACCEPT_TO_FINAL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class _Count:
    """A counter kept as plain numbers in this process and reported when metrics are collected (an
    observable counter: the same cumulative sum on export). A Counter.add costs ~10 µs of CPU, on
    every queued Send and every delivered message; this costs a dict update. The attributes are
    few (accounts, outcomes), so the dict stays small."""

    def __init__(self, name: str, description: str) -> None:
        self._counts: dict[tuple[tuple[str, str], ...], int] = {}
        meter.create_observable_counter(name, callbacks=[self._observe], description=description)

    def add(self, amount: int, attributes: Mapping[str, str]) -> None:
        key = tuple(attributes.items())
        self._counts[key] = self._counts.get(key, 0) + amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # Called on the exporter's thread: a copy of the dict is one step under the GIL.
        return [Observation(n, dict(key)) for key, n in dict(self._counts).items()]


queue_accepted = _Count("notify.queue.accepted", "Queued Sends accepted, by account")
queue_deliveries = _Count(
    "notify.queue.deliveries",
    "Queued messages that reached a final state in a worker, by account and outcome",
)
accept_to_final = meter.create_histogram(
    "notify.queue.accept_to_final",
    unit="s",
    description="Time from a queued Send's ACCEPTED to its final state",
    explicit_bucket_boundaries_advisory=ACCEPT_TO_FINAL_BUCKETS,
)

# The last backlog a worker read, per account: gauges report it when the metrics are collected.
_backlogs: dict[str, Backlog] = {}


def record_backlogs(found: Mapping[str, Backlog]) -> None:
    _backlogs.update(found)


def _depth(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(b.depth, {"notify.account": a}) for a, b in _backlogs.items()]


def _oldest_age(options: CallbackOptions) -> Iterable[Observation]:
    now = time.time()
    return [
        Observation(
            max(0.0, now - b.oldest_enqueued_at) if b.oldest_enqueued_at else 0.0, {"notify.account": a}
        )
        for a, b in _backlogs.items()
    ]


meter.create_observable_gauge(
    "notify.queue.depth", callbacks=[_depth], description="Jobs in the account's queue (waiting or in hand)"
)
meter.create_observable_gauge(
    "notify.queue.oldest_age",
    callbacks=[_oldest_age],
    unit="s",
    description="Age of the oldest job in the account's queue; 0 when it is empty",
)
