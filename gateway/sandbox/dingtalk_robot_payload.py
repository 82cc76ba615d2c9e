"""Checks a DingTalk custom robot message body the way the vendor does
(docs/vendors.md, DingTalk group robot).

Data-driven: one check per msgtype in `_CHECKS`. Missing fields answer 40035 naming the field
("缺少参数 <field>", the vendor's wording), so an adapter bug is obvious from the errmsg.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.answers import Rejection

BODY_MAX_BYTES: Final = 20000
BUTTON_ORIENTATIONS: Final = frozenset({"0", "1"})

_Check = Callable[[dict[str, Any], dict[str, Any]], None]
"""(the msgtype's object, the whole body) -> None or Rejection."""


def check_dingtalk_robot_message(body: dict[str, Any]) -> dict[str, Any]:
    """Raise `Rejection` if the robot would refuse `body`; return the msgtype's object."""
    msgtype = body.get("msgtype")
    if msgtype is None or msgtype == "":
        raise Rejection(40035, "缺少参数 msgtype")
    if not isinstance(msgtype, str) or msgtype not in _CHECKS:
        raise Rejection(400105, "不支持的消息类型 (unsupported msgtype)")
    part = body.get(msgtype)
    if not isinstance(part, dict):
        raise Rejection(40035, f"缺少参数 {msgtype}")
    _CHECKS[msgtype](part, body)
    msg_uuid = body.get("msgUuid")
    if msg_uuid is not None and not (isinstance(msg_uuid, str) and msg_uuid):
        raise Rejection(40035, "参数错误 msgUuid: must be a non-empty string")
    return part


def _text(part: dict[str, Any], body: dict[str, Any]) -> None:
    _required_str(part, "text", "content")
    _check_at(body)


def _link(part: dict[str, Any], _: dict[str, Any]) -> None:
    for name in ("title", "text", "messageUrl"):
        _required_str(part, "link", name)
    _optional_str(part, "link", "picUrl")


def _markdown(part: dict[str, Any], body: dict[str, Any]) -> None:
    _required_str(part, "markdown", "title")
    _required_str(part, "markdown", "text")
    _check_at(body)


def _action_card(part: dict[str, Any], _: dict[str, Any]) -> None:
    _required_str(part, "actionCard", "title")
    _required_str(part, "actionCard", "text")
    orientation = part.get("btnOrientation")
    if orientation is not None and orientation not in BUTTON_ORIENTATIONS:
        raise Rejection(40035, '参数错误 actionCard.btnOrientation: must be "0" or "1"')
    # One button (singleTitle + singleURL) or several (btns); the vendor needs one of the two.
    if "singleTitle" in part or "singleURL" in part:
        _required_str(part, "actionCard", "singleTitle")
        _required_str(part, "actionCard", "singleURL")
        return
    buttons = part.get("btns")
    if not isinstance(buttons, list) or not buttons:
        raise Rejection(40035, "缺少参数 actionCard.singleTitle or actionCard.btns")
    for index, button in enumerate(buttons):
        where = f"actionCard.btns[{index}]"
        if not isinstance(button, dict):
            raise Rejection(40035, f"参数错误 {where}")
        _required_str(button, where, "title")
        _required_str(button, where, "actionURL")


def _feed_card(part: dict[str, Any], _: dict[str, Any]) -> None:
    links = part.get("links")
    if not isinstance(links, list) or not links:
        raise Rejection(40035, "缺少参数 feedCard.links")
    for index, link in enumerate(links):
        where = f"feedCard.links[{index}]"
        if not isinstance(link, dict):
            raise Rejection(40035, f"参数错误 {where}")
        for name in ("title", "messageURL", "picURL"):
            _required_str(link, where, name)


_CHECKS: Final[dict[str, _Check]] = {
    "text": _text,
    "link": _link,
    "markdown": _markdown,
    "actionCard": _action_card,
    "feedCard": _feed_card,
}

SUPPORTED_MSGTYPES: Final = frozenset(_CHECKS)


def _check_at(body: dict[str, Any]) -> None:
    at = body.get("at")
    if at is None:
        return
    if not isinstance(at, dict):
        raise Rejection(40035, "参数错误 at: must be an object")
    for name in ("atMobiles", "atUserIds"):
        value = at.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise Rejection(40035, f"参数错误 at.{name}: must be a list of strings")
    if at.get("isAtAll") is not None and not isinstance(at.get("isAtAll"), bool):
        raise Rejection(40035, "参数错误 at.isAtAll: must be true or false")


def _required_str(part: dict[str, Any], where: str, name: str) -> None:
    value = part.get(name)
    if value is None or value == "":
        raise Rejection(40035, f"缺少参数 {where}.{name}")
    if not isinstance(value, str):
        raise Rejection(40035, f"参数错误 {where}.{name}: must be a string")


def _optional_str(part: dict[str, Any], where: str, name: str) -> None:
    value = part.get(name)
    if value is not None and not isinstance(value, str):
        raise Rejection(40035, f"参数错误 {where}.{name}: must be a string")
