"""Message ids: 26-character Crockford base32, unique, and increasing in creation order."""

from __future__ import annotations

import itertools
import time

from gateway.ids import new_message_id

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def decode_ms(message_id: str) -> int:
    value = 0
    for char in message_id:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return value >> 80


def test_id_is_26_crockford_base32_characters() -> None:
    message_id = new_message_id()
    assert len(message_id) == 26
    assert set(message_id) <= CROCKFORD


def test_ids_generated_in_sequence_are_unique_and_strictly_increasing() -> None:
    ids = [new_message_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(len(i) == 26 and set(i) <= CROCKFORD for i in ids)


def test_id_starts_with_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    message_id = new_message_id()
    after = time.time_ns() // 1_000_000
    assert before <= decode_ms(message_id) <= after
