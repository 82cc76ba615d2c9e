"""Safe HTML building blocks for the inbox: every message is untrusted input.

Everything from a message goes through `text` (escaped) or `url` (only http and https, escaped),
so message content can never add markup, scripts or event handlers to the page; the only markup
is what the renderers write around it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote, urlsplit

from gateway.sandbox.paths import PREFIX

_SAFE_SCHEMES: Final = frozenset({"http", "https"})
_HEX_COLOUR: Final = re.compile(r"(?:[0-9A-Fa-f]{2})?([0-9A-Fa-f]{6})")


def text(value: object) -> str:
    """`value` as escaped HTML text (quotes included, so it is safe in attributes too)."""
    return html.escape(value if isinstance(value, str) else "" if value is None else str(value))


def lines(value: object) -> str:
    """Escaped text whose line breaks show, as chat clients show them."""
    return text(value).replace("\n", "<br>")


def url(value: object) -> str | None:
    """An escaped http(s) URL for an href or src, or None for anything else (javascript:, data:...)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return None
    return text(value.strip()) if scheme in _SAFE_SCHEMES else None


def link(href: object, label: str, css: str = "") -> str:
    """An `<a>` opening `href` in a new tab, or a plain `<span>` if the URL is not http(s).

    `label` is HTML already made safe by the caller.
    """
    safe = url(href)
    cls = f' class="{css}"' if css else ""
    if safe is None:
        return f"<span{cls}>{label}</span>"
    return f'<a{cls} href="{safe}" target="_blank" rel="noopener noreferrer">{label}</a>'


def picture(src: object, alt: object = "", css: str = "") -> str:
    """An `<img>` for an http(s) picture URL (the vendor client loads it), or nothing."""
    safe = url(src)
    if safe is None:
        return ""
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="{safe}" alt="{text(alt)}">'


def media_url(owner: str, media_id: str) -> str:
    """The sandbox URL serving the bytes of `owner`'s upload `media_id` (already escaped)."""
    return text(f"{PREFIX}/media/{quote(owner, safe='')}/{quote(media_id, safe='')}")


def colour(value: object) -> str | None:
    """A CSS colour from a vendor colour (DingTalk OA: "FFBBBBBB" is ARGB), or None."""
    if not isinstance(value, str):
        return None
    match = _HEX_COLOUR.fullmatch(value.strip().lstrip("#"))
    return f"#{match.group(1)}" if match else None


def mention(name: str) -> str:
    """A highlighted @mention; `name` is escaped here."""
    return f'<span class="mention">@{text(name)}</span>'


def mentions(names: Iterable[str]) -> str:
    """A line of highlighted @mentions, or "" if there are none."""
    shown = [mention("all" if name == "@all" else name) for name in names if name]
    return f'<div class="mentions">{" ".join(shown)}</div>' if shown else ""


def highlight(escaped: str, names: Iterable[str]) -> str:
    """Escaped text with each `@name` of `names` wrapped as a mention (names matched escaped)."""
    wanted = sorted({text(name) for name in names if name}, key=len, reverse=True)
    if not wanted:
        return escaped
    pattern = re.compile("@(" + "|".join(re.escape(name) for name in wanted) + r")(?![\w.-])")
    return pattern.sub(lambda found: f'<span class="mention">@{found.group(1)}</span>', escaped)


def buttons(items: Iterable[tuple[object, object]], *, horizontal: bool = False) -> str:
    """A card's buttons from (title, url) pairs; horizontal side by side, else stacked."""
    shown = [link(href, text(title) or "&nbsp;", "card-button") for title, href in items]
    if not shown:
        return ""
    layout = "horizontal" if horizontal else "vertical"
    return f'<div class="card-buttons {layout}">{"".join(shown)}</div>'


def key_values(items: Iterable[tuple[object, object]]) -> str:
    """A two-column list of (key, value) pairs, as OA and notice cards show them."""
    rows = "".join(f"<dt>{text(key)}</dt><dd>{lines(value)}</dd>" for key, value in items)
    return f'<dl class="kv">{rows}</dl>' if rows else ""


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of `value` if it is a list, else []: message fields are untrusted shapes."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def field(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None as soon as a step is not a dict with that key."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def strings(value: Any) -> list[str]:
    """The strings in `value` if it is a list, else []."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def section(value: Any, *path: str) -> dict[str, Any]:
    """`field(value, *path)` if it is a dict, else {}: a message part that may be missing or wrong."""
    found = field(value, *path)
    return found if isinstance(found, dict) else {}
