"""The store reads Redis replies with hiredis's C parser, installed with the gateway (issue 15).

redis-py picks hiredis by itself when it can import it; a broken or missing install would fall back
to the pure-Python parser silently, costing CPU on every Send: this says so instead.
"""

from __future__ import annotations

import redis.utils
from redis._parsers.hiredis import _AsyncHiredisParser

from gateway.store.redis_connection import close, connect


async def test_the_store_parses_redis_replies_with_hiredis(redis_url: str) -> None:
    assert redis.utils.HIREDIS_AVAILABLE
    client = connect(redis_url)
    try:
        assert await client.ping()
        connection = await client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _AsyncHiredisParser)
        finally:
            await client.connection_pool.release(connection)
    finally:
        await close(client)
