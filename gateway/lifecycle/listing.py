"""ListMessages: the tenant's records newest first, filtered, in pages (AIP-158).

A page token carries the last id returned and a hash of the filter it was made for, so a token
used with another filter is refused instead of silently skipping messages. The filter is applied
to records as they are read from the tenant's index, a bounded batch at a time: a page may come
back short, with a token for the rest, rather than one call reading the whole index.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from gateway.errors import InvalidArgument, Violation
from gateway.ids import min_id_at
from gateway.lifecycle.ledger import Ledger, stale
from gateway.store.records import StoredRecord
from generated.notify.v1 import notification_service_pb2 as pb

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SCAN_LIMIT = 2000  # records read per call at most, whatever the filter matches


@dataclass(frozen=True)
class Page:
    records: list[pb.MessageRecord]
    next_token: str


async def list_messages(ledger: Ledger, tenant: str, request: pb.ListMessagesRequest) -> Page:
    size = _page_size(request.page_size)
    fingerprint = _fingerprint(request)
    before = _cursor(request.page_token, fingerprint) if request.page_token else None
    end_time, start_time = _time(request, "end_time"), _time(request, "start_time")
    if end_time is not None:
        end = min_id_at(end_time)
        before = end if before is None else min(before, end)
    not_before = min_id_at(start_time) if start_time is not None else ""
    found: list[pb.MessageRecord] = []
    scanned = 0
    last = before
    while len(found) < size and scanned < SCAN_LIMIT:
        batch = await ledger.store.newest(tenant, last, not_before, min(SCAN_LIMIT - scanned, size * 2))
        if not batch:
            return Page(found, "")
        for stored in batch:
            scanned += 1
            last = stored.message_id
            record = await _current(ledger, stored)
            if record is not None and _matches(record, request):
                found.append(record)
                if len(found) == size:
                    break
    return Page(found, _token(last, fingerprint) if last is not None else "")


async def _current(ledger: Ledger, stored: StoredRecord) -> pb.MessageRecord | None:
    if not stale(stored):
        return stored.record
    resolved = await ledger.get(stored.message_id)  # an owner that is gone: resolve it first
    return None if resolved is None else resolved.record


def _matches(record: pb.MessageRecord, request: pb.ListMessagesRequest) -> bool:
    if request.account and record.account != request.account:
        return False
    if request.states and record.state not in request.states:
        return False
    return all(record.labels.get(key) == value for key, value in request.labels.items())


def _time(request: pb.ListMessagesRequest, name: Literal["start_time", "end_time"]) -> float | None:
    """The filter's time in unix seconds, if set; a Timestamp out of its range is the caller's error."""
    if not request.HasField(name):
        return None
    try:
        return float(getattr(request, name).ToNanoseconds()) / 1e9
    except ValueError:  # seconds outside years 1 to 9999, or nanos outside one second
        raise InvalidArgument(
            [Violation(name, "is not a valid timestamp: years 1 to 9999, nanos 0 to 999999999")]
        ) from None


def _page_size(size: int) -> int:
    if size < 0:
        raise InvalidArgument([Violation("page_size", "must not be negative")])
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(request: pb.ListMessagesRequest) -> str:
    same = pb.ListMessagesRequest()
    same.CopyFrom(request)
    same.ClearField("page_token")
    same.ClearField("page_size")  # AIP-158: the page size may change between pages
    return hashlib.sha256(same.SerializeToString(deterministic=True)).hexdigest()[:16]


def _token(last_id: str, fingerprint: str) -> str:
    raw = json.dumps({"after": last_id, "f": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(token: str, fingerprint: str) -> str:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        last, made_for = decoded["after"], decoded["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument([Violation("page_token", "is not a token ListMessages returned")]) from None
    if not isinstance(last, str) or made_for != fingerprint:
        raise InvalidArgument(
            [Violation("page_token", "was made for other filters; repeat the call's filters with it")]
        )
    return last
