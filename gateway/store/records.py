"""Message records: what the gateway knows of each message, keyed by its own message_id.

A record is the protobuf ``MessageRecord`` plus three fields only the gateway reads: a version
(every write is a compare-and-set on it, so two replicas never overwrite each other's change),
the owner of an in-flight Send and the time its lease ends (so a crashed replica's Send is
resolved by whoever reads it next). Records are kept for the configured retention (7 days by
default), in Redis when configured, else in this process. Each tenant has an index of its
message ids for ListMessages; message ids are ULIDs, so the index sorts by time as it sorts by id.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.ids import id_slot_tag, min_id_at
from gateway.store.rate_limits import ACQUIRE_FUNCTION
from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced
from gateway.store.redis_pool import run_script
from generated.notify.v1 import notification_service_pb2 as pb

DEFAULT_RETENTION = 7 * 24 * 3600.0


@dataclass(slots=True)
class StoredRecord:
    record: pb.MessageRecord
    version: int = 0  # 0: not stored yet
    owner: str = ""  # the Send working on it, while it is ACCEPTED or SENDING
    lease_until: float = 0.0  # unix seconds; past it, the owner is presumed dead

    @property
    def message_id(self) -> str:
        return self.record.message_id

    def copy(self) -> StoredRecord:
        record = pb.MessageRecord()
        record.CopyFrom(self.record)
        return StoredRecord(record, self.version, self.owner, self.lease_until)


class RecordStore(Protocol):
    async def put(self, stored: StoredRecord) -> bool:
        """Writes ``stored`` if the stored version is still ``stored.version`` (0: absent), and
        bumps the version; False when someone else changed it first."""
        ...

    async def get(self, message_id: str) -> StoredRecord | None: ...

    async def extend_lease(self, message_id: str, owner: str, lease_until: float) -> bool:
        """Pushes the lease forward while ``owner`` still holds it; the version is unchanged."""
        ...

    async def newest(
        self, tenant: str, before: str | None, not_before: str, limit: int
    ) -> list[StoredRecord]:
        """The tenant's records with ids below ``before`` (or all) and at or above ``not_before``,
        newest first; ids whose records expired are skipped."""
        ...


class MemoryRecordStore:
    """Bounded by count as well as age, so a long-running single process does not grow forever."""

    def __init__(self, retention: float = DEFAULT_RETENTION, max_records: int = 100_000) -> None:
        self._retention = retention
        self._max = max_records
        self._records: dict[str, StoredRecord] = {}
        # Every stored id, sorted: ids are ULIDs, so this is creation order whatever order the
        # records were written in (a Send may create its record after a later one did).
        self._ids: list[str] = []

    async def put(self, stored: StoredRecord) -> bool:
        current = self._live(stored.message_id)
        if (current.version if current else 0) != stored.version:
            return False
        stored.version += 1
        if current is None:
            bisect.insort(self._ids, stored.message_id)
        # A copy, so a caller that goes on changing its object cannot change what is stored.
        self._records[stored.message_id] = stored.copy()
        while len(self._ids) > self._max:  # full: forget the oldest
            del self._records[self._ids.pop(0)]
        return True

    async def get(self, message_id: str) -> StoredRecord | None:
        found = self._live(message_id)
        return found.copy() if found else None

    async def extend_lease(self, message_id: str, owner: str, lease_until: float) -> bool:
        found = self._live(message_id)
        if found is None or found.owner != owner:
            return False
        found.lease_until = lease_until
        return True

    async def newest(
        self, tenant: str, before: str | None, not_before: str, limit: int
    ) -> list[StoredRecord]:
        found: list[StoredRecord] = []
        index = len(self._ids) if before is None else bisect.bisect_left(self._ids, before)
        lowest = bisect.bisect_left(self._ids, not_before)
        while index > lowest and len(found) < limit:
            index -= 1
            stored = self._records[self._ids[index]]
            if stored.record.tenant == tenant and not self._expired(stored):
                found.append(stored.copy())
        return found

    def _live(self, message_id: str) -> StoredRecord | None:
        stored = self._records.get(message_id)
        if stored is not None and self._expired(stored):
            del self._records[message_id]
            self._ids.remove(message_id)
            return None
        return stored

    def _expired(self, stored: StoredRecord) -> bool:
        return stored.record.create_time.seconds + self._retention < time.time()


# KEYS[1] record[, KEYS[2] a queue stream]. ARGV: expected version, record bytes, owner, lease (ms),
# ttl (ms)[, the stream's group, the entry id of the job to finish once the record is written].
_PUT = """
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', version + 1, 'r', ARGV[2], 'o', ARGV[3], 'l', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if KEYS[2] then
  redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
  redis.call('XDEL', KEYS[2], ARGV[7])
