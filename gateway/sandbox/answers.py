"""What a vendor endpoint answers: success, or a typed rejection carrying the vendor's errcode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """The `{"errcode", "errmsg"}` pair a vendor answers with HTTP 200."""

    errcode: int
    errmsg: str
    duplicate: bool = False
    """Accepted, but not delivered again (DingTalk msgUuid seen before)."""


OK = Answer(0, "ok")


class Rejection(Exception):
    """A vendor refusal: `errcode` as the vendor documents it, `text` before vendor styling.

    Raised by payload checks and endpoint rules; the endpoint turns it into an `Answer` in the
    vendor's errmsg style, so checks stay free of presentation.
    """

    def __init__(self, errcode: int, text: str) -> None:
        super().__init__(f"{errcode}: {text}")
        self.errcode = errcode
        self.text = text
