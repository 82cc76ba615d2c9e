"""Which asyncio event loop `serve` and `worker` run on: uvloop where it is installed, else asyncio's.

grpc.aio drives any asyncio loop that can watch a file descriptor (``loop.add_reader``), which
uvloop can; the e2e suite passes on it. uvloop's libuv core makes the loop's own work (callbacks,
sockets: aiohttp's vendor calls, redis-py's connections) cheaper, so a Send costs less CPU (issue
15; ``make bench`` measures it). ``asyncio`` is the switch back to the standard loop, for a
platform without uvloop or to rule the loop out while chasing a problem.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopChoice, ...] = ("auto", "uvloop", "asyncio")


class EventLoopUnavailable(RuntimeError):
    """``uvloop`` was asked for by name and cannot be imported (not installed; Windows has none)."""


def resolve(choice: EventLoopChoice) -> Literal["uvloop", "asyncio"]:
    """``auto`` is uvloop when it imports (installed and working); an explicit ``uvloop`` must."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError as exc:
        if choice == "auto":
            return "asyncio"
        raise EventLoopUnavailable(
            f"server.event_loop is uvloop, but uvloop cannot be imported: {exc}"
        ) from None
    return "uvloop"


def loop_factory(name: Literal["uvloop", "asyncio"]) -> Callable[[], asyncio.AbstractEventLoop]:
    """For ``asyncio.Runner(loop_factory=...)``: no global policy is changed, so nothing else is."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