end
return 1
"""
# KEYS[1] record, KEYS[2] the account's rate window, KEYS[3] its marker (gateway.store.rate_limits).
# ARGV: as _PUT's first five, then the acquire function's from the window on. A take-over that also
# takes the account's rate slot: the slot is taken only if the record is still the version read, and
# the record written only if a slot was free. Answers {written, wait (us), the store's epoch}.
_PUT_PACED = (
    ACQUIRE_FUNCTION
    + """
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[1]) then return {0, 0, ''} end
local admitted = acquire(KEYS[2], KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10])
if admitted[1] > 0 then return {0, admitted[1], admitted[2]} end
redis.call('HSET', KEYS[1], 'v', version + 1, 'r', ARGV[2], 'o', ARGV[3], 'l', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0, admitted[2]}
"""
)
_EXTEND = """
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[2])
return 1
"""


#: How often one process trims a tenant's index of ids past retention and renews its expiry: it is
#: upkeep, not per-message work, so a Send's own write is the record script and one ZADD.
INDEX_UPKEEP_SECONDS = 60.0
#: Tenants whose last upkeep a process remembers; one forgotten is only trimmed again sooner.
_UPKEEP_TENANTS = 10_000


class RedisRecordStore:
    """A record is a hash at ``ns:{s:<slot tag>}:record:<message_id>``; a tenant's index is a sorted
    set of ids at ``ns:{tenant:<name>}:messages``, all scores 0 so it orders by id (time).

    The index stays bounded although a Send only adds to it: every process that adds to a tenant's
    index trims it of ids past retention and renews its expiry on the tenant's first Send and then
    at most every INDEX_UPKEEP_SECONDS. So it holds at most retention plus that interval of ids, and
    its expiry (retention plus the interval) outlasts the newest record it lists, so no live record
    drops out of ListMessages early. Ids whose records expired in between are skipped by ``newest``.
    """

    def __init__(self, client: redis.Redis, namespace: str, retention: float = DEFAULT_RETENTION) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._retention = retention
        self._index_ttl_ms = int((retention + INDEX_UPKEEP_SECONDS) * 1000)
        self._upkept: dict[str, float] = {}  # tenant -> monotonic time of its index's last upkeep
        self._put = client.register_script(_PUT)
        self._put_paced = client.register_script(_PUT_PACED)
        self._extend = client.register_script(_EXTEND)

    def _key(self, message_id: str) -> str:
        return record_key(self._keys, message_id)

    def ttl_ms(self, record: pb.MessageRecord) -> int:
        """How long the record has left of its retention, counted from its creation."""
        return max(1, int((record.create_time.seconds + self._retention - time.time()) * 1000))

    def _index(self, tenant: str) -> str:
        return self._keys.key(f"tenant:{tenant}", "messages")

    @traced("EVALSHA record")
    async def put(self, stored: StoredRecord) -> bool:
        return await self._write(stored)

    @traced("EVALSHA record+finish")
    async def put_finishing(self, stored: StoredRecord, stream: str, group: str, entry_id: str) -> bool:
        """``put`` of a stored record that, when it is written, also acknowledges and deletes the
        queue job ``entry_id`` in the same script (the stream shares the record's hash slot): a
        queued delivery's last write and the end of its job, in one round trip and all or nothing."""
        if not stored.version:
            raise ValueError("put_finishing writes a stored record, not a new one")
        return await self._write(stored, (stream,), (group, entry_id))

    @traced("EVALSHA record+acquire")
    async def put_paced(
        self, stored: StoredRecord, rate_keys: tuple[str, str], acquire_args: Sequence[Any]
    ) -> tuple[bool, Any, Any]:
        """``put`` of a stored record that also takes a slot of the rate window ``rate_keys`` (its
        arguments ``acquire_args``, as RedisRateLimiter.acquire_args) in the same script: the slot is
        taken only if the record is still the version read, and the record written only if a slot
        was free. A queue worker's take-over of a job, paced by its account, in one round trip and
        without a slot to give back when someone changed the record first. Answers whether it was
        written, and the acquire's wait (us, 0 when admitted) and store epoch (RedisRateLimiter.admission).
        """
        if not stored.version:
            raise ValueError("put_paced writes a stored record, not a new one")
        keys = (self._key(stored.record.message_id), *rate_keys)
        try:
            ((written, wait_us, epoch),) = await run_script(
                self._client, self._put_paced, keys, (*self._put_args(stored), *acquire_args)
            )
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        if written:
            stored.version += 1
        return bool(written), wait_us, epoch

    def _put_args(self, stored: StoredRecord) -> tuple[Any, ...]:
        record = stored.record
        return (
            stored.version,
            record.SerializeToString(),
            stored.owner,
            int(stored.lease_until * 1000),
            self.ttl_ms(record),
        )

    async def _write(
        self, stored: StoredRecord, more_keys: tuple[str, ...] = (), more_args: tuple[str, ...] = ()
    ) -> bool:
        record = stored.record
        keys = (self._key(record.message_id), *more_keys)
        args = (*self._put_args(stored), *more_args)
        try:
            if stored.version:
                written = (await run_script(self._client, self._put, keys, args))[0]
            else:  # a new record also enters its tenant's index
                written = await self.write_listed(self._put, keys, args, record, bool)
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        if written:
            stored.version += 1
        return bool(written)

    async def write_listed(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], record: pb.MessageRecord,
        wrote: Callable[[Any], bool],
    ) -> Any:  # fmt: skip
        """Runs a script that writes ``record`` new, and lists it for its tenant, in one round trip.

        The index is in another hash slot than the record, so it cannot be in the script: its ZADD
        rides in the same write, and is taken back when ``wrote(reply)`` says the script wrote
        nothing (a key already bound, a full queue), so refused Sends never fill the index, however
        many. RedisError is the caller's to map.
        """
        reply = (await run_script(self._client, script, keys, args, self.index_commands(record)))[0]
        if not wrote(reply):
            await self._client.zrem(self._index(record.tenant), record.message_id)
        return reply

    def index_commands(self, record: pb.MessageRecord) -> list[tuple[Any, ...]]:
        """The commands that list ``record`` for its tenant, with the index's upkeep when it is due."""
        tenant = record.tenant
        index = self._index(tenant)
        commands: list[tuple[Any, ...]] = [("ZADD", index, 0, record.message_id)]
        now = time.monotonic()
        last = self._upkept.get(tenant)
        if last is not None and now - last < INDEX_UPKEEP_SECONDS:
            return commands
        if last is not None:
            del self._upkept[tenant]  # put back at the end: the dict stays in upkeep order
        elif len(self._upkept) >= _UPKEEP_TENANTS:
            del self._upkept[next(iter(self._upkept))]  # the longest since its upkeep
        self._upkept[tenant] = now
        oldest = min_id_at(time.time() - self._retention)
        commands.append(("ZREMRANGEBYLEX", index, "-", f"({oldest}"))
        commands.append(("PEXPIRE", index, self._index_ttl_ms))
        return commands

    @traced("HGETALL")
    async def get(self, message_id: str) -> StoredRecord | None:
        try:
            fields = await self._client.hgetall(self._key(message_id))
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        return _decode(fields)

    @traced("EVALSHA extend")
    async def extend_lease(self, message_id: str, owner: str, lease_until: float) -> bool:
        try:
            done = await self._extend(keys=[self._key(message_id)], args=[owner, int(lease_until * 1000)])
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        return bool(done)

    @traced("ZRANGE records")
    async def newest(
        self, tenant: str, before: str | None, not_before: str, limit: int
    ) -> list[StoredRecord]:
        high = f"({before}" if before else "+"
        low = f"[{not_before}" if not_before else "-"
        try:
            ids = await self._client.zrevrangebylex(self._index(tenant), high, low, 0, limit)
            if not ids:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for message_id in ids:
                    pipe.hgetall(self._key(as_text(message_id)))
                found = await pipe.execute()
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        # The tenant check guards against an id in the index whose create was refused.
        return [s for s in map(_decode, found) if s is not None and s.record.tenant == tenant]


def record_key(keys: KeySpace, message_id: str) -> str:
    """In its account's hash slot (the id's tag), beside the account's queue and idempotency keys."""
    return keys.key(f"s:{id_slot_tag(message_id)}", f"record:{message_id}")


def _decode(fields: Mapping[Any, Any]) -> StoredRecord | None:
    """A record hash as redis-py returns it (bytes keys and values: the client does not decode)."""
    if not fields or b"r" not in fields:
        return None
    return StoredRecord(
        record=pb.MessageRecord.FromString(fields[b"r"]),
        version=int(fields[b"v"]),
        owner=bytes(fields.get(b"o", b"")).decode(),
        lease_until=int(fields.get(b"l", b"0")) / 1000,
    )
