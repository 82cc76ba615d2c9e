"""AiohttpTransport against a local server: whether a failed request may have reached the vendor.

A request handed to a connection may have arrived (its attempt is written, a failure ambiguous);
one that never got a connection, or waited for one from the pool until it timed out, was not sent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import yarl
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.channels.attempts import Attempt
from gateway.channels.transport import AiohttpTransport, TransportError, TransportTimeout


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """``/ok`` answers at once, ``/hang`` never; the base URL."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"errcode": 0, "traceparent": request.headers.get("traceparent", "")})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def echo(request: web.Request) -> web.Response:
        """The query as the vendor received it, and any cookie sent; sets one, as a proxy might."""
        query, cookie = request.rel_url.raw_query_string, request.headers.get("Cookie")
        answer = web.json_response({"query": query, "cookie": cookie})
        answer.set_cookie("lb", "node-1")
        return answer

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/echo", echo)
    app.router.add_post("/hang", hang)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)  # /hang never ends
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_answered_request_was_written_and_its_span_carries_the_http_facts(
    server: str, spans: InMemorySpanExporter
) -> None:
    transport = AiohttpTransport()
    attempt = Attempt()
    span = trace.get_tracer("test").start_span("vendor test /ok", kind=SpanKind.CLIENT)
    try:
        reply = await transport.request(
            "POST",
            f"{server}/ok",
            params={"key": "secret"},
            json_body={},
            timeout=2,
            attempt=attempt,
            span=span,
        )
    finally:
        span.end()
        await transport.close()

    assert attempt.written and reply.status == 200
    assert reply.data is not None and span.get_span_context().span_id == int(
        reply.data["traceparent"][36:52], 16
    )
    attributes = dict(span.attributes or {})  # type: ignore[attr-defined]
    assert attributes["url.full"] == f"{server}/ok?key=***"
    assert (attributes["server.address"], attributes["http.response.status_code"]) == ("127.0.0.1", 200)
    assert [s.name for s in spans.get_finished_spans()] == ["vendor test /ok"], "the caller's span only"


async def test_a_timeout_after_the_request_was_handed_to_a_connection_is_ambiguous(server: str) -> None:
    transport = AiohttpTransport()
    attempt = Attempt()
    try:
        with pytest.raises(TransportTimeout) as caught:
            await transport.request("POST", f"{server}/hang", json_body={}, timeout=0.3, attempt=attempt)
    finally:
        await transport.close()
    assert caught.value.sent and attempt.written


async def test_a_timeout_waiting_for_a_pooled_connection_was_not_sent(server: str) -> None:
    transport = AiohttpTransport(pool_size=1)
    holding = asyncio.create_task(transport.request("POST", f"{server}/hang", json_body={}, timeout=5))
    await asyncio.sleep(0.2)  # the one connection is taken
    attempt = Attempt()
    try:
        with pytest.raises(TransportTimeout) as caught:
            await transport.request("POST", f"{server}/ok", json_body={}, timeout=0.3, attempt=attempt)
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await transport.close()
    assert not caught.value.sent and not attempt.written


async def test_a_connection_refused_was_not_sent_and_marks_its_own_span_failed(
    spans: InMemorySpanExporter,
) -> None:
    transport = AiohttpTransport()
    attempt = Attempt()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.request(
                "POST", f"http://127.0.0.1:{unused_port()}/x", json_body={}, timeout=2, attempt=attempt
            )
    finally:
        await transport.close()
    assert not caught.value.sent and not attempt.written
    (span,) = spans.get_finished_spans()  # no span given: the transport's own, named after the method
    assert (span.name, span.kind, span.status.status_code) == ("POST", SpanKind.CLIENT, StatusCode.ERROR)


async def test_the_query_reaches_the_vendor_as_aiohttp_builds_it_and_no_cookie_is_sent_back(
    server: str,
) -> None:
    """Query URLs are built once per URL and credentials, not per request: same bytes on the wire,
    every time. A cookie a vendor (or a proxy) sets is dropped: the session serves every account."""
    transport = AiohttpTransport()
    params = {"access_token": "tok/en+1=", "timestamp": "1700000000000", "sign": "a b&c"}
    server = server.replace("127.0.0.1", "localhost")  # a cookie jar keeps no cookie an IP address sets
    try:
        answers = [
            await transport.request("POST", f"{server}/echo", params=params, json_body={}, timeout=2)
            for _ in range(2)
        ]
        with_query = await transport.request(
            "POST", f"{server}/echo?x=1", params={"key": "k"}, json_body={}, timeout=2
        )
    finally:
        await transport.close()

    expected = yarl.URL(f"{server}/echo").extend_query(params).raw_query_string
    assert [a.data for a in answers] == [{"query": expected, "cookie": None}] * 2
    assert with_query.data == {"query": "x=1&key=k", "cookie": None}
