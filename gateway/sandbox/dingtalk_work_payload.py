"""Checks a DingTalk work-notification `msg` the way the vendor does
(docs/vendors.md, DingTalk work notifications).

Data-driven: one check per msgtype in `_CHECKS`. A missing field answers 40035 naming it
("缺少参数 <field>", the vendor's wording), a malformed one 40035 "参数错误 <field>"; unknown
media 40007. The serialized `msg` is capped at 2048 bytes (45002): the doc's "about 2048 bytes
(uncertain)", taken at its first reading as the emulator must.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.answers import Rejection
from gateway.sandbox.media import MediaRecord
from gateway.sandbox.media_formats import MB

MSG_MAX_BYTES: Final = 2048
FILE_MESSAGE_MAX_BYTES: Final = 10 * MB
"""docs/vendors.md, DingTalk work notifications: a file message takes 10 MB, though the upload takes 20 MB."""
VOICE_MAX_SECONDS: Final = 60
BUTTON_ORIENTATIONS: Final = frozenset({"0", "1"})

MediaLookup = Callable[[str], MediaRecord | None]
"""The app's record of a media_id, or None if the app never uploaded it."""

_Check = Callable[[dict[str, Any], MediaLookup], None]


def check_dingtalk_work_message(msg: object, media: MediaLookup) -> None:
    """Raise `Rejection` with the vendor's errcode if it would refuse `msg`."""
    if not isinstance(msg, dict):
        raise Rejection(40035, "缺少参数 msg")
    msgtype = msg.get("msgtype")
    if msgtype is None or msgtype == "":
        raise Rejection(40035, "缺少参数 msg.msgtype")
    if not isinstance(msgtype, str) or msgtype not in _CHECKS:
        raise Rejection(40035, "不合法的msgtype")
    part = msg.get(msgtype)
    if not isinstance(part, dict):
        raise Rejection(40035, f"缺少参数 msg.{msgtype}")
    # Measured as compact UTF-8 JSON, the smallest form a client can send it in.
    size = len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MSG_MAX_BYTES:
        raise Rejection(45002, f"消息体过大 msg is {size} bytes, at most {MSG_MAX_BYTES}")
    _CHECKS[msgtype](part, media)


def _text(part: dict[str, Any], _: MediaLookup) -> None:
    _required_str(part, "text", "content")


def _image(part: dict[str, Any], media: MediaLookup) -> None:
    _media(part, "image", media)


def _file(part: dict[str, Any], media: MediaLookup) -> None:
    record = _media(part, "file", media)
    if record.size > FILE_MESSAGE_MAX_BYTES:
        raise Rejection(
            40006, f"file too large for a work notification, at most {FILE_MESSAGE_MAX_BYTES} bytes"
        )


def _voice(part: dict[str, Any], media: MediaLookup) -> None:
    _media(part, "voice", media)
    duration = part.get("duration")
    if duration is None or duration == "":
        raise Rejection(40035, "缺少参数 msg.voice.duration")
    # The vendor's own examples send the duration as a string of digits; a number works too.
    if isinstance(duration, str) and duration.isascii() and duration.isdigit():
        duration = int(duration)
    if not isinstance(duration, int) or isinstance(duration, bool) or not 0 < duration < VOICE_MAX_SECONDS:
        raise Rejection(
            40035, f"参数错误 msg.voice.duration: a whole number of seconds, 1 to {VOICE_MAX_SECONDS - 1}"
        )


def _link(part: dict[str, Any], _: MediaLookup) -> None:
    for name in ("messageUrl", "picUrl", "title", "text"):
        _required_str(part, "link", name)


def _markdown(part: dict[str, Any], _: MediaLookup) -> None:
    _required_str(part, "markdown", "title")
    _required_str(part, "markdown", "text")


def _oa(part: dict[str, Any], _: MediaLookup) -> None:
    _required_str(part, "oa", "message_url")
    _optional_str(part, "oa", "pc_message_url")
    head = _required_object(part, "oa", "head")
    _required_str(head, "oa.head", "bgcolor")
    _required_str(head, "oa.head", "text")
    _required_object(part, "oa", "body")
    if part.get("status_bar") is not None:
        _required_object(part, "oa", "status_bar")


def _action_card(part: dict[str, Any], _: MediaLookup) -> None:
    _required_str(part, "action_card", "title")
    _required_str(part, "action_card", "markdown")
    # One button (single_title + single_url) or several (btn_orientation + btn_json_list).
    if "single_title" in part or "single_url" in part:
        _required_str(part, "action_card", "single_title")
        _required_str(part, "action_card", "single_url")
        return
    buttons = part.get("btn_json_list")
    if not isinstance(buttons, list) or not buttons:
        raise Rejection(40035, "缺少参数 msg.action_card.single_title or msg.action_card.btn_json_list")
    orientation = _required_str(part, "action_card", "btn_orientation")
    if orientation not in BUTTON_ORIENTATIONS:
        raise Rejection(40035, '参数错误 msg.action_card.btn_orientation: must be "0" or "1"')
    for index, button in enumerate(buttons):
        where = f"action_card.btn_json_list[{index}]"
        if not isinstance(button, dict):
            raise Rejection(40035, f"参数错误 msg.{where}")
        _required_str(button, where, "title")
        _required_str(button, where, "action_url")


_CHECKS: Final[dict[str, _Check]] = {
    "text": _text,
    "image": _image,
    "file": _file,
    "voice": _voice,
    "link": _link,
    "markdown": _markdown,
    "oa": _oa,
    "action_card": _action_card,
}

SUPPORTED_MSGTYPES: Final = frozenset(_CHECKS)


def _media(part: dict[str, Any], where: str, media: MediaLookup) -> MediaRecord:
    media_id = _required_str(part, where, "media_id")
    record = media(media_id)
    if record is None:
        raise Rejection(40007, "不合法的media_id")
    return record


def _required_str(part: dict[str, Any], where: str, name: str) -> str:
    value = part.get(name)
    if value is None or value == "":
        raise Rejection(40035, f"缺少参数 msg.{where}.{name}")
    if not isinstance(value, str):
        raise Rejection(40035, f"参数错误 msg.{where}.{name}: must be a string")
    return value


def _optional_str(part: dict[str, Any], where: str, name: str) -> None:
    value = part.get(name)
    if value is not None and not isinstance(value, str):
        raise Rejection(40035, f"参数错误 msg.{where}.{name}: must be a string")


def _required_object(part: dict[str, Any], where: str, name: str) -> dict[str, Any]:
    value = part.get(name)
    if value is None:
        raise Rejection(40035, f"缺少参数 msg.{where}.{name}")
    if not isinstance(value, dict):
        raise Rejection(40035, f"参数错误 msg.{where}.{name}: must be an object")
    return value
