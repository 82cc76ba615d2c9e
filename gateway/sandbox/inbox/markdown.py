"""Markdown as each vendor's client renders it: only that vendor's subset, never raw HTML.

Rendered with markdown-it-py with raw HTML off, so message content cannot add markup; the few
HTML-looking things a vendor does allow are turned into safe markup by a rule of our own:
WeCom's `<font color="info|comment|warning">` (colours from a fixed list) and `<@userid>`
mentions. Links and images go through markdown-it's link check (no javascript: or data: links).

Subsets, from docs/vendors.md and the vendors' markdown help:
- WeCom robot and app `markdown`: headings, bold, links, inline code, quotes, coloured text,
  `<@userid>` mentions; no lists, images or tables (they show as plain text).
- WeCom robot `markdown_v2`: adds lists, tables, images, code blocks; no colours, no mentions.
- DingTalk `markdown` (robot and work notification, action cards): headings, quotes, bold,
  italic, links, images, lists; no code, no tables.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any, Final

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from gateway.sandbox.inbox.markup import text

_WECOM_RULES: Final = ["heading", "blockquote", "emphasis", "link", "backticks", "newline", "escape"]
_WECOM_V2_RULES: Final = [
    *_WECOM_RULES,
    "list",
    "table",
    "image",
    "fence",
    "code",
    "hr",
    "strikethrough",
]
_DINGTALK_RULES: Final = ["heading", "blockquote", "emphasis", "link", "image", "list", "newline", "hr"]

_WECOM_TAGS: Final = re.compile(
    r"""<font\s+color=["'](info|comment|warning)["']\s*>|</font\s*>|<@([^<>\s]+)>"""
)
_AT_TOKEN: Final = re.compile(r"@([\w.+-]+)")


def _open_links_in_new_tab(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


def _html(content: str) -> Token:
    token = Token("html_inline", "", 0)
    token.content = content
    return token


def _plain(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _wecom_tags(state: StateCore) -> None:
    """Turn WeCom's coloured-text and mention tags into safe markup, balanced per paragraph."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        depth = 0
        for child in block.children:
            if child.type != "text":
                children.append(child)
                continue
            position = 0
            for found in _WECOM_TAGS.finditer(child.content):
                color, user = found.group(1), found.group(2)
                if color is None and user is None and depth == 0:
                    continue  # a stray </font> stays text
                children.append(_plain(child.content[position : found.start()]))
                if color is not None:
                    children.append(_html(f'<span class="font-{color}">'))
                    depth += 1
                elif user is not None:
                    children.append(_html(f'<span class="mention">@{text(user)}</span>'))
                else:
                    children.append(_html("</span>"))
                    depth -= 1
                position = found.end()
            children.append(_plain(child.content[position:]))
        children.extend(_html("</span>") for _ in range(depth))
        block.children = children


def _at_mentions(state: StateCore) -> None:
    """Highlight `@mobile` / `@userid` tokens of the people the message @-mentions."""
    names: Collection[str] = state.env.get("mentions", ())
    if not names:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        for child in block.children:
            if child.type != "text":
                children.append(child)
                continue
            position = 0
            for found in _AT_TOKEN.finditer(child.content):
                if found.group(1) not in names:
                    continue
                children.append(_plain(child.content[position : found.start()]))
                children.append(_html(f'<span class="mention">@{text(found.group(1))}</span>'))
                position = found.end()
            children.append(_plain(child.content[position:]))
        block.children = children


def _parser(rules: list[str], *, wecom_tags: bool) -> MarkdownIt:
    # "zero" has only paragraphs and text; each vendor's subset is enabled on top. html stays off:
    # a `<script>` in a message is shown as text, as the vendor clients do.
    parser = MarkdownIt("zero", {"html": False, "breaks": True, "linkify": False, "typographer": False})
    parser.enable(rules)
    parser.add_render_rule("link_open", _open_links_in_new_tab)
    if wecom_tags:
        parser.core.ruler.push("wecom_tags", _wecom_tags)
    parser.core.ruler.push("at_mentions", _at_mentions)
    return parser


_WECOM: Final = _parser(_WECOM_RULES, wecom_tags=True)
_WECOM_V2: Final = _parser(_WECOM_V2_RULES, wecom_tags=False)
_DINGTALK: Final = _parser(_DINGTALK_RULES, wecom_tags=False)


def wecom_markdown(source: object, mentions: Collection[str] = ()) -> str:
    """WeCom robot or app `markdown`, as HTML."""
    return _render(_WECOM, source, mentions)


def wecom_markdown_v2(source: object) -> str:
    """WeCom robot `markdown_v2`, as HTML."""
    return _render(_WECOM_V2, source, ())


def dingtalk_markdown(source: object, mentions: Collection[str] = ()) -> str:
    """DingTalk `markdown` (robot, work notification, action card text), as HTML."""
    return _render(_DINGTALK, source, mentions)


def _render(parser: MarkdownIt, source: object, mentions: Collection[str]) -> str:
    if not isinstance(source, str):
        return ""
    env: dict[str, Any] = {"mentions": frozenset(mentions)}
    return f'<div class="markdown">{parser.render(source, env)}</div>'
