"""The inbox over HTTP: the page at the sandbox's root, cards as JSON, live events with bounded
memory, and uploaded bytes served safely (an image as an image, anything else as a download)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import aiohttp

from gateway.sandbox import SandboxServer, SandboxState
from gateway.sandbox.inbox.events import CLOSE, QUEUE_SIZE, InboxEvents
from gateway.sandbox.media_content import MediaContent
from tests.media_samples import PNG

from .harness import WECOM_APP, AppClient, RobotClient

HELLO = {"msgtype": "text", "text": {"content": "hello <b>world</b>", "mentioned_list": ["zhangsan"]}}


async def test_the_page_is_served_at_the_root_and_under_the_sandbox_prefix(
    sandbox: SandboxServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/", "/_sandbox", "/_sandbox/"):
        async with http.get(sandbox.url + path) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            assert "Sandbox inbox" in await response.text()
    for name in ("inbox.css", "inbox.js"):
        async with http.get(f"{sandbox.url}/_sandbox/inbox/static/{name}") as response:
            assert response.status == 200
    async with http.get(f"{sandbox.url}/_sandbox/inbox/static/..%2Fview.py") as response:
        assert response.status == 404


async def test_entries_are_rendered_cards_newest_first(robots: RobotClient, state: SandboxState) -> None:
    await robots.wecom(HELLO)
    await robots.wecom({"msgtype": "markdown", "markdown": {"content": "# second"}})

    async with robots.session.get(f"{robots.base_url}/_sandbox/inbox/entries") as response:
        data = await response.json()

    assert [card["msgtype"] for card in data["entries"]] == ["markdown", "text"]
    assert data["next_seq"] == 2
    text_card = data["entries"][1]
    assert "hello &lt;b&gt;world&lt;/b&gt;" in text_card["html"]
    assert '<span class="mention">@zhangsan</span>' in text_card["html"]


async def test_events_stream_each_entry_and_clears(robots: RobotClient, state: SandboxState) -> None:
    async def until(stream: aiohttp.ClientResponse, event: str) -> list[str]:
        lines: list[str] = []
        while f"event: {event}\n" not in lines or not lines[-1].startswith("data: "):
            lines.append((await asyncio.wait_for(stream.content.readline(), 5)).decode())
        return lines

    async with robots.session.get(f"{robots.base_url}/_sandbox/events") as stream:
        assert stream.content_type == "text/event-stream"
        await robots.wecom(HELLO)
        entry = await until(stream, "entry")
        state.clear()
        await until(stream, "cleared")
    assert any(line.startswith("data: ") and '"msgtype": "text"' in line for line in entry)


async def test_a_page_that_falls_behind_is_dropped_instead_of_growing_memory() -> None:
    state = SandboxState()
    state.add_wecom_robot("ops", "key")
    events = InboxEvents(state)
    events.start()
    slow = events.subscribe()

    for _ in range(QUEUE_SIZE * 3):
        state.clear()  # each clear is one event

    assert slow.queue.qsize() == 1
    assert slow.queue.get_nowait() is CLOSE
    events.close()


async def test_stopping_the_sandbox_ends_open_event_streams(
    state: SandboxState, http: aiohttp.ClientSession
) -> None:
    server = SandboxServer(state)
    await server.start()
    async with http.get(f"{server.url}/_sandbox/events") as stream:
        await stream.content.readline()
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2


async def test_uploaded_images_are_served_as_images_and_other_bytes_as_downloads(
    apps: AppClient, state: SandboxState
) -> None:
    image = (await apps.wecom_upload("image", PNG, "chart.png")).json["media_id"]
    page = (await apps.wecom_upload("file", b"<html><script>alert(1)</script></html>", "x.html")).json[
        "media_id"
    ]

    async with apps.session.get(f"{apps.base_url}/_sandbox/media/{WECOM_APP}/{image}") as response:
        assert response.content_type == "image/png"
        assert await response.read() == PNG
    async with apps.session.get(f"{apps.base_url}/_sandbox/media/{WECOM_APP}/{page}") as response:
        assert response.content_type == "application/octet-stream"
        assert response.headers["Content-Disposition"] == 'attachment; filename="x.html"'
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    async with apps.session.get(f"{apps.base_url}/_sandbox/media/{WECOM_APP}/unknown") as response:
        assert response.status == 404


async def test_a_robot_image_is_served_from_its_base64(robots: RobotClient) -> None:
    body = {
        "msgtype": "image",
        "image": {"base64": base64.b64encode(PNG).decode(), "md5": hashlib.md5(PNG).hexdigest()},
    }
    assert (await robots.wecom(body)).errcode == 0
    async with robots.session.get(f"{robots.base_url}/_sandbox/inbox/entries/0/image") as response:
        assert response.content_type == "image/png"
        assert await response.read() == PNG


async def test_the_account_panel_shows_tokens_rate_and_faults(apps: AppClient, state: SandboxState) -> None:
    await apps.wecom_token()
    state.inject_fault("wecom_app", WECOM_APP, http_status=500)

    async with apps.session.get(f"{apps.base_url}/_sandbox/inbox/accounts") as response:
        shown = {account["name"]: account for account in (await response.json())["accounts"]}

    app = shown[WECOM_APP]
    assert app["token"]["state"] == "valid" and app["gettoken_calls"] == 1
    assert app["faults"] == [{"http_status": 500}]
    assert shown["ops"]["rate"] == {"used": 0, "limit": 20, "window_seconds": 60, "unit": "a minute"}
    assert all("secret" not in str(account) for account in shown.values())


def test_sequence_numbers_are_never_reused_after_a_clear(state: SandboxState) -> None:
    seen: list[int | None] = []
    state.watch(seen.append)
    state.clear()
    assert seen == [None]
    assert state.next_seq() == 0


def test_media_content_keeps_the_newest_within_its_budget() -> None:
    content = MediaContent(budget=10)
    content.keep("a", b"12345")
    content.keep("b", b"12345")
    content.keep("c", b"123")
    assert content.get("a") is None
    assert content.get("b") == b"12345" and content.get("c") == b"123"
    content.keep("huge", b"x" * 11)
    assert content.get("huge") is None and content.size == 8
