"""The inbox page and the JSON and bytes it reads: `/`, `/_sandbox/` and `/_sandbox/inbox/...`.

The page is static (HTML, CSS and a little JavaScript in `static/`, shipped as package data, no
build step, nothing from outside the machine); it reads rendered cards from `entries`, account
state from `accounts`, live updates from `events`, and drives the sandbox through the
`/_sandbox/` control API that already exists (expire tokens, faults, clear).

Every answer that shows message content carries a Content-Security-Policy allowing scripts and
styles from the sandbox only, so even a rendering mistake could not run a message's script.
Uploaded bytes are served as an image only when they are one (by their magic bytes), else as a
download, so an upload claiming text/html can never be opened as a page of this origin.
"""

from __future__ import annotations

import base64
import binascii
from importlib import resources
from typing import Any, Final

from aiohttp import web

from gateway.sandbox.inbox.accounts import accounts
from gateway.sandbox.inbox.cards import CardOptions, card
from gateway.sandbox.inbox.events import InboxEvents
from gateway.sandbox.inbox.media_blocks import RenderContext
from gateway.sandbox.media import MediaRecord
from gateway.sandbox.paths import PREFIX
from gateway.sandbox.recording import Received
from gateway.sandbox.state import SandboxState

INBOX: Final = f"{PREFIX}/inbox"
PAGE_PATHS: Final = ("/", PREFIX, f"{PREFIX}/")
MAX_ENTRIES: Final = 500
"""Cards a page loads at once (newest first); older ones stay in `/_sandbox/messages`."""

_STATIC: Final = {
    "inbox.css": "text/css",
    "inbox.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    # Validated hex colours only (DingTalk OA head and status bar): `markup.colour`.
    "style-src-attr 'unsafe-inline'; "
    "img-src 'self' http: https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_IMAGE_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
_EVENTS: Final = web.AppKey("inbox_events", InboxEvents)


def install(app: web.Application, state: SandboxState, options: CardOptions) -> None:
    """Add the inbox's routes to the sandbox `app`, and end its event streams when it stops."""
    events = InboxEvents(state)
    app[_EVENTS] = events

    async def on_startup(_: web.Application) -> None:
        events.start()

    async def on_shutdown(_: web.Application) -> None:
        events.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.add_routes(_routes(state, events, options))


def _routes(state: SandboxState, events: InboxEvents, options: CardOptions) -> list[web.RouteDef]:
    def context(seq: int, entry: Received) -> RenderContext:
        return RenderContext(
            seq=seq, owner=entry.robot, media=lambda owner, media_id: _record(state, owner, media_id)
        )

    def recalled_ids() -> set[str]:
        ids: set[str] = set()
        for app in [*state.wecom_apps, *state.dingtalk_apps]:
            ids.update(state.recalled(app.name))
        return ids

    def make_card(seq: int, entry: Received, recalled: set[str]) -> dict[str, Any]:
        return card(seq, entry, context(seq, entry), options, recalled)

    def card_for(seq: int) -> dict[str, Any] | None:
        entry = state.entry(seq)
        return make_card(seq, entry, recalled_ids()) if entry is not None else None

    async def page(_: web.Request) -> web.Response:
        return _static_answer("index.html", "text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = _STATIC.get(name)
        if content_type is None:
            raise web.HTTPNotFound()
        return _static_answer(name, content_type)

    async def entries(request: web.Request) -> web.Response:
        limit = _int(request.query.get("limit"), MAX_ENTRIES, 1, MAX_ENTRIES)
        next_seq, numbered = state.next_seq(), state.numbered()
        recalled = recalled_ids()
        shown = [make_card(seq, entry, recalled) for seq, entry in reversed(numbered[-limit:])]
        return web.json_response(
            {"entries": shown, "total": len(numbered), "next_seq": next_seq},
            headers={"Cache-Control": "no-store"},
        )

    async def account_states(_: web.Request) -> web.Response:
        return web.json_response(
            {"accounts": accounts(state), "now": state.clock.now()}, headers={"Cache-Control": "no-store"}
        )

    async def robot_image(request: web.Request) -> web.Response:
        entry = state.entry(_int(request.match_info["seq"], -1, -1, None))
        image = entry.body.get("image") if entry is not None else None
        encoded = image.get("base64") if isinstance(image, dict) else None
        if not isinstance(encoded, str):
            raise web.HTTPNotFound()
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise web.HTTPNotFound() from None
        return _bytes_answer(data, "image.bin")

    async def media(request: web.Request) -> web.Response:
        owner, media_id = request.match_info["owner"], request.match_info["media_id"]
        record = _record(state, owner, media_id)
        data = state.media_content.get(record.sha256) if record is not None else None
        if record is None or data is None:
            raise web.HTTPNotFound(text="no such media, or its bytes are no longer kept")
        return _bytes_answer(data, record.filename or media_id)

    async def stream(request: web.Request) -> web.StreamResponse:
        return await events.stream(request, card_for)

    return [
        *(web.get(path, page) for path in PAGE_PATHS),
        web.get(f"{INBOX}/static/{{name}}", static),
        web.get(f"{INBOX}/entries", entries),
        web.get(f"{INBOX}/entries/{{seq}}/image", robot_image),
        web.get(f"{INBOX}/accounts", account_states),
        web.get(f"{PREFIX}/events", stream),
        web.get(f"{PREFIX}/media/{{owner}}/{{media_id}}", media),
    ]


def _record(state: SandboxState, owner: str, media_id: str) -> MediaRecord | None:
    try:
        return state.media(owner).get(media_id)
    except KeyError:
        return None


def _static_answer(name: str, content_type: str) -> web.Response:
    body = resources.files("gateway.sandbox.inbox").joinpath("static", name).read_bytes()
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if content_type.startswith("text/") else None,
        headers={
            "Content-Security-Policy": _CSP,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _bytes_answer(data: bytes, filename: str) -> web.Response:
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"}
    for magic, content_type in _IMAGE_MAGIC:
        if data.startswith(magic):
            return web.Response(body=data, content_type=content_type, headers=headers)
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename) or "download"
    headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


def _int(value: str | None, default: int, low: int, high: int | None) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(low, number if high is None else min(high, number))
