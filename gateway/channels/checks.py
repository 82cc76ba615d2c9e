"""Small validators that adapters compose to declare a vendor's limits as field violations.

Each returns the violations it finds (never raises), so one request reports every problem at once.
Byte limits are counted in UTF-8, as the vendors count them.
"""

from __future__ import annotations

from collections.abc import Sized

from gateway.errors import Violation


def required(field: str, value: object, why: str = "is required") -> list[Violation]:
    return [] if value else [Violation(field, why)]


def max_bytes(field: str, value: str, limit: int, vendor: str) -> list[Violation]:
    size = len(value.encode())
    if size > limit:
        return [Violation(field, f"is {size} bytes; {vendor} takes at most {limit} bytes (UTF-8)")]
    return []


def max_chars(field: str, value: str, limit: int, vendor: str) -> list[Violation]:
    if len(value) > limit:
        return [Violation(field, f"is {len(value)} characters; {vendor} takes at most {limit}")]
    return []


def count_between(field: str, items: Sized, low: int, high: int, vendor: str) -> list[Violation]:
    n = len(items)
    if n < low or n > high:
        return [Violation(field, f"has {n} entries; {vendor} takes {low} to {high}")]
    return []


def not_for(field: str, present: bool, why: str) -> list[Violation]:
    return [Violation(field, why)] if present else []
