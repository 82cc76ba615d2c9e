"""A queued delivery's last write: the record's compare-and-set and the end of its job in one script,
against a real Redis. The job ends only when the outcome is written; a write that loses its
compare-and-set leaves the job where it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as redis

from gateway.config import QueueSettings
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.states import ACCEPTED, SENDING, SENT, advance
from gateway.queue.jobs import Job
from gateway.queue.streams import GROUP, JobQueue
from gateway.queue.worker import Worker
from gateway.store.rate_limits import RateLimit, RedisRateLimiter
from gateway.store.records import RedisRecordStore, StoredRecord
from gateway.store.redis_connection import close, connect
from generated.notify.v1 import notification_service_pb2 as pb
from tests.message_records import accepted_record

ACCOUNT = "team-wecom"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    opened = connect(redis_url)
    yield opened
    await close(opened)


@pytest.fixture
def records(client: redis.Redis, namespace: str) -> RedisRecordStore:
    return RedisRecordStore(client, namespace)


@pytest.fixture
def queue(client: redis.Redis, namespace: str, records: RedisRecordStore) -> JobQueue:
    return JobQueue(client, namespace, records)


@pytest.fixture
def limiter(client: redis.Redis, namespace: str) -> RedisRateLimiter:
    return RedisRateLimiter(client, namespace)


async def queued_job(queue: JobQueue, records: RedisRecordStore) -> tuple[Job, StoredRecord]:
    record = accepted_record(account=ACCOUNT)
    request = pb.SendRequest(account=ACCOUNT, message=pb.Message(text=pb.Text(content="hi")))
    assert (await queue.enqueue(record, request, traceparent="", limit=10, claim=None)).outcome == "ok"
    await queue.ensure_group(ACCOUNT)
    (job,) = await queue.read(ACCOUNT, "worker-1", 10, None)
    stored = await records.get(record.message_id)
    assert stored is not None
    return job, stored


def delivered(stored: StoredRecord) -> StoredRecord:
    changed = stored.copy()
    advance(changed.record, SENDING, "calling the vendor")
    advance(changed.record, SENT, "accepted by the vendor", final=True)
    return changed


async def test_a_written_outcome_finishes_its_job_in_the_same_write(
    client: redis.Redis, records: RedisRecordStore, queue: JobQueue
) -> None:
    job, stored = await queued_job(queue, records)

    assert await queue.settle(delivered(stored), ACCOUNT, job.entry_id)

    found = await records.get(stored.message_id)
    assert found is not None and found.record.state == SENT and found.version == stored.version + 1
    assert await client.xlen(queue.stream(ACCOUNT)) == 0
    assert (await client.xpending(queue.stream(ACCOUNT), GROUP))["pending"] == 0


async def test_an_outcome_that_loses_its_compare_and_set_leaves_the_job(
    client: redis.Redis, records: RedisRecordStore, queue: JobQueue
) -> None:
    job, stored = await queued_job(queue, records)
    assert await records.put(stored.copy())  # someone else changed the record first

    assert not await queue.settle(delivered(stored), ACCOUNT, job.entry_id)

    assert await client.xlen(queue.stream(ACCOUNT)) == 1
    assert (await client.xpending(queue.stream(ACCOUNT), GROUP))["pending"] == 1


async def test_a_new_record_cannot_finish_a_job(records: RedisRecordStore) -> None:
    with pytest.raises(ValueError):
        await records.put_finishing(StoredRecord(accepted_record()), "stream", GROUP, "1-0")


# -- taking a job over: the record the job carries, and the account's rate slot in the same script --


async def test_a_job_carries_its_record_as_accepted(records: RedisRecordStore, queue: JobQueue) -> None:
    job, stored = await queued_job(queue, records)

    assert stored.version == 1
    assert pb.MessageRecord.FromString(job.accepted) == stored.record


def taking(job: Job) -> StoredRecord:
    mine = StoredRecord(pb.MessageRecord.FromString(job.accepted), version=1, owner="worker-1")
    advance(mine.record, SENDING, "calling the vendor")
    return mine


async def test_a_take_over_takes_the_accounts_slot_with_the_record(
    client: redis.Redis, records: RedisRecordStore, queue: JobQueue, limiter: RedisRateLimiter
) -> None:
    job, _ = await queued_job(queue, records)
    rate = RateLimit(2, 60.0)

    assert await queue.take(taking(job), (limiter, f"account:{ACCOUNT}", rate)) == (True, 0.0)

    found = await records.get(job.message_id)
    assert found is not None and found.record.state == SENDING and found.version == 2
    assert found.owner == "worker-1"
    assert await client.zcard(limiter.keys(f"account:{ACCOUNT}")[0]) == 1


async def test_a_take_over_of_a_changed_record_takes_no_slot(
    client: redis.Redis, records: RedisRecordStore, queue: JobQueue, limiter: RedisRateLimiter
) -> None:
    job, stored = await queued_job(queue, records)
    assert await records.put(stored.copy())  # a Recall, another worker: the version moved on

    assert await queue.take(taking(job), (limiter, f"account:{ACCOUNT}", RateLimit(2, 60.0))) == (False, 0.0)

    assert await client.zcard(limiter.keys(f"account:{ACCOUNT}")[0]) == 0
    found = await records.get(job.message_id)
    assert found is not None and found.version == 2 and not found.owner


async def test_a_take_over_without_a_slot_writes_nothing_and_says_how_long_to_wait(
    client: redis.Redis, records: RedisRecordStore, queue: JobQueue, limiter: RedisRateLimiter
) -> None:
    job, _ = await queued_job(queue, records)
    rate = RateLimit(1, 60.0)
    assert (await limiter.acquire(f"account:{ACCOUNT}", rate)).wait == 0  # the window is full now

    written, wait = await queue.take(taking(job), (limiter, f"account:{ACCOUNT}", rate))

    assert not written and 0 < wait <= 60.0
    found = await records.get(job.message_id)
    assert found is not None and found.version == 1 and not found.owner
    assert await client.zcard(limiter.keys(f"account:{ACCOUNT}")[0]) == 1


def idle_worker(queue: JobQueue, records: RedisRecordStore, limiter: RedisRateLimiter) -> Worker:
    """A worker that is never started: its take-over of one job is called directly."""
    adapter: Any = SimpleNamespace(
        rate_limit=None, prepare=lambda request, message_id: SimpleNamespace(pending_media=None)
    )
    none: Any = None
    return Worker(
        queue,
        Ledger(records),
        {ACCOUNT: adapter},
        limiter,
        none,
        none,
        QueueSettings(),
    )


async def test_a_worker_reads_a_record_changed_since_its_accept(
    records: RedisRecordStore, queue: JobQueue, limiter: RedisRateLimiter
) -> None:
    job, stored = await queued_job(queue, records)
    assert await records.put(stored.copy())  # a Recall, another worker: the job's copy is stale now
    worker = idle_worker(queue, records, limiter)

    assert await worker._start_as_accepted(ACCOUNT, worker.accounts[ACCOUNT], job) is False

    found = await records.get(job.message_id)
    assert found is not None and found.version == 2 and not found.owner


async def test_a_worker_stopped_during_its_take_over_gives_the_record_back(
    records: RedisRecordStore, queue: JobQueue, limiter: RedisRateLimiter
) -> None:
    job, _ = await queued_job(queue, records)
    worker = idle_worker(queue, records, limiter)

    starting = asyncio.create_task(worker._start_as_accepted(ACCOUNT, worker.accounts[ACCOUNT], job))
    await asyncio.sleep(0)  # the take-over's write is on its way
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    await asyncio.wait(set(worker._giving_back), timeout=5)

    found = await records.get(job.message_id)
    assert found is not None and found.record.state == ACCEPTED and not found.owner, "nothing was sent"
    assert found.version == 3, "taken over (SENDING), then given back"
