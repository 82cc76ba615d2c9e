"""WeCom messages as the WeCom client shows them: group robot and application messages.

Payload shapes: docs/vendors.md, "WeCom application messages" and "WeCom group robot".
Each renderer takes the request body as received (untrusted, possibly malformed) and returns
HTML built only from `markup` helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from gateway.sandbox.inbox.markdown import wecom_markdown, wecom_markdown_v2
from gateway.sandbox.inbox.markup import (
    buttons,
    dicts,
    field,
    highlight,
    key_values,
    lines,
    link,
    mentions,
    picture,
    strings,
    text,
)
from gateway.sandbox.inbox.media_blocks import RenderContext, attachment, media_image
from gateway.sandbox.paths import PREFIX

Renderer = Callable[[dict[str, Any], RenderContext], str]

# WeCom textcard descriptions take <div class="gray|normal|highlight"> (the vendor's textcard help).
_TEXTCARD_DIV: Final = re.compile(
    r"&lt;div class=(?:&quot;|')(gray|normal|highlight)(?:&quot;|')&gt;|&lt;/div&gt;"
)


def _text(body: dict[str, Any], _: RenderContext) -> str:
    content = field(body, "text", "content")
    people = strings(field(body, "text", "mentioned_list")) + strings(
        field(body, "text", "mentioned_mobile_list")
    )
    return f'<div class="bubble">{highlight(lines(content), people)}{mentions(people)}</div>'


def _markdown(body: dict[str, Any], _: RenderContext) -> str:
    return f'<div class="bubble">{wecom_markdown(field(body, "markdown", "content"))}</div>'


def _markdown_v2(body: dict[str, Any], _: RenderContext) -> str:
    return f'<div class="bubble">{wecom_markdown_v2(field(body, "markdown_v2", "content"))}</div>'


def _robot_image(body: dict[str, Any], context: RenderContext) -> str:
    # The picture is in the body itself (base64); the sandbox serves it decoded, by entry number.
    if not isinstance(field(body, "image", "base64"), str):
        return '<div class="attachment missing">image without base64</div>'
    src = text(f"{PREFIX}/inbox/entries/{context.seq}/image")
    return f'<img class="message-image" src="{src}" alt="image">'


def _image(body: dict[str, Any], context: RenderContext) -> str:
    return media_image(context, field(body, "image", "media_id"))


def _media(kind: str) -> Renderer:
    def render(body: dict[str, Any], context: RenderContext) -> str:
        part = body.get(kind)
        parts = part if isinstance(part, dict) else {}
        heading = ""
        if kind == "video" and (parts.get("title") or parts.get("description")):
            heading = (
                f'<div class="card-title">{text(parts.get("title"))}</div>'
                f'<div class="card-desc">{lines(parts.get("description"))}</div>'
            )
        return heading + attachment(context, parts.get("media_id"), kind)

    return render


def _news(body: dict[str, Any], _: RenderContext) -> str:
    articles = dicts(field(body, "news", "articles"))
    if not articles:
        return '<div class="card">no articles</div>'
    first, rest = articles[0], articles[1:]
    cover = picture(first.get("picurl"), first.get("title"), "news-cover")
    head = link(
        first.get("url"),
        f'{cover}<div class="news-cover-title">{text(first.get("title"))}</div>',
        "news-lead",
    )
    description = f'<div class="card-desc">{lines(first.get("description"))}</div>' if not rest else ""
    items = "".join(
        link(
            article.get("url"),
            f"<span>{text(article.get('title'))}</span>{picture(article.get('picurl'), '', 'news-thumb')}",
            "news-item",
        )
        for article in rest
    )
    return f'<div class="card news">{head}{description}{items}</div>'


def _mpnews(body: dict[str, Any], context: RenderContext) -> str:
    articles = dicts(field(body, "mpnews", "articles"))
    shown = "".join(
        '<div class="news-item mpnews">'
        f"{media_image(context, article.get('thumb_media_id'), 'news-thumb')}"
        f'<div><div class="card-title">{text(article.get("title"))}</div>'
        f'<div class="card-desc">{lines(article.get("digest") or article.get("author"))}</div></div></div>'
        for article in articles
    )
    return f'<div class="card news">{shown}</div>'


def _textcard_description(value: object) -> str:
    depth = 0

    def swap(found: re.Match[str]) -> str:
        nonlocal depth
        if found.group(1):
            depth += 1
            return f'<div class="tc-{found.group(1)}">'
        if depth == 0:
            return found.group(0)
        depth -= 1
        return "</div>"

    shown = _TEXTCARD_DIV.sub(swap, lines(value))
    return shown + "</div>" * depth


def _textcard(body: dict[str, Any], _: RenderContext) -> str:
    card = body.get("textcard")
    parts = card if isinstance(card, dict) else {}
    return (
        '<div class="card">'
        f'<div class="card-title">{text(parts.get("title"))}</div>'
        f'<div class="card-desc">{_textcard_description(parts.get("description"))}</div>'
        f"{buttons([(parts.get('btntxt') or 'More', parts.get('url'))])}</div>"
    )


def _miniprogram_notice(body: dict[str, Any], _: RenderContext) -> str:
    card = body.get("miniprogram_notice")
    parts = card if isinstance(card, dict) else {}
    items = dicts(parts.get("content_item"))
    return (
        '<div class="card"><div class="card-source">Mini program notice</div>'
        f'<div class="card-title">{text(parts.get("title"))}</div>'
        f'<div class="card-desc">{lines(parts.get("description"))}</div>'
        f"{key_values((item.get('key'), item.get('value')) for item in items)}"
        f'<div class="card-footer">{text(parts.get("appid"))} {text(parts.get("page"))}</div></div>'
    )


def _template_card(body: dict[str, Any], _: RenderContext) -> str:
    card = body.get("template_card")
    return template_card(card if isinstance(card, dict) else {})


def template_card(card: dict[str, Any]) -> str:
    """A WeCom template card (text_notice, news_notice, button/vote/multiple interaction).

    The structure is deep and passed through by the gateway; every part the client shows is drawn
    when present, so any card_type reads right.
    """
    parts: list[str] = [f'<div class="card-source">{text(card.get("card_type"))}']
    source = card.get("source")
    if isinstance(source, dict):
        parts[0] += f" · {picture(source.get('icon_url'), '', 'card-icon')}{text(source.get('desc'))}"
    parts[0] += "</div>"
    main = card.get("main_title")
    if isinstance(main, dict):
        parts.append(f'<div class="card-title">{text(main.get("title"))}</div>')
        parts.append(f'<div class="card-desc">{lines(main.get("desc"))}</div>')
    emphasis = card.get("emphasis_content")
    if isinstance(emphasis, dict):
        parts.append(
            f'<div class="card-emphasis"><strong>{text(emphasis.get("title"))}</strong>'
            f"<span>{text(emphasis.get('desc'))}</span></div>"
        )
    quote = card.get("quote_area")
    if isinstance(quote, dict):
        quoted = f"{text(quote.get('title'))}<br>{lines(quote.get('quote_text'))}"
        parts.append(f'<blockquote class="card-quote">{quoted}</blockquote>')
    image = card.get("card_image")
    if isinstance(image, dict):
        parts.append(picture(image.get("url"), "", "news-cover"))
    area = card.get("image_text_area")
    if isinstance(area, dict):
        parts.append(
            f'<div class="news-item">{picture(area.get("image_url"), "", "news-thumb")}'
            f'<div><div class="card-title">{text(area.get("title"))}</div>'
            f'<div class="card-desc">{lines(area.get("desc"))}</div></div></div>'
        )
    if isinstance(card.get("sub_title_text"), str):
        parts.append(f'<div class="card-desc">{lines(card.get("sub_title_text"))}</div>')
    horizontal = dicts(card.get("horizontal_content_list"))
    parts.append(key_values((item.get("keyname"), item.get("value")) for item in horizontal))
    vertical = dicts(card.get("vertical_content_list"))
    parts.append(key_values((item.get("title"), item.get("desc")) for item in vertical))
    jumps = dicts(card.get("jump_list"))
    parts.append("".join(link(jump.get("url"), text(jump.get("title")), "card-jump") for jump in jumps))
    button_list = dicts(card.get("button_list"))
    if button_list:
        parts.append(
            '<div class="card-buttons horizontal">'
            + "".join(
                f'<span class="card-button">{text(button.get("text"))}</span>' for button in button_list
            )
            + "</div>"
        )
    checkbox = card.get("checkbox")
    if isinstance(checkbox, dict):
        options = dicts(checkbox.get("option_list"))
        parts.append(
            '<ul class="card-options">'
            + "".join(
                f"<li>{'☑' if o.get('is_checked') else '☐'} {text(o.get('text'))}</li>" for o in options
            )
            + "</ul>"
        )
    submit = card.get("submit_button")
    if isinstance(submit, dict):
        parts.append(
            f'<div class="card-buttons"><span class="card-button">{text(submit.get("text"))}</span></div>'
        )
    action = card.get("card_action")
    if isinstance(action, dict) and action.get("url"):
        parts.append(f'<div class="card-footer">{link(action.get("url"), "View details")}</div>')
    return f'<div class="card template-card">{"".join(parts)}</div>'


ROBOT: Final[dict[str, Renderer]] = {
    "text": _text,
    "markdown": _markdown,
    "markdown_v2": _markdown_v2,
    "image": _robot_image,
    "news": _news,
    "file": _media("file"),
    "voice": _media("voice"),
    "template_card": _template_card,
}
"""WeCom group robot messages by msgtype (docs/vendors.md, WeCom group robot)."""

APP: Final[dict[str, Renderer]] = {
    "text": _text,
    "markdown": _markdown,
    "image": _image,
    "voice": _media("voice"),
    "video": _media("video"),
    "file": _media("file"),
    "textcard": _textcard,
    "news": _news,
    "mpnews": _mpnews,
    "miniprogram_notice": _miniprogram_notice,
    "template_card": _template_card,
}
"""WeCom application messages by msgtype (docs/vendors.md, WeCom application messages)."""


def app_recipients(body: dict[str, Any]) -> str:
    """Who an application message is for: users, departments, tags ("@all" is everyone)."""
    parts = []
    for key, label in (("touser", "users"), ("toparty", "departments"), ("totag", "tags")):
        value = body.get(key)
        if isinstance(value, str) and value:
            parts.append(f"{label}: {value.replace('|', ', ')}")
    return "; ".join(parts)
