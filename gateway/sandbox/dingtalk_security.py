"""A DingTalk custom robot's security settings: signing and keywords (docs/vendors.md, DingTalk group robot).

Both failures answer 310000 with an errmsg saying which check failed, as the vendor does.
(The third setting, an IP whitelist, is not emulated: every caller is on loopback.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Sequence
from typing import Final

from gateway.sandbox.answers import Rejection

SIGNATURE_WINDOW_MS: Final = 3600 * 1000
"""The timestamp must be within one hour of the vendor's clock, either way."""


def robot_signature(timestamp: str, secret: str) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), before URL-encoding."""
    string_to_sign = f"{timestamp}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def check_signature(secret: str, timestamp: str | None, sign: str | None, now: float) -> None:
    """Refuse unless `sign` (already URL-decoded) signs `timestamp`, and that is recent.

    The timestamp is signed exactly as sent, so a client that signs one value and sends another
    (e.g. a float, or a re-read clock) fails here as it would against the vendor. A client that
    forgets to URL-encode the signature fails too: "+" arrives as a space.
    """
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()):
        raise Rejection(310000, "invalid timestamp")
    if abs(now * 1000 - int(timestamp)) > SIGNATURE_WINDOW_MS:
        raise Rejection(310000, "invalid timestamp")
    expected = robot_signature(timestamp, secret)
    if sign is None or not hmac.compare_digest(sign.encode(), expected.encode()):
        raise Rejection(310000, "sign not match")


def check_keywords(keywords: Sequence[str], message: object) -> None:
    """Refuse unless some string in the message (content, title, text, link titles...) holds
    one of the keywords; no keywords means the check is off."""
    if not keywords:
        return
    texts = list(_strings(message))
    if not any(keyword in text for keyword in keywords for text in texts):
        raise Rejection(310000, "keywords not in content")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
