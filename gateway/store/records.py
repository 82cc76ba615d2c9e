"""Message records: what the gateway remembers of each Send, keyed by its own message_id.

The record holds the vendor's id (WeCom msgid, DingTalk task_id), so a caller recalls by the
gateway's message_id and never handles vendor ids. Records outlive the vendors' 24-hour recall
window (default 48 hours), in Redis when configured, else in this process.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.redis_connection import BatchedWriter, KeySpace, store_unavailable, traced

DEFAULT_TTL = 48 * 3600.0


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: str
    tenant: str
    account: str
    channel: str
    vendor_message_id: str
    state: int  # pb.MessageState
    created_at: float  # unix seconds
    labels: dict[str, str] = field(default_factory=dict)

    def with_state(self, state: int) -> MessageRecord:
        return replace(self, state=state)


class RecordStore(Protocol):
    async def put(self, record: MessageRecord) -> None: ...

    async def get(self, message_id: str) -> MessageRecord | None: ...


class MemoryRecordStore:
    """Bounded by count as well as age, so a long-running single process does not grow forever."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_records: int = 100_000) -> None:
        self._ttl = ttl
        self._max = max_records
        self._records: OrderedDict[str, MessageRecord] = OrderedDict()

    async def put(self, record: MessageRecord) -> None:
        self._records[record.message_id] = record
        self._records.move_to_end(record.message_id)
        while len(self._records) > self._max:
            self._records.popitem(last=False)

    async def get(self, message_id: str) -> MessageRecord | None:
        record = self._records.get(message_id)
        if record is not None and record.created_at + self._ttl < time.time():
            del self._records[message_id]
            return None
        return record


class RedisRecordStore:
    def __init__(self, client: redis.Redis, namespace: str, ttl: float = DEFAULT_TTL) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._ttl = ttl
        self._writer = BatchedWriter(client)  # every Send writes one: grouped into pipelines

    def _key(self, message_id: str) -> str:
        return self._keys.key(message_id, "record")

    async def put(self, record: MessageRecord) -> None:
        remaining = record.created_at + self._ttl - time.time()
        try:
            await self._writer.set(
                self._key(record.message_id), _encode(record), max(1, int(remaining * 1000))
            )
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None

    @traced("GET")
    async def get(self, message_id: str) -> MessageRecord | None:
        try:
            raw = await self._client.get(self._key(message_id))
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        return None if raw is None else MessageRecord(**json.loads(raw))


def _encode(record: MessageRecord) -> str:
    # Field by field rather than dataclasses.asdict, which deep-copies: this runs on every Send.
    return json.dumps(
        {
            "message_id": record.message_id,
            "tenant": record.tenant,
            "account": record.account,
            "channel": record.channel,
            "vendor_message_id": record.vendor_message_id,
            "state": record.state,
            "created_at": record.created_at,
            "labels": record.labels,
        }
    )
