"""The job queue: one Redis stream per account, read by the consumer group ``workers``.

A stream and its account's records and idempotency keys share one hash slot (gateway.ids), so the
script that accepts a queued Send claims the key, writes the record and adds the job atomically,
on one Redis or a Redis Cluster. An entry stays in the stream until a worker has recorded the
message's outcome: then it is acknowledged and deleted, so the stream's length is the queue's
depth and its first entry's id dates the oldest job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from gateway.ids import slot_tag
from gateway.queue.jobs import Job
from gateway.store.idempotency import Binding, Scope, decode_binding, encode_binding, idempotency_key
from gateway.store.rate_limits import RateLimit, RedisRateLimiter, new_ticket
from gateway.store.records import RedisRecordStore, StoredRecord, record_key
from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced
from gateway.store.redis_pool import run_script
from generated.notify.v1 import notification_service_pb2 as pb

GROUP = "workers"

# KEYS: record, stream[, idempotency key]. ARGV: message_id, record bytes, record ttl (ms), queue
# limit, binding, binding ttl (ms), then the job's fields. The job also carries the record as written
# (Job.accepted), so a worker need not read it before taking the message over.
_ENQUEUE = """
if KEYS[3] then
  local bound = redis.call('GET', KEYS[3])
  if bound and cjson.decode(bound)['m'] ~= ARGV[1] then return {'bound', bound} end
