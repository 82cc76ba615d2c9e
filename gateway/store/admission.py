"""A sync Send's bookkeeping before the vendor call, in one Redis round trip instead of three.

Claiming the idempotency key, taking the account's rate-limit slot and writing the new record
were three scripts, each a round trip, on every Send. They touch keys of one account, which share
a hash slot (gateway.ids), so one script does all three, on one Redis or a Redis Cluster. It
decides nothing the separate steps did not: a key already bound writes nothing and answers the
binding; otherwise the key is claimed and the record written whatever the rate limit says, and
the caller waits for the slot or refuses, as before. A Send admitted at once with nothing else to
do before its vendor call (no inline upload, no tenant quota) has its record written as SENDING
directly, which saves the round trip that marked it so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.store.idempotency import (
    Binding,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    Scope,
    decode_binding,
    encode_binding,
    idempotency_key,
)
from gateway.store.rate_limits import (
    ACQUIRE_FUNCTION,
    Admission,
    MemoryRateLimiter,
    RateLimit,
    RedisRateLimiter,
    new_ticket,
    rate_keys,
)
from gateway.store.records import MemoryRecordStore, RedisRecordStore, StoredRecord, record_key
from gateway.store.redis_connection import KeySpace, as_text, store_unavailable, traced
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the admission found: the key bound to another message (nothing written), or the
    record written (ACCEPTED, or SENDING when it was admitted at once) and the rate answer."""

    bound: Binding | None = None
    stored: StoredRecord | None = None
    rate: Admission | None = None  # None: no account limit was asked


@dataclass(frozen=True, slots=True)
class Admit:
    accepted: pb.MessageRecord  # the record as ACCEPTED
    sending: pb.MessageRecord | None  # the record as SENDING, if it may go straight there
    owner: str
    lease_until: float
    claim: tuple[Scope, Binding, float] | None = None  # scope, binding, how long it holds (s)
    rate: tuple[str, RateLimit] | None = None  # the account's scope and limit


class SendAdmission(Protocol):
    async def admit(self, admit: Admit) -> Admitted: ...


class MemorySendAdmission:
    """The three memory stores in turn: nothing runs between them in one event loop."""

    def __init__(
        self, records: MemoryRecordStore, idempotency: MemoryIdempotencyStore, limiter: MemoryRateLimiter
    ) -> None:
        self._records, self._idempotency, self._limiter = records, idempotency, limiter

    async def admit(self, admit: Admit) -> Admitted:
        if admit.claim is not None:
            scope, binding, _ = admit.claim
            bound = await self._idempotency.bind(scope, binding)
            if bound is not None:
                return Admitted(bound=bound)
        rate = await self._limiter.acquire(*admit.rate) if admit.rate is not None else None
        record = (
            admit.sending if admit.sending is not None and (rate is None or not rate.wait) else admit.accepted
        )
        stored = StoredRecord(record, owner=admit.owner, lease_until=admit.lease_until)
        if not await self._records.put(stored):
            raise RuntimeError(f"message {record.message_id} exists already")  # ids are unique: a bug
        return Admitted(stored=stored, rate=rate)


# KEYS: the record[, the rate window and marker][, the idempotency key]. ARGV: has a rate ('1'/'0'),
# has a key ('1'/'0'), the record as ACCEPTED, as SENDING ('' if it may not go there), owner,
# lease (ms), record ttl (ms), binding, binding ttl (ms), then acquire's arguments from the window on.
_ADMIT = (
    ACQUIRE_FUNCTION
    + """
local n = 2
local window_key, marker_key, idem_key = nil, nil, nil
if ARGV[1] == '1' then window_key, marker_key, n = KEYS[2], KEYS[3], 4 end
if ARGV[2] == '1' then idem_key = KEYS[n] end
if idem_key then
  local bound = redis.call('GET', idem_key)
  if bound then return {'bound', bound, ''} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', '', ''} end
local wait, epoch = 0, ''
if window_key then
  local answer = acquire(
    window_key, marker_key, tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12], ARGV[13], ARGV[14])
  wait, epoch = answer[1], answer[2]
end
if idem_key then redis.call('SET', idem_key, ARGV[8], 'PX', ARGV[9]) end
local record, state = ARGV[3], 'accepted'
if wait == 0 and ARGV[4] ~= '' then record, state = ARGV[4], 'sending' end
redis.call('HSET', KEYS[1], 'v', 1, 'r', record, 'o', ARGV[5], 'l', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return {state, tostring(wait), epoch}
"""
)


class RedisSendAdmission:
    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        records: RedisRecordStore,
        idempotency: RedisIdempotencyStore,
        limiter: RedisRateLimiter,
    ) -> None:
        self._client = client
        self._keys = KeySpace(namespace)
        self._records, self._idempotency, self._limiter = records, idempotency, limiter
        self._admit = client.register_script(_ADMIT)

    @traced("EVALSHA admit")
    async def admit(self, admit: Admit) -> Admitted:
        record = admit.accepted
        keys = [record_key(self._keys, record.message_id)]
        ticket = ""
        rate_args: Sequence[int | str] = _NO_RATE
        if admit.rate is not None:
            scope, limit = admit.rate
            keys += rate_keys(self._keys, scope)
            ticket = new_ticket()
            rate_args = self._limiter.acquire_args(scope, limit, ticket)
        binding, binding_ttl = "", 0
        if admit.claim is not None:
            scope_, bound, ttl = admit.claim
            keys.append(idempotency_key(self._keys, scope_))
            binding, binding_ttl = encode_binding(bound), int(ttl * 1000)
        # The SENDING variant is serialised too although the script may keep the ACCEPTED one: only
        # Redis knows whether the rate slot is free, and serialising a record costs under 1 µs.
        args = (
            "0" if admit.rate is None else "1",
            "0" if admit.claim is None else "1",
            record.SerializeToString(),
            "" if admit.sending is None else admit.sending.SerializeToString(),
            admit.owner,
            int(admit.lease_until * 1000),
            self._records.ttl_ms(record),
            binding,
            binding_ttl,
            *rate_args,
        )
        try:
            outcome, value, epoch = await self._records.write_listed(
                self._admit, keys, args, record, _written
            )
        except RedisError as exc:
            raise store_unavailable("message records", exc) from None
        outcome = as_text(outcome)
        if outcome == "bound":
            return Admitted(bound=decode_binding(value))
        if outcome == "exists":
            raise RuntimeError(f"message {record.message_id} exists already")  # ids are unique: a bug
        written = admit.sending if outcome == "sending" and admit.sending is not None else record
        stored = StoredRecord(written, version=1, owner=admit.owner, lease_until=admit.lease_until)
        rate = None
        if admit.rate is not None:
            rate = self._limiter.admission(admit.rate[0], admit.rate[1], ticket, value, epoch)
        return Admitted(stored=stored, rate=rate)


_NO_RATE: tuple[int | str, ...] = ("", "", "", "", "")  # acquire's arguments when no rate limit is asked


def _written(reply: Any) -> bool:
    """Whether the admission script wrote the record (else the index entry is taken back)."""
    return as_text(reply[0]) in ("accepted", "sending")
