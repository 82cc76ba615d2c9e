"""DingTalk messages as the DingTalk client shows them: group robot and work notifications.

Payload shapes: docs/vendors.md, "DingTalk group robot" (`msgtype` and a body key per type, `at` for
mentions) and "DingTalk work notifications" (`msg {msgtype, <type>}` with snake_case fields). Each
renderer takes the untrusted body and returns HTML built only from `markup` helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.inbox.markdown import dingtalk_markdown
from gateway.sandbox.inbox.markup import (
    buttons,
    colour,
    dicts,
    field,
    highlight,
    key_values,
    lines,
    link,
    mention,
    picture,
    section,
    strings,
    text,
)
from gateway.sandbox.inbox.media_blocks import RenderContext, attachment, media_image

Renderer = Callable[[dict[str, Any], RenderContext], str]


def _mentioned(body: dict[str, Any]) -> list[str]:
    return strings(field(body, "at", "atMobiles")) + strings(field(body, "at", "atUserIds"))


def _at_all(body: dict[str, Any]) -> str:
    # The client shows "@All" (Chinese: "@所有人") for isAtAll; the text need not contain it.
    return f'<div class="mentions">{mention("All")}</div>' if field(body, "at", "isAtAll") is True else ""


def _robot_text(body: dict[str, Any], _: RenderContext) -> str:
    # DingTalk pings a mentioned mobile only where "@mobile" is in the text (docs/vendors.md,
    # DingTalk group robot): those are the tokens highlighted.
    content = lines(field(body, "text", "content"))
    return f'<div class="bubble">{highlight(content, _mentioned(body))}{_at_all(body)}</div>'


def _robot_markdown(body: dict[str, Any], _: RenderContext) -> str:
    title = field(body, "markdown", "title")
    shown = dingtalk_markdown(field(body, "markdown", "text"), _mentioned(body))
    return f'<div class="bubble" title="{text(title)}">{shown}{_at_all(body)}</div>'


def _link_card(title: object, summary: object, href: object, pic: object) -> str:
    inner = (
        f'<div class="card-title">{text(title)}</div>'
        f'<div class="link-body"><div class="card-desc">{lines(summary)}</div>'
        f"{picture(pic, '', 'link-pic')}</div>"
    )
    return f'<div class="card link-card">{link(href, inner, "card-link")}</div>'


def _robot_link(body: dict[str, Any], _: RenderContext) -> str:
    part = body.get("link")
    parts = part if isinstance(part, dict) else {}
    return _link_card(parts.get("title"), parts.get("text"), parts.get("messageUrl"), parts.get("picUrl"))


def _action_card(
    title: object, markdown: object, items: list[tuple[object, object]], vertical: object
) -> str:
    # btnOrientation "0" stacks the buttons, "1" sets them side by side (docs/vendors.md, both
    # DingTalk channels).
    return (
        f'<div class="card action-card"><div class="card-title">{text(title)}</div>'
        f"{dingtalk_markdown(markdown)}{buttons(items, horizontal=vertical == '1')}</div>"
    )


def _robot_action_card(body: dict[str, Any], _: RenderContext) -> str:
    part = body.get("actionCard")
    card = part if isinstance(part, dict) else {}
    if "singleTitle" in card or "singleURL" in card:
        items: list[tuple[object, object]] = [(card.get("singleTitle"), card.get("singleURL"))]
    else:
        items = [(button.get("title"), button.get("actionURL")) for button in dicts(card.get("btns"))]
    return _action_card(card.get("title"), card.get("text"), items, card.get("btnOrientation"))


def _robot_feed_card(body: dict[str, Any], _: RenderContext) -> str:
    links = dicts(field(body, "feedCard", "links"))
    if not links:
        return '<div class="card">no links</div>'
    first, rest = links[0], links[1:]
    head = link(
        first.get("messageURL"),
        f"{picture(first.get('picURL'), first.get('title'), 'news-cover')}"
        f'<div class="news-cover-title">{text(first.get("title"))}</div>',
        "news-lead",
    )
    items = "".join(
        link(
            item.get("messageURL"),
            f"<span>{text(item.get('title'))}</span>{picture(item.get('picURL'), '', 'news-thumb')}",
            "news-item",
        )
        for item in rest
    )
    return f'<div class="card news">{head}{items}</div>'


def _msg(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return section(body, "msg", kind)


def _work_text(body: dict[str, Any], _: RenderContext) -> str:
    return f'<div class="bubble">{lines(_msg(body, "text").get("content"))}</div>'


def _work_markdown(body: dict[str, Any], _: RenderContext) -> str:
    part = _msg(body, "markdown")
    return (
        f'<div class="bubble" title="{text(part.get("title"))}">{dingtalk_markdown(part.get("text"))}</div>'
    )


def _work_image(body: dict[str, Any], context: RenderContext) -> str:
    return media_image(context, _msg(body, "image").get("media_id"))


def _work_file(body: dict[str, Any], context: RenderContext) -> str:
    return attachment(context, _msg(body, "file").get("media_id"), "file")


def _work_voice(body: dict[str, Any], context: RenderContext) -> str:
    part = _msg(body, "voice")
    duration = part.get("duration")
    extra = f" · {duration} s" if isinstance(duration, int | str) and duration else ""
    return attachment(context, part.get("media_id"), "voice", extra)


def _work_link(body: dict[str, Any], _: RenderContext) -> str:
    part = _msg(body, "link")
    return _link_card(part.get("title"), part.get("text"), part.get("messageUrl"), part.get("picUrl"))


def _work_action_card(body: dict[str, Any], _: RenderContext) -> str:
    card = _msg(body, "action_card")
    if "single_title" in card or "single_url" in card:
        items: list[tuple[object, object]] = [(card.get("single_title"), card.get("single_url"))]
    else:
        items = [
            (button.get("title"), button.get("action_url")) for button in dicts(card.get("btn_json_list"))
        ]
    return _action_card(card.get("title"), card.get("markdown"), items, card.get("btn_orientation"))


def _work_oa(body: dict[str, Any], context: RenderContext) -> str:
    oa = _msg(body, "oa")
    head, content, bar = section(oa, "head"), section(oa, "body"), section(oa, "status_bar")
    bg = colour(head.get("bgcolor"))
    style = f' style="background:{bg}"' if bg else ""
    rich = section(content, "rich")
    parts = [f'<div class="oa-head"{style}>{text(head.get("text"))}</div><div class="oa-body">']
    if content.get("title"):
        parts.append(f'<div class="card-title">{text(content.get("title"))}</div>')
    parts.append(key_values((item.get("key"), item.get("value")) for item in dicts(content.get("form"))))
    if rich:
        parts.append(
            f'<div class="oa-rich">{text(rich.get("num"))} <span>{text(rich.get("unit"))}</span></div>'
        )
    if content.get("content"):
        parts.append(f'<div class="card-desc">{lines(content.get("content"))}</div>')
    if content.get("image"):
        parts.append(media_image(context, content.get("image"), "news-cover"))
    if content.get("file_count"):
        parts.append(f'<div class="card-meta">{text(content.get("file_count"))} attachments</div>')
    if content.get("author"):
        parts.append(f'<div class="card-meta">{text(content.get("author"))}</div>')
    if bar:
        bar_bg = colour(bar.get("status_bg"))
        bar_style = f' style="color:{bar_bg}"' if bar_bg else ""
        parts.append(f'<div class="oa-status"{bar_style}>{text(bar.get("status_value"))}</div>')
    parts.append("</div>")
    href = oa.get("message_url") or oa.get("pc_message_url")
    footer = f'<div class="card-footer">{link(href, "View details")}</div>' if href else ""
    return f'<div class="card oa">{"".join(parts)}{footer}</div>'


ROBOT: Final[dict[str, Renderer]] = {
    "text": _robot_text,
    "markdown": _robot_markdown,
    "link": _robot_link,
    "actionCard": _robot_action_card,
    "feedCard": _robot_feed_card,
}
"""DingTalk group robot messages by msgtype (docs/vendors.md, DingTalk group robot)."""

WORK: Final[dict[str, Renderer]] = {
    "text": _work_text,
    "markdown": _work_markdown,
    "image": _work_image,
    "file": _work_file,
    "voice": _work_voice,
    "link": _work_link,
    "action_card": _work_action_card,
    "oa": _work_oa,
}
"""DingTalk work notifications by msg.msgtype (docs/vendors.md, DingTalk work notifications)."""


def work_recipients(body: dict[str, Any]) -> str:
    """Who a work notification is for: users, departments, or everyone."""
    if body.get("to_all_user") is True:
        return "everyone in the organisation"
    parts = []
    for key, label in (("userid_list", "users"), ("dept_id_list", "departments")):
        value = body.get(key)
        if isinstance(value, str) and value:
            parts.append(f"{label}: {value.replace(',', ', ')}")
    return "; ".join(parts)
