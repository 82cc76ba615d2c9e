"""Server-Sent Events telling inbox pages what arrived, so they update without a reload.

Each page gets its own bounded queue of journal sequence numbers (None: the journal was
cleared). The journal tells every queue without waiting; a page that falls behind by more than
`QUEUE_SIZE` events is disconnected rather than allowed to grow memory, and its browser
reconnects and reloads the whole list (the page reloads on every (re)connection). Writes to a
page that stopped reading give up after `WRITE_TIMEOUT`, and a comment every `HEARTBEAT` seconds
finds connections that went away, so nothing waits forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from gateway.sandbox.state import SandboxState

log = logging.getLogger(__name__)

QUEUE_SIZE: Final = 256
HEARTBEAT: Final = 15.0
WRITE_TIMEOUT: Final = 10.0
CLOSE: Final = object()
"""Put in a queue to end its stream: the sandbox is stopping, or the page fell behind."""

CardMaker = Callable[[int], dict[str, Any] | None]
"""Turns a journal sequence number into the card to send, or None if it is gone."""


class Subscription:
    """One connected page: its bounded queue and the loop that owns it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_SIZE)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the stream was told to end; nothing more is queued then."""
        return self._closed

    def offer(self, item: object) -> None:
        """Queue `item`; a full queue is emptied and closed (the page will reload everything)."""
        if self._closed:
            return
        if item is CLOSE:
            self._closed = True
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self._closed = True
            self.queue.put_nowait(CLOSE)


class InboxEvents:
    """The connected pages of one sandbox app, fed from its state's journal."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._subscribers: set[Subscription] = set()
        self._unwatch: Callable[[], None] | None = None

    def start(self) -> None:
        """Follow the journal."""
        if self._unwatch is None:
            self._unwatch = self._state.watch(self._tell)

    def close(self) -> None:
        """Stop following the journal and end every stream (the sandbox is stopping)."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        for subscriber in list(self._subscribers):
            self._deliver(subscriber, CLOSE)

    @property
    def subscribers(self) -> int:
        """Pages connected now."""
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """A new page's subscription; it gets every journal event until `unsubscribe`."""
        subscription = Subscription()
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop feeding `subscription`."""
        self._subscribers.discard(subscription)

    def _tell(self, seq: int | None) -> None:
        for subscriber in list(self._subscribers):
            self._deliver(subscriber, seq)

    @staticmethod
    def _deliver(subscriber: Subscription, item: object) -> None:
        # The journal is written from the sandbox's loop; a test may write it from another thread.
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is subscriber.loop:
            subscriber.offer(item)
        elif not subscriber.loop.is_closed():
            subscriber.loop.call_soon_threadsafe(subscriber.offer, item)

    async def stream(self, request: web.Request, make_card: CardMaker) -> web.StreamResponse:
        """Answer `GET /_sandbox/events` with an SSE stream of `entry` and `cleared` events."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        subscriber = self.subscribe()
        try:
            await response.prepare(request)
            await self._write(response, "retry: 1000\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT)
                except TimeoutError:
                    await self._write(response, ": keep-alive\n\n")
                    continue
                if item is CLOSE:
                    break
                if item is None:
                    await self._write(response, "event: cleared\ndata: {}\n\n")
                elif isinstance(item, int):
                    card = make_card(item)
                    if card is not None:
                        data = json.dumps(card, ensure_ascii=False)
                        await self._write(response, f"event: entry\nid: {item}\ndata: {data}\n\n")
        except (ConnectionError, TimeoutError):
            log.debug("inbox event stream ended: the page went away or stopped reading")
        finally:
            self.unsubscribe(subscriber)
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, chunk: str) -> None:
        await asyncio.wait_for(response.write(chunk.encode("utf-8")), WRITE_TIMEOUT)
