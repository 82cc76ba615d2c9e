"""A queued delivery's last write: the record's compare-and-set and the end of its job in one script,
against a real Redis. The job ends only when the outcome is written; a write that loses its
compare-and-set leaves the job where it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from gateway.lifecycle.states import SENDING, SENT, advance
from gateway.queue.jobs import Job
from gateway.queue.streams import GROUP, JobQueue
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
    client: redis.Redis, namespace: str
) -> None:
    records = RedisRecordStore(client, namespace)
    queue = JobQueue(client, namespace, records)
    job, stored = await queued_job(queue, records)

    assert await queue.settle(delivered(stored), ACCOUNT, job.entry_id)

    found = await records.get(stored.message_id)
    assert found is not None and found.record.state == SENT and found.version == stored.version + 1
    assert await client.xlen(queue.stream(ACCOUNT)) == 0
    assert (await client.xpending(queue.stream(ACCOUNT), GROUP))["pending"] == 0


async def test_an_outcome_that_loses_its_compare_and_set_leaves_the_job(
    client: redis.Redis, namespace: str
) -> None:
    records = RedisRecordStore(client, namespace)
    queue = JobQueue(client, namespace, records)
    job, stored = await queued_job(queue, records)
    assert await records.put(stored.copy())  # someone else changed the record first

    assert not await queue.settle(delivered(stored), ACCOUNT, job.entry_id)

    assert await client.xlen(queue.stream(ACCOUNT)) == 1
    assert (await client.xpending(queue.stream(ACCOUNT), GROUP))["pending"] == 1


async def test_a_new_record_cannot_finish_a_job(client: redis.Redis, namespace: str) -> None:
    records = RedisRecordStore(client, namespace)
    with pytest.raises(ValueError):
        await records.put_finishing(StoredRecord(accepted_record()), "stream", GROUP, "1-0")
