"""One Redis connection that carries the commands of every concurrent call at once (pipelining).

A sync Send makes two Redis round trips. On a pooled connection each pays for taking and returning
the connection, a task for redis-py's write timeout, a timeout around its read, and a write and a
read of its own. Here the commands that calls issue in the same event-loop turn go out in one
write, and one read brings back every reply that has arrived: ~35 µs less CPU per round trip in a
bare grpc.aio server at 64 concurrent calls, ~6% of a Send's CPU in the gateway, and ~8% of Redis's
own CPU per Send (one connection instead of up to 50). Redis answers a connection's commands in
order, so the replies are matched to their callers by position. This is what ioredis calls
auto-pipelining and Lettuce does by default; redis-py has no such mode, so it is kept here, on
redis-py's own connection, packing and parser.

Only the gateway's short commands go this way (``redis_pool.round_trip``: the admission, outcome,
rate and queue-finish scripts); a long or blocking one (XREADGROUP BLOCK, a big ListMessages read)
takes a pooled connection, so it never holds the line for others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("gateway.store")

#: Callers held back while others' commands are on the wire, at most, before they are written anyway.
HOLD_LIMIT = 64
#: Callers waiting for their replies, at most; beyond, callers take a pooled connection (which
#: is bounded and waits), so a burst never grows this connection's queue without limit.
MAX_IN_FLIGHT = 4096


class _Waiting:
    """One caller's commands, packed; how many replies it needs, and the replies so far."""

    __slots__ = ("future", "needed", "packed", "replies", "since", "written")

    def __init__(
        self, future: asyncio.Future[list[Any]], packed: list[bytes], needed: int, since: float
    ) -> None:
        self.future = future
        self.packed = packed  # chunks to write: not one per command when redis-py packed them
        self.needed = needed
        self.since = since
        self.replies: list[Any] = []
        self.written = False


