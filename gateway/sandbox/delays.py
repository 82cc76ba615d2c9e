"""Delays that end early when the sandbox stops.

An injected delay exists to make the client's timeout fire, so it is usually longer than the
test wants to wait at teardown; without this, stopping the server would wait for every sleeping
handler (aiohttp waits for in-flight requests on shutdown).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

_STOPPING = web.AppKey("sandbox_stopping", asyncio.Event)


def install(app: web.Application) -> None:
    """Let `pause` in this app's handlers be cut short when the app shuts down."""
    stopping = asyncio.Event()
    app[_STOPPING] = stopping

    async def on_shutdown(_: web.Application) -> None:
        stopping.set()

    app.on_shutdown.append(on_shutdown)


async def pause(app: web.Application, seconds: float) -> bool:
    """Sleep `seconds` of real time; False if the app began stopping first."""
    stopping = app.get(_STOPPING)
    if stopping is None:
        await asyncio.sleep(seconds)
        return True
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return True
    return False
