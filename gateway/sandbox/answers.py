"""What a vendor endpoint answers: success, or a typed rejection carrying the vendor's errcode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """The `{"errcode", "errmsg", ...}` object a vendor answers with HTTP 200."""

    errcode: int
    errmsg: str
    duplicate: bool = False
    """Accepted, but not delivered again (DingTalk msgUuid seen before)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Further keys of the answer, after errcode and errmsg (access_token, msgid, media_id...)."""


OK = Answer(0, "ok")


class Rejection(Exception):
    """A vendor refusal: `errcode` as the vendor documents it, `text` before vendor styling.

    Raised by payload checks and endpoint rules; the endpoint turns it into an `Answer` in the
    vendor's errmsg style, so checks stay free of presentation. `fields` are answered too, for
    refusals that say more than errcode and errmsg (WeCom's 81013 lists the invalid recipients,
    DingTalk's errcode 88 carries a sub_code).
    """

    def __init__(self, errcode: int, text: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{errcode}: {text}")
        self.errcode = errcode
        self.text = text
        self.fields: Mapping[str, Any] = fields if fields is not None else {}
