"""Whether the gateway's store answers, so health checks can say so before callers' Sends fail.

Without this, a gateway whose Redis is down reports SERVING and every Send fails UNAVAILABLE; a
load balancer or orchestrator that reads health could have routed around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("gateway.store")
#: A PING slower than this counts as unreachable: a Redis that cannot answer a PING in 2 s cannot
#: serve a Send either, and the check must not hang the start-up or the checking loop.
PING_TIMEOUT = 2.0


def display_url(url: str) -> str:
    """The store URL without its user and password, for log lines an operator reads."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class StoreHealth:
    """Pings the Redis store (a memory store is always reachable) and reports each change."""

    def __init__(self, url: str, client: redis.Redis | None) -> None:
        self.url = display_url(url)
        self._client = client
        self.reachable: bool | None = None  # unknown until the first check

    async def problem(self) -> str | None:
        """None if the store answers a PING, else why not (redis-py's text names no password)."""
        if self._client is None:
            return None
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await self._client.ping()
        except TimeoutError:
            return f"no answer to PING within {PING_TIMEOUT:g} s"
        except (RedisError, OSError) as exc:
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        except Exception as exc:  # a check that died would leave health stuck as it was
            log.exception("store check failed")
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        return None

    async def check_at_start(self) -> bool:
        """Checks once and logs one line either way: the first thing to read when Sends fail."""
        if self._client is None:
            self.reachable = True
            return True
        problem = await self.problem()
        self.reachable = problem is None
        if problem is None:
            log.info("store reachable", extra={"store": self.url})
        else:
            log.error(
                "store unreachable; serving anyway, health NOT_SERVING until it answers",
                extra={"store": self.url, "error": problem},
            )
        return self.reachable

    async def watch(self, interval: float, changed: Callable[[bool], Awaitable[None]]) -> None:
        """Checks every ``interval`` seconds until cancelled; calls ``changed`` on each transition.

        Only transitions are logged, so a Redis down for an hour writes two lines, not 720.
        """
        if self._client is None:
            return
        while True:
            await asyncio.sleep(interval)
            problem = await self.problem()
            reachable = problem is None
            if reachable == self.reachable:
                continue
            self.reachable = reachable
            if reachable:
                log.info("store reachable again", extra={"store": self.url})
            else:
                log.error("store unreachable", extra={"store": self.url, "error": problem})
            await changed(reachable)
