"""The Redis connection pool, and a cheaper way than redis-py's Pipeline to send a few commands.

Both exist for CPU (issue 15): a sync Send makes two Redis round trips, and redis-py's generic
machinery around each (a Pipeline object per call, the blocking pool's Condition and timeout on
every get and release) cost the gateway more CPU than the commands themselves. ``round_trip``
sends on the pool's pipelined connection (``redis_multiplex``), which carries every concurrent
caller's commands; a pooled connection when that one is full. Everything that touches the wire is
redis-py's own: its connections, command packing, reply parser and retry.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, MaxConnectionsError, NoScriptError, ResponseError

from gateway.store.redis_multiplex import Multiplexer


class WaitingConnectionPool(redis.ConnectionPool):
    """At most ``max_connections`` connections; a caller that finds them all busy waits its turn
    (first come, first served) up to ``timeout`` seconds, then fails as a blocking pool does.

    redis-py's BlockingConnectionPool has the same two properties but pays for the wait on every
    call, full or not: a Condition, a timeout context and a context manager around each get, the
    Condition again around each release (~25 µs of CPU per command at 64 concurrent calls). Here a
    call pays for waiting only when the pool is full.
    """

    def __init__(self, *, timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wait_timeout = timeout
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Waiters woken by a release that have not taken their connection yet: a newcomer must not
        # take it first, or a waiter could be passed over again and again until it times out.
        self._woken = 0
        self._multiplexer: Multiplexer | None = None

    @property
    def multiplexer(self) -> Multiplexer:
        """The pool's pipelined connection (redis_multiplex), made on first use, beside the pool's."""
        if self._multiplexer is None:
            kwargs = {**self.connection_kwargs, "socket_timeout": None, "health_check_interval": 0}
            timeout = self.connection_kwargs.get("socket_timeout") or self._wait_timeout
            self._multiplexer = Multiplexer(lambda: self.connection_class(**kwargs), timeout)
        return self._multiplexer

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if self._multiplexer is not None:
            await self._multiplexer.close()
        await super().disconnect(inuse_connections)

    async def get_connection(
        self, command_name: Any = None, *keys: Any, **options: Any
    ) -> AbstractConnection:
        if not self._waiters and self.max_connections - len(self._in_use_connections) > self._woken:
            try:
                return await self._take()
            except MaxConnectionsError:
                pass  # taken while the pool's lock was held by a release: wait like the rest
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout
        first = False
        while True:
            waiter: asyncio.Future[None] = loop.create_future()
            if first:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():  # woken, but leaving: pass the turn on
                    self._woken -= 1
                    self._wake()
                if isinstance(exc, TimeoutError):
                    raise ConnectionError("No connection available.") from None
                raise
            self._woken -= 1
            try:
                return await self._take()
            except MaxConnectionsError:
                first = True  # lost a race with the pool's lock: keep the head of the line

    async def _take(self) -> AbstractConnection:
        # An idle connection that is open and has nothing unread is handed out as it is: the pool's
        # lock is not needed (nothing below awaits between taking it and marking it in use), and
        # redis-py's connection-count metrics and retried connect() of an open connection, with
        # its release below, cost ~9 µs a command (10 µs a get and release, here 1) for nothing
        # the gateway uses. Anything else takes redis-py's path, which connects or reconnects it.
        available = self._available_connections
        if available:
            connection = available.pop()
            self._in_use_connections.add(connection)
            try:
                if not connection.is_connected or await connection.can_read():
                    await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
            return connection
        taken: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        return taken

    async def release(self, connection: AbstractConnection) -> None:
        """redis-py's release without its lock (nothing awaits between the two list changes unless
        the connection must reconnect), its connection-count metrics and its after-release event,
        which only re-authenticates connections of a streaming credential provider (not used here)."""
        self._in_use_connections.remove(connection)  # a second release raises, as redis-py's
        if connection.should_reconnect():  # type: ignore[no-untyped-call]
            await connection.disconnect()
        self._available_connections.append(connection)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a waiter that timed out or was cancelled is skipped
                waiter.set_result(None)
                self._woken += 1
                return


async def round_trip(client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Sends ``commands`` together and returns their raw replies in order; a command's error
    reply is returned as its ResponseError, not raised, so one command's error (NOSCRIPT) never
    leaves the others' replies unread on the connection.

    What a non-transactional Pipeline does, without its per-call objects: no Pipeline, command
    stack or response callbacks (replies come back raw), no observability hooks (the gateway
    traces its own calls). They go on the pipelined connection, beside other callers' commands,
    or on a pooled connection of their own when the pipelined one has ``MAX_IN_FLIGHT`` callers
    waiting. A connection error is retried on a fresh connection as the client's retry policy
    says, as the Pipeline would; a timeout is not (the commands may have run), and no late reply
    is ever read by the next caller. RedisError is the caller's to map.
    """
    pool = client.connection_pool
    if isinstance(pool, WaitingConnectionPool) and not pool.multiplexer.full:
        multiplexer = pool.multiplexer
        retry = pool.connection_kwargs.get("retry")
        if retry is None:
            return await multiplexer.execute(commands)
        pipelined: list[Any] = await retry.call_with_retry(
            lambda: multiplexer.execute(commands), _after_failure
        )
        return pipelined
    conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await conn.retry.call_with_retry(
            lambda: _send(conn, commands),
            lambda error, failures: conn.disconnect(error=error, failure_count=failures),
            with_failure_count=True,
        )
    finally:
        await pool.release(conn)


async def _after_failure(error: Exception) -> None:
    """The multiplexer has closed its broken connection already; the retry makes a new one."""


async def _send(conn: AbstractConnection, commands: Sequence[Sequence[Any]]) -> list[Any]:
    await conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except ResponseError as exc:
            replies.append(exc)
    return replies


async def run_script(
    client: redis.Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any],
    also: Sequence[Sequence[Any]] = (),
) -> list[Any]:  # fmt: skip
    """Runs ``script`` by its sha, and the commands ``also`` in the same write; their replies, in order.

    EVALSHA by hand rather than calling redis-py's Script, which goes through the client's costlier
    generic command path and cannot carry other commands. NOSCRIPT (a Redis that restarted) loads
    the script, once, and the commands ``also`` then run again, so they must be idempotent. An
    error reply is raised.
    """
    commands = [("EVALSHA", script.sha, len(keys), *keys, *args), *also]
    replies = await round_trip(client, commands)
    if isinstance(replies[0], NoScriptError):
        await client.script_load(script.script)
        replies = await round_trip(client, commands)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies
