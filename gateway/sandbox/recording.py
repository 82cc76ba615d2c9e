"""What the emulated vendors received, kept in arrival order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

GETTOKEN: Final = "gettoken"
RECALL: Final = "recall"
UPLOAD: Final = "upload"
SEND_PROGRESS: Final = "getsendprogress"
SEND_RESULT: Final = "getsendresult"

CALL_MSGTYPES: Final = frozenset({GETTOKEN, RECALL, UPLOAD, SEND_PROGRESS, SEND_RESULT})
"""`Received.msgtype` of calls that are not messages. No vendor msgtype has these names, so one
journal can hold messages and calls while `delivered` still means "messages delivered"."""


@dataclass(frozen=True)
class Received:
    """One request that reached a vendor endpoint, and what the sandbox answered.

    Every request is recorded, accepted or not, so a test can assert both "exactly this JSON was
    delivered" and "no vendor call was made". `robot` is the robot's or app's name, never its
    key, token or secret (credentials must not leak into anything a person reads); it is None when
    the credential matched no robot or app, past or present.

    Messages are recorded under their msgtype; other calls under one of `CALL_MSGTYPES`, with a
    body that never holds a credential: gettoken `{}`, recall and DingTalk task queries their
    JSON body, uploads `{type, filename, content_type, size[, sha256]}` (never the content).
    """

    channel: str
    robot: str | None
    msgtype: str
    body: dict[str, Any]
    """The JSON body exactly as received; {} when the body was not a JSON object.

    One exception: a WeCom app text over 2048 bytes is recorded truncated to 2048 bytes, as the
    vendor delivers it (docs/vendors.md, WeCom application messages: the vendor cuts longer text)."""
    errcode: int | None
    """The vendor errcode answered; None when an injected fault answered a bare HTTP error, or
    when the connection was dropped before the request was handled."""
    errmsg: str
    at: float
    """Sandbox clock time when the request was handled."""
    duplicate: bool = False
    """DingTalk: accepted with errcode 0 but not delivered again, because its msgUuid was seen."""
    http_status: int | None = 200
    """None when the connection was dropped before the request was handled: nothing was decided."""
    dropped: bool = False
    """An injected fault closed the connection instead of answering, so the client never read
    errcode, errmsg and http_status. Dropped before handling, the entry only says the request
    arrived (errcode None, never delivered); dropped after, it is what the vendor did, delivery
    included."""
    answer: dict[str, Any] = field(default_factory=dict)
    """The answer's other fields after errcode and errmsg (msgid, task_id, invaliduser...), so a
    person can see what the caller was told; an access_token and an upload's media_id are left out."""
    trace_id: str | None = None
    """The trace id of the request's W3C `traceparent` header, if it carried a valid one: the
    gateway's trace of the call that sent it."""

    @property
    def delivered(self) -> bool:
        """Whether this was a message the vendor accepted for its recipients (not a call like gettoken)."""
        return (
            self.http_status == 200
            and self.errcode == 0
            and not self.duplicate
            and self.msgtype not in CALL_MSGTYPES
        )


JournalListener = Callable[[int | None], None]
"""Told the sequence number of each entry appended, or None when the journal is cleared. Called
inside the vendor request that is being recorded, so it must be quick and must not raise."""


class Journal:
    """The append-only list of `Received` entries, with filters.

    Every entry has a sequence number that is never reused, not even after `clear`, so a watcher
    (the inbox page) can tell entries apart across clears.
    """

    def __init__(self) -> None:
        self._entries: list[Received] = []
        self._first_seq = 0
        """The sequence number of `_entries[0]`: the count of entries ever cleared."""
        self._listeners: list[JournalListener] = []

    def append(self, entry: Received) -> None:
        """Record one request."""
        self._entries.append(entry)
        self._tell(self._first_seq + len(self._entries) - 1)

    def numbered(self, channel: str | None = None, robot: str | None = None) -> list[tuple[int, Received]]:
        """Like `select`, with each entry's sequence number."""
        return [
            (self._first_seq + index, entry)
            for index, entry in enumerate(self._entries)
            if (channel is None or entry.channel == channel) and (robot is None or entry.robot == robot)
        ]

    @property
    def next_seq(self) -> int:
        """The sequence number the next entry will get."""
        return self._first_seq + len(self._entries)

    def at(self, seq: int) -> Received | None:
        """The entry numbered `seq`, or None if it was cleared or does not exist yet."""
        index = seq - self._first_seq
        return self._entries[index] if 0 <= index < len(self._entries) else None

    def watch(self, listener: JournalListener) -> Callable[[], None]:
        """Call `listener` on every append and clear, until the returned function is called."""
        self._listeners.append(listener)

        def unwatch() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unwatch

    def _tell(self, seq: int | None) -> None:
        for listener in list(self._listeners):
            listener(seq)

    def select(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Entries in arrival order, optionally only one channel's and/or one robot's."""
        return [
            entry
            for entry in self._entries
            if (channel is None or entry.channel == channel) and (robot is None or entry.robot == robot)
        ]

    def clear(self) -> None:
        """Forget every entry."""
        self._first_seq += len(self._entries)
        self._entries.clear()
        self._tell(None)
