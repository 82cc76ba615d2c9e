"""What the emulated vendors received, kept in arrival order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request that reached a robot endpoint, and what the sandbox answered.

    Every request is recorded, accepted or not, so a test can assert both "exactly this JSON was
    delivered" and "no vendor call was made". `robot` is the robot's name, never its key or token
    (credentials must not leak into anything a person reads); it is None when the credential
    matched no robot, past or present.
    """

    channel: str
    robot: str | None
    msgtype: str
    body: dict[str, Any]
    """The JSON body exactly as received; {} when the body was not a JSON object."""
    errcode: int | None
    """The vendor errcode answered; None when an injected fault answered a bare HTTP error."""
    errmsg: str
    at: float
    """Sandbox clock time when the request was handled."""
    duplicate: bool = False
    """DingTalk: accepted with errcode 0 but not delivered again, because its msgUuid was seen."""
    http_status: int = 200

    @property
    def delivered(self) -> bool:
        """Whether the vendor would have shown this message in the group."""
        return self.http_status == 200 and self.errcode == 0 and not self.duplicate


class Journal:
    """The append-only list of `Received` entries, with filters."""

    def __init__(self) -> None:
        self._entries: list[Received] = []

    def append(self, entry: Received) -> None:
        """Record one request."""
        self._entries.append(entry)

    def select(self, channel: str | None = None, robot: str | None = None) -> list[Received]:
        """Entries in arrival order, optionally only one channel's and/or one robot's."""
        return [
            entry
            for entry in self._entries
            if (channel is None or entry.channel == channel) and (robot is None or entry.robot == robot)
        ]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
