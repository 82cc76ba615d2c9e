"""Message ids: sortable by creation time and unique across replicas without coordination.

The ULID layout: 48 bits of milliseconds then 80 random bits, in Crockford base32 (26 characters),
so ids sort by time as strings and in Redis key scans. Within one millisecond in one process the
random part is incremented, keeping ids strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_message_id() -> str:
    global _last_ms, _last_random
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
            _last_random = int.from_bytes(os.urandom(10), "big")
        value = (now_ms << _RANDOM_BITS) | _last_random
    return _encode(value)


def min_id_at(unix_seconds: float) -> str:
    """The smallest id created at that time: every id made earlier sorts below it."""
    return _encode(max(0, int(unix_seconds * 1000)) << _RANDOM_BITS)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
