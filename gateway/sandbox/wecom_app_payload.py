"""Checks a WeCom application message body the way the vendor does
(docs/vendors.md, WeCom application messages).

Data-driven: one check per msgtype in `_CHECKS`. Codes the doc gives are used as given (44004
empty text, 45002 too large, 45008 too many articles, 41033 missing description, 40007 unknown
media, 40074 `safe` 2 outside mpnews); any other missing or malformed field answers 40035
naming the field, as the robot emulator does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.answers import Rejection

TEXT_MAX_BYTES: Final = 2048
MARKDOWN_MAX_BYTES: Final = 2048
TEXTCARD_MAX_BYTES: Final = {"title": 128, "description": 512, "url": 2048}
BUTTON_TEXT_MAX_CHARS: Final = 4
MAX_ARTICLES: Final = 8
MAX_CONTENT_ITEMS: Final = 10
MAX_DUPLICATE_CHECK_INTERVAL: Final = 14400
COMPANY_ONLY: Final = 2
CARD_NEEDS: Final[dict[str, tuple[str, ...]]] = {
    "text_notice": ("card_action",),
    "news_notice": ("card_image", "image_text_area"),
    "button_interaction": ("task_id",),
    "vote_interaction": ("task_id",),
    "multiple_interaction": ("task_id",),
}

MediaCheck = Callable[[str], bool]
"""Whether a media_id was uploaded by the app the message is sent from and is still valid."""

_Check = Callable[[dict[str, Any], MediaCheck], None]


def check_wecom_app_message(body: dict[str, Any], has_media: MediaCheck) -> dict[str, Any]:
    """Raise `Rejection` if the vendor would refuse `body`; return the body as delivered.

    The body is returned unchanged except for a text over 2048 bytes, which the vendor accepts
    and truncates (docs/vendors.md, WeCom application messages); the gateway is expected to
    check the limit itself.
    """
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in _CHECKS:
        raise Rejection(40008, "invalid message type")
    _check_options(body, msgtype)
    part = body.get(msgtype)
    if not isinstance(part, dict):
        raise Rejection(40035, f"missing parameter {msgtype}")
    _CHECKS[msgtype](part, has_media)
    if msgtype == "text":
        return _with_text_truncated(body, part)
    return body


def _check_options(body: dict[str, Any], msgtype: str) -> None:
    safe = body.get("safe")
    if safe is not None:
        if not _is_int(safe) or safe not in (0, 1, COMPANY_ONLY):
            raise Rejection(40035, "invalid parameter safe: must be 0, 1 or 2")
        if safe == COMPANY_ONLY and msgtype != "mpnews":
            raise Rejection(40074, "safe=2 (company only) is only for mpnews")
    for name in ("enable_id_trans", "enable_duplicate_check"):
        flag = body.get(name)
        if flag is not None and (not _is_int(flag) or flag not in (0, 1)):
            raise Rejection(40035, f"invalid parameter {name}: must be 0 or 1")
    interval = body.get("duplicate_check_interval")
    if interval is not None and not (_is_int(interval) and 0 < interval <= MAX_DUPLICATE_CHECK_INTERVAL):
        raise Rejection(
            40035,
            f"invalid parameter duplicate_check_interval: 1 to {MAX_DUPLICATE_CHECK_INTERVAL} seconds",
        )


def _text(part: dict[str, Any], _: MediaCheck) -> None:
    _content(part, "text")


def _markdown(part: dict[str, Any], _: MediaCheck) -> None:
    content = _content(part, "markdown")
    if _size(content) > MARKDOWN_MAX_BYTES:
        raise Rejection(
            45002, f"content size out of limit, markdown.content exceeds {MARKDOWN_MAX_BYTES} bytes"
        )


def _media(msgtype: str) -> _Check:
    def check(part: dict[str, Any], has_media: MediaCheck) -> None:
        _media_id(part, msgtype, "media_id", has_media)
        for name in ("title", "description"):
            _optional_str(part, msgtype, name)

    return check


def _textcard(part: dict[str, Any], _: MediaCheck) -> None:
    description = part.get("description")
    if description is None or description == "":
        raise Rejection(41033, "missing description")
    for name, limit in TEXTCARD_MAX_BYTES.items():
        value = _required_str(part, "textcard", name)
        if _size(value) > limit:
            raise Rejection(45002, f"content size out of limit, textcard.{name} exceeds {limit} bytes")
    button = _optional_str(part, "textcard", "btntxt")
    if button is not None and len(button) > BUTTON_TEXT_MAX_CHARS:
        raise Rejection(
            45002, f"content size out of limit, textcard.btntxt exceeds {BUTTON_TEXT_MAX_CHARS} characters"
        )


def _news(part: dict[str, Any], _: MediaCheck) -> None:
    for where, article in _articles(part, "news"):
        _required_str(article, where, "title")
        # A news article opens a URL or a mini program; it needs one of the two.
        if not article.get("url") and not article.get("appid"):
            raise Rejection(40035, f"missing parameter {where}.url (or {where}.appid)")
        for name in ("url", "appid", "description", "picurl", "pagepath"):
            _optional_str(article, where, name)


def _mpnews(part: dict[str, Any], has_media: MediaCheck) -> None:
    for where, article in _articles(part, "mpnews"):
        _required_str(article, where, "title")
        _required_str(article, where, "content")
        _media_id(article, where, "thumb_media_id", has_media)


def _miniprogram_notice(part: dict[str, Any], _: MediaCheck) -> None:
    _required_str(part, "miniprogram_notice", "appid")
    _required_str(part, "miniprogram_notice", "title")
    items = part.get("content_item")
    if items is None:
        return
    if not isinstance(items, list):
        raise Rejection(40035, "invalid parameter miniprogram_notice.content_item: must be a list")
    if len(items) > MAX_CONTENT_ITEMS:
        raise Rejection(
            40035, f"invalid parameter miniprogram_notice.content_item: at most {MAX_CONTENT_ITEMS}"
        )
    for index, item in enumerate(items):
        where = f"miniprogram_notice.content_item[{index}]"
        if not isinstance(item, dict):
            raise Rejection(40035, f"invalid parameter {where}")
        _required_str(item, where, "key")
        _required_str(item, where, "value")


def _template_card(part: dict[str, Any], _: MediaCheck) -> None:
    # Only what decides whether the card can exist is checked; its deep structure passes through.
    card_type = part.get("card_type")
    if not isinstance(card_type, str) or card_type not in CARD_NEEDS:
        raise Rejection(
            40035, f"invalid parameter template_card.card_type: must be one of {', '.join(CARD_NEEDS)}"
        )
    needs = CARD_NEEDS[card_type]
    if not any(part.get(name) for name in needs):
        raise Rejection(40035, f"missing parameter template_card.{' or template_card.'.join(needs)}")


_CHECKS: Final[dict[str, _Check]] = {
    "text": _text,
    "image": _media("image"),
    "voice": _media("voice"),
    "video": _media("video"),
    "file": _media("file"),
    "textcard": _textcard,
    "news": _news,
    "mpnews": _mpnews,
    "markdown": _markdown,
    "miniprogram_notice": _miniprogram_notice,
    "template_card": _template_card,
}

SUPPORTED_MSGTYPES: Final = frozenset(_CHECKS)


def _with_text_truncated(body: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    raw = str(part["content"]).encode("utf-8")
    if len(raw) <= TEXT_MAX_BYTES:
        return body
    # Cut at a character boundary: a split UTF-8 sequence is dropped, not mangled.
    content = raw[:TEXT_MAX_BYTES].decode("utf-8", errors="ignore")
    return {**body, "text": {**part, "content": content}}


def _articles(part: dict[str, Any], msgtype: str) -> list[tuple[str, dict[str, Any]]]:
    articles = part.get("articles")
    if not isinstance(articles, list) or not articles:
        raise Rejection(40035, f"missing parameter {msgtype}.articles")
    if len(articles) > MAX_ARTICLES:
        raise Rejection(45008, f"article size out of limit, at most {MAX_ARTICLES}")
    checked = []
    for index, article in enumerate(articles):
        where = f"{msgtype}.articles[{index}]"
        if not isinstance(article, dict):
            raise Rejection(40035, f"invalid parameter {where}")
        checked.append((where, article))
    return checked


def _content(part: dict[str, Any], msgtype: str) -> str:
    content = part.get("content")
    if content is None or content == "":
        raise Rejection(44004, "empty content")
    if not isinstance(content, str):
        raise Rejection(40035, f"invalid parameter {msgtype}.content: must be a string")
    return content


def _media_id(part: dict[str, Any], where: str, name: str, has_media: MediaCheck) -> None:
    media_id = _required_str(part, where, name)
    if not has_media(media_id):
        raise Rejection(40007, "invalid media_id")


def _required_str(part: dict[str, Any], where: str, name: str) -> str:
    value = part.get(name)
    if value is None or value == "":
        raise Rejection(40035, f"missing parameter {where}.{name}")
    if not isinstance(value, str):
        raise Rejection(40035, f"invalid parameter {where}.{name}: must be a string")
    return value


def _optional_str(part: dict[str, Any], where: str, name: str) -> str | None:
    value = part.get(name)
    if value is not None and not isinstance(value, str):
        raise Rejection(40035, f"invalid parameter {where}.{name}: must be a string")
    return value


def _size(text: str) -> int:
    # Limits are in UTF-8 bytes, not characters: 683 Chinese characters already exceed 2048.
    return len(text.encode("utf-8"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
