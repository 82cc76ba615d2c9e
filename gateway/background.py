"""Stopping a background loop without waiting on it forever.

``task.cancel(); await task`` hangs when the loop swallows its cancellation, which Python 3.11's
``asyncio.timeout`` can do when a timeout and a cancel land together inside a client library (seen
with redis-py: a store loop asleep again after its cancel, and shutdown waiting for it forever).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("gateway.background")


async def cancel_and_wait(task: asyncio.Task[Any], timeout: float = 5.0) -> None:
    """Cancels ``task`` again every half second until it ends, for ``timeout`` seconds at most."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not task.done():
        left = give_up - loop.time()
        if left <= 0:
            log.warning("a background task did not stop; leaving it", extra={"task": task.get_name()})
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.5, left))
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "a background task failed", extra={"task": task.get_name(), "error": repr(task.exception())}
        )