class Multiplexer:
    """Pipelines callers' commands on one connection; ``execute`` is its whole interface.

    Failure, as a pooled connection fails: a connection that breaks fails every caller waiting on
    it with ConnectionError (a caller retries that, as redis-py does, on the next connection), and
    a reply that does not come within ``timeout`` (give or take a quarter) fails the caller with
    TimeoutError, which is not retried (the command may have run). A timeout closes the connection
    and fails every command on it the same way: replies come in order, so every command queued
    behind the late one would wait as long.
    """

    def __init__(self, connect: Callable[[], AbstractConnection], timeout: float) -> None:
        # redis-py's connection for its connect (AUTH, SELECT, TLS, RESP version), packing and
        # parser; it has no read or write timeout of its own: the callers' timeouts stand for it.
        # A new one per event loop: one made on another loop (or before a fork) is not ours to use.
        self._new_connection = connect
        self._connection = connect()
        self._timeout = timeout
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._unsent: list[_Waiting] = []  # in self._waiting too, in the same order
        self._writer: asyncio.StreamWriter | None = None
        self._flush_scheduled = False
        self._unanswered = 0  # written callers whose replies have not all come
        self._reader: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self._closing: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def full(self) -> bool:
        return len(self._waiting) >= MAX_IN_FLIGHT

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The raw replies to ``commands``, in order; an error reply is its ResponseError, returned."""
        if self._reader is None or self._loop is not asyncio.get_running_loop():
            await self._connect()
        loop = self._loop
        assert loop is not None
        packed = self._pack(commands)  # first: a bad argument raises here, before anything is queued
        waiting = _Waiting(loop.create_future(), packed, len(commands), loop.time())
        self._waiting.append(waiting)
        self._unsent.append(waiting)
        # While written commands await their replies, new ones wait for those replies (or for
        # HOLD_LIMIT of them to gather) and then go together: see _flush.
        if not self._flush_scheduled and (not self._unanswered or len(self._unsent) >= HOLD_LIMIT):
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout / 4, self._watch)
        return await waiting.future

    def _pack(self, commands: Sequence[Sequence[Any]]) -> list[bytes]:
        try:  # hiredis's C packer writes the same bytes as redis-py's, ~6x cheaper (1.3 vs 7.8 µs)
            return [pack_command(tuple(command)) for command in commands]
        except TypeError:  # a value hiredis does not pack (a bool, None): redis-py's packer says why
            return self._connection.pack_commands(commands)

    def _watch(self) -> None:
        """Fails the line when its oldest command has waited past the timeout.

        One timer for the connection rather than one per call: replies come in order, so only the
        oldest command can be the first one late.
        """
        self._watchdog = None
        if not self._waiting or self._loop is None:
            return
        if self._loop.time() - self._waiting[0].since > self._timeout:
            self._break(RedisTimeoutError("Timeout reading from Redis (pipelined connection)"))
            return
        self._watchdog = self._loop.call_later(self._timeout / 4, self._watch)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, a new event loop (tests) or a forked child
            self._forget()
            self._loop = loop
            self._connecting = asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._reader is not None:
                return
            if self._closing is not None:  # the broken connection's close, so its parser is reset
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._closing)
                self._closing = None
            try:  # the handshake's replies are read without a timeout of the connection's own
                async with asyncio.timeout(self._timeout):
                    await self._connection.connect()  # type: ignore[no-untyped-call]
            except TimeoutError:
                await self._connection.disconnect(nowait=True)
                raise RedisTimeoutError("Timeout connecting to Redis (pipelined connection)") from None
            self._writer = self._connection._writer
            self._reader = loop.create_task(self._read_loop(), name="redis-multiplex-read")

    def _flush(self) -> None:
        """Writes what callers queued, in one write.

        When the line is idle a command goes at the end of the event-loop turn it was issued in,
        with whatever else that turn issued. When commands are on the wire already, the new ones
        wait for those replies (the reader flushes them when the last arrives) unless HOLD_LIMIT
        of them gather first: under load each write carries what arrived during one round trip,
        and a write to a loopback socket costs far more CPU than the bytes it carries. A command
        waits one round trip more at most; at concurrency 1 never.

        Straight into the connection's stream writer, which redis-py keeps in ``_writer`` (redis
        is pinned; the tests here write through it): a task awaiting redis-py's
        ``send_packed_command`` would cost a wake-up per write. Nothing waits for the socket to
        drain: what is queued is bounded by MAX_IN_FLIGHT callers, and a connection that stops
        taking bytes stops answering too, which the watchdog ends.
        """
        self._flush_scheduled = False
        writer = self._writer
        if writer is None or not self._unsent:
            return
        entries, self._unsent = self._unsent, []
        chunks: list[bytes] = []
        for waiting in entries:
            if waiting.future.done():  # its caller left before it was written: it is never sent
                self._waiting.remove(waiting)
                continue
            waiting.written = True
            chunks.extend(waiting.packed)
            self._unanswered += 1
        if not chunks:
            return
        try:
            writer.writelines(chunks)
        except Exception as exc:  # a transport closed under us: the reader sees it too
            self._break(ConnectionError(f"Error writing to Redis: {exc}"))

    async def _read_loop(self) -> None:
        me = asyncio.current_task()
        waiting = self._waiting
        read = self._connection.read_response
        try:
            while self._reader is me:  # a broken line's reader stops, whatever it was doing
                try:
                    reply: Any = await read(timeout=math.inf, disconnect_on_error=False)
                except ResponseError as exc:
                    reply = exc
                if not waiting:  # nobody asked (a caller's timeout broke the line meanwhile)
                    raise ConnectionError("Redis sent a reply nobody waits for")
                first = waiting[0]
                first.replies.append(reply)
                if len(first.replies) == first.needed:
                    waiting.popleft()
                    if not first.future.done():  # a cancelled caller's reply is dropped
                        first.future.set_result(first.replies)
                    self._unanswered -= 1
                    if not self._unanswered and self._unsent:
                        self._flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._reader is me:
                self._break(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))

    def _break(self, exc: Exception) -> None:
        """Ends this connection: every waiting caller fails with ``exc`` (a command never written
        with ConnectionError, so its caller may retry it); the next ``execute`` reconnects."""
        if self._reader is None:
            return
        if self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._reader = None
        self._writer = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._unsent = []
        self._unanswered = 0
        for entry in waiting:
            if not entry.future.done():
                # An exception of its own for each caller: each raises it with its own traceback.
                failure = (
                    type(exc)(*exc.args)
                    if entry.written
                    else ConnectionError("Redis connection closed before writing")
                )
                entry.future.set_exception(failure)
                entry.future.exception()  # a caller that already left must not log "never retrieved"
        log.debug("pipelined Redis connection closed", extra={"error": type(exc).__name__})
        assert self._loop is not None
        self._closing = self._loop.create_task(self._connection.disconnect(nowait=True))

    def _forget(self) -> None:
        """Drops the state of an event loop that is gone, without touching its tasks or socket."""
        if self._loop is not None:
            self._connection = self._new_connection()
        self._reader = None
        self._writer = None
        self._flush_scheduled = False
        self._unanswered = 0
        self._waiting = collections.deque()
        self._unsent = []
        self._closing = None
        self._watchdog = None

    async def close(self) -> None:
        if self._loop is not asyncio.get_running_loop():  # nothing open on this loop to close
            return
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._reader is not None:
            reader = self._reader
            self._break(ConnectionError("Redis client closed"))
            await asyncio.gather(reader, return_exceptions=True)
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing
            self._closing = None
        await self._connection.disconnect()
