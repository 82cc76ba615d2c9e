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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from gateway.ids import id_slot_tag, min_id_at
from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced
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


# KEYS[1] record. ARGV: expected version, record bytes, owner, lease (ms), ttl (ms).
_PUT = """
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', version + 1, 'r', ARGV[2], 'o', ARGV[3], 'l', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
_EXTEND = """
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[2])
return 1
"""


class RedisRecordStore:
    """A record is a hash at ``ns:{s:<slot tag>}:record:<message_id>``; a tenant's index is a sorted
    set of ids at ``ns:{tenant:<name>}:messages``, all scores 0 so it orders by id (time)."""

    def __init__(self, client: redis.Redis, namespace: str, retention: float = DEFAULT_RETENTION) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._retention = retention
        self._put = client.register_script(_PUT)
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
        record = stored.record
        ttl_ms = self.ttl_ms(record)
        args: list[bytes | str | int] = [
            stored.version,
            record.SerializeToString(),
            stored.owner,
            int(stored.lease_until * 1000),
            ttl_ms,
        ]
        try:
            if stored.version:
                written = await self._put(keys=[self._key(record.message_id)], args=args)
            else:  # a new record also enters its tenant's index
                key = self._key(record.message_id)
                written = await self.write_listed(self._put, [key], args, record, lambda reply: bool(reply))
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        if written:
            stored.version += 1
        return bool(written)

    async def write_listed(
        self, script: AsyncScript, keys: list[str], args: list[Any], record: pb.MessageRecord,
        wrote: Callable[[Any], bool],
    ) -> Any:  # fmt: skip
        """Runs a script that writes ``record`` new, and lists it for its tenant, in one round trip.

        The index is in another hash slot than the record, so it cannot be in the script: it rides
        in the same pipeline, and is taken back when ``wrote(reply)`` says the script wrote nothing
        (a key already bound, a full queue), so refused Sends never fill the index, however many.
        RedisError is the caller's to map.
        """
        for attempt in range(2):
            # EVALSHA by hand: redis-py's scripts in a pipeline first ask SCRIPT EXISTS, one more
            # round trip on every call; NOSCRIPT (a Redis that restarted) loads it, once.
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                self.add_to_index(pipe, record)
                try:
                    reply, *_ = await pipe.execute()
                    break
                except NoScriptError:
                    if attempt:
                        raise
                    await self._client.script_load(script.script)
        if not wrote(reply):
            await self._client.zrem(self._index(record.tenant), record.message_id)
        return reply

    def add_to_index(self, pipe: Pipeline, record: pb.MessageRecord) -> None:
        """Queues the commands that list ``record`` for its tenant; the index forgets ids past retention."""
        index = self._index(record.tenant)
        oldest = min_id_at(time.time() - self._retention)
        pipe.zadd(index, {record.message_id: 0})
        pipe.zremrangebylex(index, "-", f"({oldest}")
        pipe.pexpire(index, int(self._retention * 1000))

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