end
local depth = redis.call('XLEN', KEYS[2])
if depth >= tonumber(ARGV[4]) then return {'full', tostring(depth)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ''} end
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6]) end
redis.call('HSET', KEYS[1], 'v', 1, 'r', ARGV[2], 'o', '', 'l', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'ok', redis.call('XADD', KEYS[2], '*', 'r', ARGV[2], unpack(ARGV, 7))}
"""

# KEYS: stream. ARGV: group, entry id. Acknowledged and deleted together, as one command: cheaper
# than a MULTI/EXEC pipeline of the two, and as atomic.
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""


@dataclass(frozen=True, slots=True)
class Enqueued:
    outcome: Literal["ok", "bound", "full"]
    binding: Binding | None = None  # "bound": the key names another message
    depth: int = 0  # "full": the queue's length


@dataclass(frozen=True, slots=True)
class Backlog:
    depth: int
    oldest_enqueued_at: float | None  # unix seconds; None when empty


class JobQueue:
    def __init__(self, client: redis.Redis, namespace: str, records: RedisRecordStore) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._records = records
        self._streams: dict[str, str] = {}
        self._enqueue = client.register_script(_ENQUEUE)
        self._finish = client.register_script(_FINISH)

    def stream(self, account: str) -> str:
        # Named on every accept and every job's end; the accounts are the config's, so few.
        name = self._streams.get(account)
        if name is None:
            name = self._streams[account] = self._keys.key(f"s:{slot_tag(account)}", f"queue:{account}")
        return name

    @traced("EVALSHA enqueue")
    async def enqueue(
        self,
        record: pb.MessageRecord,
        request: pb.SendRequest,
        *,
        traceparent: str,
        limit: int,
        claim: tuple[Scope, Binding, float] | None,
    ) -> Enqueued:
        """Claims the idempotency key (``claim``: scope, binding, ttl), writes the record and adds
        the job, all or nothing; or says why not: the key names another message, or the queue is full.
        """
        keys = [record_key(self._keys, record.message_id), self.stream(record.account)]
        binding, binding_ttl = "", 0
        if claim is not None:
            scope, bound, ttl = claim
            keys.append(idempotency_key(self._keys, scope))
            binding, binding_ttl = encode_binding(bound), int(ttl * 1000)
        fields = Job.fields(record.message_id, record.tenant, request, traceparent)
        args: list[Any] = [
            record.message_id,
            record.SerializeToString(),
            self._records.ttl_ms(record),
            limit,
            binding,
            binding_ttl,
            *fields,
        ]
        try:
            outcome, value = await self._records.write_listed(
                self._enqueue, keys, args, record, lambda reply: as_text(reply[0]) == "ok"
            )
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None
        outcome = as_text(outcome)
        if outcome == "bound":
            return Enqueued("bound", binding=decode_binding(value))
        if outcome == "full":
            return Enqueued("full", depth=int(value))
        if outcome == "exists":  # ids are unique: a bug
            raise RuntimeError(f"message {record.message_id} exists already")
        return Enqueued("ok")

    async def take(
        self, stored: StoredRecord, pacing: tuple[RedisRateLimiter, str, RateLimit] | None
    ) -> tuple[bool, float]:
        """A worker's compare-and-set take-over of a job's record; with ``pacing`` (the limiter,
        the account's scope and limit), it takes the account's rate slot in the same script, and
        only if the record is still the version read. Answers whether it was written, and the
        seconds to wait for a slot (0 when one was taken, or when the record had changed)."""
        if pacing is None:
            return await self._records.put(stored), 0.0
        limiter, scope, rate = pacing
        ticket = new_ticket()
        written, wait_us, epoch = await self._records.put_paced(
            stored, limiter.keys(scope), limiter.acquire_args(scope, rate, ticket)
        )
        if not written and not int(wait_us):  # changed first: no slot was asked for
            return False, 0.0
        return written, limiter.admission(scope, rate, ticket, wait_us, epoch).wait

    @traced("XGROUP CREATE")
    async def ensure_group(self, account: str) -> None:
        try:
            await self._client.xgroup_create(self.stream(account), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise store_unavailable("job queue", exc) from None
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None

    async def read(self, account: str, consumer: str, count: int, block_ms: int | None) -> list[Job]:
        """New jobs for this consumer, waiting up to ``block_ms`` for one (None: not at all; never 0,
        which Redis reads as "forever"). Untraced: it mostly waits."""
        try:
            reply: Any = await self._client.xreadgroup(
                GROUP, consumer, {self.stream(account): ">"}, count=count, block=block_ms
            )
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None
        jobs: list[Job] = []
        for _stream, entries in reply or []:
            jobs.extend(_decode(entries))
        return jobs

    @traced("XAUTOCLAIM")
    async def reclaim(self, account: str, consumer: str, idle_ms: int, count: int) -> list[Job]:
        """Jobs whose worker stopped renewing them for ``idle_ms`` (it died), now this consumer's."""
        try:
            reply: Any = await self._client.xautoclaim(
                self.stream(account), GROUP, consumer, idle_ms, start_id="0-0", count=count
            )
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None
        return _decode(reply[1])

    @traced("XCLAIM renew")
    async def renew(self, account: str, consumer: str, entry_ids: Sequence[str], idle_ms: int = 0) -> None:
        """Resets the jobs' idle time (``idle_ms`` 0: still working on them). Handing jobs back at
        shutdown sets it to the visibility timeout, so another worker reclaims them at once."""
        if not entry_ids:
            return
        try:
            await self._client.xclaim(
                self.stream(account), GROUP, consumer, 0, list(entry_ids), idle=idle_ms, justid=True
            )
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None

    @traced("XACK")
    async def finish(self, account: str, entry_id: str) -> None:
        """The record holds the outcome: the job is done."""
        try:
            await run_script(self._client, self._finish, (self.stream(account),), (GROUP, entry_id))
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None

    async def settle(self, stored: StoredRecord, account: str, entry_id: str) -> bool:
        """Writes a delivery's outcome (a compare-and-set, as RecordStore.put) and, if it is written,
        finishes the job in the same script: one round trip instead of two, and a job is never
        finished without its outcome recorded, nor left behind a record that says it is done."""
        return await self._records.put_finishing(stored, self.stream(account), GROUP, entry_id)

    @traced("XLEN backlog")
    async def backlog(self, accounts: Iterable[str]) -> dict[str, Backlog]:
        names = list(accounts)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for account in names:
                    pipe.xlen(self.stream(account))
                    pipe.xrange(self.stream(account), count=1)
                replies = await pipe.execute()
        except RedisError as exc:
            raise store_unavailable("job queue", exc) from None
        found: dict[str, Backlog] = {}
        for i, account in enumerate(names):
            depth, first = replies[2 * i], replies[2 * i + 1]
            oldest = int(as_text(first[0][0]).split("-", 1)[0]) / 1000 if first else None
            found[account] = Backlog(int(depth), oldest)
        return found


def _decode(entries: Iterable[Any]) -> list[Job]:
    # An entry deleted after it was read (its job finished) comes back without fields: skip it.
    return [Job.decode(entry_id, fields) for entry_id, fields in entries if fields]
