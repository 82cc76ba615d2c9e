"""Message ids: sortable by creation time, unique across replicas without coordination, and
carrying the Redis hash slot of their account.

The ULID layout, with its last 15 bits given to a slot tag: 48 bits of milliseconds, 65 random
bits, then 15 bits derived from the account's name, in Crockford base32 (26 characters). Ids sort
by time as strings and in Redis key scans. The tag puts a message's record in the same Redis
Cluster hash slot as its account's queue and idempotency keys, so a queued Send claims its key,
writes its record and queues its job in one atomic script (docs/queued-delivery in the README).
Within one millisecond in one process the random part is incremented, keeping ids increasing.
"""

from __future__ import annotations

import os
import threading
import time
import zlib

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TAG_BITS = 15
_RANDOM_BITS = 65
_LOW_BITS = _RANDOM_BITS + _TAG_BITS  # below the milliseconds

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def slot_tag(account: str) -> str:
    """Three base32 characters naming the hash slot every key of ``account`` shares."""
    return _encode(zlib.crc32(account.encode()) & ((1 << _TAG_BITS) - 1), 3)


def id_slot_tag(message_id: str) -> str:
    """The slot tag a message id carries (the last three characters)."""
    return message_id[-3:]


def new_message_id(account: str = "") -> str:
    global _last_ms, _last_random
    tag = zlib.crc32(account.encode()) & ((1 << _TAG_BITS) - 1)
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random += 1
            if _last_random >> _RANDOM_BITS:  # the random part overflowed: borrow the next millisecond
                now_ms = _last_ms = _last_ms + 1
                _last_random = 0
        else:
            _last_ms = now_ms
            _last_random = int.from_bytes(os.urandom(9), "big") >> (72 - _RANDOM_BITS)
        value = (now_ms << _LOW_BITS) | (_last_random << _TAG_BITS) | tag
    return _encode(value, 26)


def min_id_at(unix_seconds: float) -> str:
    """The smallest id created at that time: every id made earlier sorts below it."""
    return _encode(max(0, int(unix_seconds * 1000)) << _LOW_BITS, 26)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
