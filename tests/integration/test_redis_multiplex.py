"""The pipelined Redis connection (``gateway.store.redis_multiplex``) against a real Redis: every
caller gets its own replies whatever runs beside it, callers of one event-loop turn share a write,
and a broken, killed or silent connection fails its callers as a pooled one would (a connection
error retried, a timeout not) instead of leaving anyone waiting or handing one caller another's
reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store import redis_multiplex
from gateway.store.redis_connection import close, connect
from gateway.store.redis_multiplex import Multiplexer
from gateway.store.redis_pool import WaitingConnectionPool, round_trip
from tests.redis_server import RedisProcess


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connected = connect(redis_url, timeout=1.0)
    yield connected
    await close(connected)


def multiplexer_of(client: redis.Redis) -> Multiplexer:
    pool = client.connection_pool
    assert isinstance(pool, WaitingConnectionPool)
    return pool.multiplexer


def counting_writes(mux: Multiplexer) -> list[int]:
    """The number of chunks (one per command) in each write the connection makes from now on."""
    writer = mux._writer
    assert writer is not None
    writes: list[int] = []
    writelines = writer.writelines

    def counted(chunks: Any) -> None:
        writes.append(len(chunks))
        writelines(chunks)

    writer.writelines = counted  # type: ignore[method-assign]
    return writes


def busy_for(ms: int) -> str:
    """A script that keeps Redis busy for ``ms`` and returns 1: its reply comes late."""
    return (
        "local t = redis.call('TIME') repeat local n = redis.call('TIME')"
        f" until (n[1] - t[1]) * 1e6 + n[2] - t[2] > {ms * 1000} return 1"
    )


async def test_many_concurrent_callers_each_get_their_own_replies(
    client: redis.Redis, namespace: str
) -> None:
    async def caller(i: int) -> list[Any]:
        commands: list[tuple[Any, ...]] = [("ECHO", f"caller-{i}-{n}") for n in range(i % 4 + 1)]
        commands.append(("INCR", f"{namespace}:{i}"))
        return await round_trip(client, commands)

    replies = await asyncio.gather(*(caller(i) for i in range(600)))

    for i, got in enumerate(replies):
        assert got == [f"caller-{i}-{n}".encode() for n in range(i % 4 + 1)] + [1]
    assert not multiplexer_of(client)._waiting  # nothing left behind


async def test_callers_of_one_event_loop_turn_share_one_write(client: redis.Redis) -> None:
    mux = multiplexer_of(client)
    await round_trip(client, [("PING",)])  # connected, so the writes below are the callers'
    writes = counting_writes(mux)
    replies = await asyncio.gather(*(round_trip(client, [("ECHO", str(i))]) for i in range(50)))

    assert replies == [[str(i).encode()] for i in range(50)]
    assert writes == [50]  # 50 callers in one event-loop turn: their 50 commands in one write


async def test_an_error_reply_is_its_callers_alone(client: redis.Redis, namespace: str) -> None:
    refused, fine = await asyncio.gather(
        round_trip(client, [("EVALSHA", "0" * 40, 0), ("ECHO", "after the error")]),
        round_trip(client, [("SET", f"{namespace}:k", "v"), ("GET", f"{namespace}:k")]),
    )

    assert isinstance(refused[0], NoScriptError)
    assert refused[1] == b"after the error"
    assert fine == [b"OK", b"v"]  # raw replies: no response callbacks
    assert await round_trip(client, [("ECHO", "next")]) == [b"next"]


async def test_a_wrong_command_is_refused_without_breaking_the_line(client: redis.Redis) -> None:
    (refused,) = await round_trip(client, [("NO-SUCH-COMMAND",)])

    assert isinstance(refused, ResponseError)
    assert await round_trip(client, [("ECHO", "still in line")]) == [b"still in line"]


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_next(client: redis.Redis) -> None:
    await round_trip(client, [("PING",)])
    for _ in range(20):
        gone = asyncio.create_task(round_trip(client, [("ECHO", "cancelled")]))
        await asyncio.sleep(0)  # enqueued, maybe written
        gone.cancel()
        assert await round_trip(client, [("ECHO", "mine")]) == [b"mine"]
    await asyncio.sleep(0.05)
    assert not multiplexer_of(client)._waiting


async def test_a_killed_connection_is_replaced_and_the_next_call_succeeds(
    client: redis.Redis, redis_url: str
) -> None:
    ((connection_id,),) = [await round_trip(client, [("CLIENT", "ID")])]
    killer = redis.Redis.from_url(redis_url)
    try:
        assert await killer.client_kill_filter(_id=connection_id) == 1
    finally:
        await killer.aclose()
    await asyncio.sleep(0.05)  # the reader sees the close while idle

    assert await round_trip(client, [("ECHO", "again")]) == [b"again"]
    ((new_id,),) = [await round_trip(client, [("CLIENT", "ID")])]
    assert new_id != connection_id


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    process = RedisProcess().start()
    yield process
    process.cleanup()


async def test_a_redis_that_stops_answering_fails_callers_with_a_timeout_not_a_wait(
    own_redis: RedisProcess,
) -> None:
    client = connect(own_redis.url, timeout=0.4)
    pauser = redis.Redis.from_url(own_redis.url)
    try:
        await round_trip(client, [("PING",)])
        await pauser.execute_command("CLIENT", "PAUSE", 2000, "ALL")
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(round_trip(client, [("SET", f"paused:{i}", i)]) for i in range(10)), return_exceptions=True
        )
        waited = time.monotonic() - started

        assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes  # not retried: may have run
        assert waited < 0.4 * 1.25 + 0.5  # the timeout, give or take the watchdog's quarter
        await pauser.execute_command("CLIENT", "UNPAUSE")
        assert await round_trip(client, [("ECHO", "after the pause")]) == [b"after the pause"]
    finally:
        await pauser.execute_command("CLIENT", "UNPAUSE")
        await pauser.aclose()
        await close(client)


async def test_a_restarted_redis_is_reconnected_to_on_the_next_call(own_redis: RedisProcess) -> None:
    client = connect(own_redis.url, timeout=1.0)
    try:
        assert await round_trip(client, [("SET", "k", "before")]) == [b"OK"]
        own_redis.stop()
        own_redis.start()

        assert await round_trip(client, [("ECHO", "after the restart")]) == [b"after the restart"]
    finally:
        await close(client)


async def test_a_redis_that_is_down_fails_fast_with_a_connection_error(own_redis: RedisProcess) -> None:
    client = connect(own_redis.url, timeout=1.0)
    own_redis.stop()
    try:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            await round_trip(client, [("PING",)])
        assert time.monotonic() - started < 2.0
    finally:
        await close(client)


async def test_a_silent_server_fails_the_connect_within_the_timeout() -> None:
    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await round_trip(client, [("PING",)])
        assert time.monotonic() - started < 2.0
    finally:
        await close(client)
        server.close()


async def test_commands_are_packed_as_redis_py_packs_them_and_a_bad_value_is_refused_before_queueing(
    client: redis.Redis,
) -> None:
    mux = multiplexer_of(client)
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", "a" * 40, 2, "ns:{t}:k1", "ns:{t}:k2", 12345, -7, 2**63 - 1, 0.1 + 0.2, 1e20),
        ("SET", "ключ", b"\x00\xffbytes", "EX", 60),
        ("ECHO", "x" * 10_000),
    ]
    assert b"".join(mux._pack(commands)) == b"".join(mux._connection.pack_commands(commands))

    with pytest.raises(DataError):  # redis-py's own refusal, not hiredis's TypeError
        await round_trip(client, [("SET", "k", True)])
    assert not mux._waiting and not mux._unsent
    assert await round_trip(client, [("ECHO", "in line")]) == [b"in line"]


async def test_commands_issued_while_others_are_on_the_wire_go_together_when_their_replies_come(
    client: redis.Redis,
) -> None:
    mux = multiplexer_of(client)
    await round_trip(client, [("PING",)])
    writes = counting_writes(mux)
    first = asyncio.create_task(round_trip(client, [("ECHO", "first")]))
    await asyncio.sleep(0)  # written at the end of this turn; its reply takes a round trip
    await asyncio.sleep(0)
    later = [asyncio.create_task(round_trip(client, [("ECHO", str(i))])) for i in range(10)]

    assert await first == [b"first"]
    assert [await t for t in later] == [[str(i).encode()] for i in range(10)]
    assert writes == [1, 10]  # the ten waited for the first reply, then went in one write


async def test_held_commands_go_out_once_enough_have_gathered_without_waiting_for_replies(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_multiplex, "HOLD_LIMIT", 5)
    mux = multiplexer_of(client)
    await round_trip(client, [("PING",)])
    writes = counting_writes(mux)
    written_at: list[float] = []
    writelines = mux._writer.writelines  # type: ignore[union-attr]

    def stamped(chunks: Any) -> None:
        written_at.append(time.monotonic())
        writelines(chunks)

    mux._writer.writelines = stamped  # type: ignore[method-assign, union-attr]
    first = asyncio.create_task(round_trip(client, [("EVAL", busy_for(50), 0)]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.create_task(round_trip(client, [("ECHO", str(i))])) for i in range(12)]

    assert await first == [1]
    first_answered = time.monotonic()
    assert [await t for t in later] == [[str(i).encode()] for i in range(12)]
    assert writes == [1, 12]
    assert written_at[1] < first_answered - 0.02  # the twelve did not wait for the slow reply


async def test_callers_past_the_in_flight_bound_take_a_pooled_connection(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_multiplex, "MAX_IN_FLIGHT", 3)
    mux = multiplexer_of(client)
    await round_trip(client, [("PING",)])
    pool = client.connection_pool
    assert isinstance(pool, WaitingConnectionPool)
    pooled_before = len(pool._available_connections) + len(pool._in_use_connections)

    replies = await asyncio.gather(*(round_trip(client, [("ECHO", str(i))]) for i in range(20)))

    assert replies == [[str(i).encode()] for i in range(20)]
    assert len(pool._available_connections) + len(pool._in_use_connections) > pooled_before
    assert not mux._waiting


async def test_a_caller_that_leaves_before_its_command_is_written_never_has_it_run(
    client: redis.Redis, namespace: str
) -> None:
    await round_trip(client, [("PING",)])
    first = asyncio.create_task(round_trip(client, [("EVAL", busy_for(30), 0)]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # written; its reply comes in 30 ms, so what follows is held
    held = asyncio.create_task(round_trip(client, [("INCR", f"{namespace}:left")]))
    kept = asyncio.create_task(round_trip(client, [("INCR", f"{namespace}:kept")]))
    await asyncio.sleep(0)
    held.cancel()

    assert await first == [1]
    assert await kept == [1]
    assert await round_trip(client, [("GET", f"{namespace}:left"), ("GET", f"{namespace}:kept")]) == [
        None,
        b"1",
    ]
    assert not multiplexer_of(client)._waiting


def test_a_client_used_on_a_second_event_loop_gets_a_connection_of_its_own(redis_url: str) -> None:
    client = connect(redis_url, timeout=1.0)

    async def connection_id() -> int:
        ((got,),) = [await round_trip(client, [("CLIENT", "ID")])]
        return int(got)

    first = asyncio.run(connection_id())  # that loop ends with the connection still open
    second = asyncio.run(connection_id())
    asyncio.run(close(client))

    assert first != second


async def test_commands_packed_by_redis_py_are_answered_as_commands_not_as_chunks(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(command: Any) -> bytes:
        raise TypeError("as hiredis refuses a value it cannot pack")

    monkeypatch.setattr(redis_multiplex, "pack_command", refuse)  # redis-py's packer joins commands
    first, second = await asyncio.gather(
        round_trip(client, [("ECHO", "a"), ("ECHO", "b"), ("ECHO", "c")]),
        round_trip(client, [("ECHO", "d")]),
    )

    assert first == [b"a", b"b", b"c"]
    assert second == [b"d"]
