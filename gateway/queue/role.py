"""``notify-gateway worker``: queue workers without the API, so delivery scales apart from it."""

from __future__ import annotations

import asyncio
import logging
import signal

from gateway.config import Config
from gateway.runtime import Runtime

log = logging.getLogger("gateway.queue")


async def run_worker_until_signalled(config: Config) -> int:
    """Delivers queued jobs until SIGTERM or SIGINT, then stops taking jobs, lets deliveries in
    progress finish within the grace period, and hands the rest back to the other workers."""
    runtime = Runtime.build(config)
    worker = runtime.worker()
    if worker is None:
        await runtime.close()
        log.error("queued delivery needs a Redis token_store; this config keeps state in memory")
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.store_health.check_at_start()
    runtime.start()
    worker.start()
    await stop.wait()
    grace = config.server.grace_period_seconds
    log.info("signal received; stopping the worker", extra={"grace_seconds": grace})
    await worker.stop(grace)
    await runtime.close()
    return 0
