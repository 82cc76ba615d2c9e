"""Checks a WeCom group robot message body the way the vendor does (docs/vendors.md, WeCom group robot).

Data-driven: one check per msgtype in `_CHECKS`, so a new msgtype is one function and one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.answers import Rejection

TEXT_MAX_BYTES: Final = 2048
MARKDOWN_MAX_BYTES: Final = 4096
IMAGE_MAX_BYTES: Final = 2 * 1024 * 1024
NEWS_MAX_ARTICLES: Final = 8
TEMPLATE_CARD_TYPES: Final = frozenset({"text_notice", "news_notice"})

# The vendor takes only jpg and png and tells them by content, not by any declared type.
_IMAGE_MAGIC: Final = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")

MediaCheck = Callable[[str], bool]
"""Whether a media_id is usable by the robot the message was sent to."""

_Check = Callable[[dict[str, Any], MediaCheck], None]


def check_wecom_robot_message(body: dict[str, Any], has_media: MediaCheck) -> None:
    """Raise `Rejection` with the vendor's errcode if the robot would refuse `body`."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in _CHECKS:
        raise Rejection(40008, "invalid message type")
    part = body.get(msgtype)
    if not isinstance(part, dict):
        raise Rejection(40035, f"missing parameter {msgtype}")
    _CHECKS[msgtype](part, has_media)


def _text(part: dict[str, Any], _: MediaCheck) -> None:
    _content(part, "text", TEXT_MAX_BYTES)
    for name in ("mentioned_list", "mentioned_mobile_list"):
        value = part.get(name)
        if value is not None and not _is_str_list(value):
            raise Rejection(40035, f"invalid parameter text.{name}: must be a list of strings")


def _markdown(msgtype: str) -> _Check:
    def check(part: dict[str, Any], _: MediaCheck) -> None:
        _content(part, msgtype, MARKDOWN_MAX_BYTES)

    return check


def _image(part: dict[str, Any], _: MediaCheck) -> None:
    encoded = _required_str(part, "image", "base64")
    md5 = _required_str(part, "image", "md5")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(40035, "invalid parameter image.base64: not base64") from None
    if len(raw) > IMAGE_MAX_BYTES:
        raise Rejection(40009, f"invalid image size, the limit is {IMAGE_MAX_BYTES} bytes")
    if not raw.startswith(_IMAGE_MAGIC):
        raise Rejection(40005, "invalid file type, only jpg and png are accepted")
    # md5 covers the raw bytes before base64 (docs/vendors.md, WeCom group robot).
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != md5.lower():
        raise Rejection(40035, "invalid md5: image.md5 is not the md5 of the decoded image")


def _news(part: dict[str, Any], _: MediaCheck) -> None:
    articles = part.get("articles")
    if not isinstance(articles, list) or not articles:
        raise Rejection(40035, "missing parameter news.articles")
    if len(articles) > NEWS_MAX_ARTICLES:
        raise Rejection(45008, f"article size out of limit, at most {NEWS_MAX_ARTICLES}")
    for index, article in enumerate(articles):
        where = f"news.articles[{index}]"
        if not isinstance(article, dict):
            raise Rejection(40035, f"invalid parameter {where}")
        _required_str(article, where, "title")
        _required_str(article, where, "url")


def _media(msgtype: str) -> _Check:
    def check(part: dict[str, Any], has_media: MediaCheck) -> None:
        media_id = _required_str(part, msgtype, "media_id")
        if not has_media(media_id):
            raise Rejection(40007, "invalid media_id")

    return check


def _template_card(part: dict[str, Any], _: MediaCheck) -> None:
    # The card's deep structure is the vendor's business; only the card type gates the robot.
    card_type = part.get("card_type")
    if card_type not in TEMPLATE_CARD_TYPES:
        raise Rejection(
            40035, "invalid parameter template_card.card_type: must be text_notice or news_notice"
        )


_CHECKS: Final[dict[str, _Check]] = {
    "text": _text,
    "markdown": _markdown("markdown"),
    "markdown_v2": _markdown("markdown_v2"),
    "image": _image,
    "news": _news,
    "file": _media("file"),
    "voice": _media("voice"),
    "template_card": _template_card,
}

SUPPORTED_MSGTYPES: Final = frozenset(_CHECKS)


def _content(part: dict[str, Any], msgtype: str, max_bytes: int) -> None:
    content = part.get("content")
    if content is None or content == "":
        raise Rejection(44004, "empty content")
    if not isinstance(content, str):
        raise Rejection(40035, f"invalid parameter {msgtype}.content: must be a string")
    # Limits are in UTF-8 bytes, not characters: 683 Chinese characters already exceed 2048.
    if len(content.encode("utf-8")) > max_bytes:
        raise Rejection(40058, f"content too long, {msgtype}.content exceeds {max_bytes} bytes")


def _required_str(part: dict[str, Any], where: str, name: str) -> str:
    value = part.get(name)
    if value is None or value == "":
        raise Rejection(40035, f"missing parameter {where}.{name}")
    if not isinstance(value, str):
        raise Rejection(40035, f"invalid parameter {where}.{name}: must be a string")
    return value


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
