"""The HTTP server: matches a route, transcodes, calls the RPC on the internal channel, answers JSON.

Every request gets a server span (continuing the caller's ``traceparent``) whose context is sent
on as the RPC's metadata, so the gRPC span, the access log and the vendor calls share its trace
id; and one access-log line of its own, since a request refused here (no route, too large) never
reaches the gRPC access log. Neither carries a header, a query string or a body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.descriptor import ServiceDescriptor
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.config import HttpSettings, TlsSettings, parse_listen
from gateway.errors import GatewayError
from gateway.http import problems
from gateway.http.metadata import deadline, forwarded_metadata
from gateway.http.openapi import openapi_document
from gateway.http.problems import HttpProblem
from gateway.http.routes import Matched, Route, Router, Unmatched
from gateway.http.transcoding import apply_idempotency_key, request_message, to_json
from gateway.http.uploads import read_upload
from gateway.http.upstream import Rpc, Upstream
from gateway.interceptors.auth import authenticate
from gateway.telemetry import current_span
from gateway.tenants import Tenants

log = logging.getLogger("gateway.http")
OPENAPI_PATH = "/openapi.json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NDJSON = "application/x-ndjson"


class HttpFace:
    """``await start()``, ``port``, ``await stop()``: the HTTP/JSON face in front of ``upstream``."""

    def __init__(
        self,
        settings: HttpSettings,
        service: ServiceDescriptor,
        *,
        upstream: str,
        max_body_bytes: int,
        grace_seconds: float = 10.0,
        reuse_port: bool = False,
        tenants: Tenants | None = None,
    ) -> None:
        if settings.listen is None:
            raise ValueError("http.listen is not set")
        self.settings = settings
        self.router = Router(service)
        self._service = service
        # Checked here before the body is read, and again by the gRPC server's own interceptor.
        self._tenants = tenants if tenants is not None and tenants.enabled else None
        self._upstream_target = upstream
        self._grace = grace_seconds
        self._max_body = settings.max_body_bytes or max_body_bytes
        self._upstream: Upstream | None = None
        self._runner: web.AppRunner | None = None
        self._openapi = json.dumps(openapi_document(service), ensure_ascii=False).encode()
        self._socket = _listen(settings.listen, reuse_port=reuse_port)
        self.port = int(self._socket.getsockname()[1])  # the port bound, when listen asked for 0

    @property
    def address(self) -> str:
        host = (self.settings.listen or "").rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        self._upstream = Upstream(self._upstream_target, self._service, self._max_body)
        app = web.Application(client_max_size=self._max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # No aiohttp access log: it would write the query string; ours writes the route.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=self._grace)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket, ssl_context=_ssl(self.settings.tls)).start()
        log.info("http face listening", extra={"address": self.address})

    async def stop(self) -> None:
        """Stops accepting, lets requests in flight finish within the grace period, closes the channel."""
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
            self._runner = None
        self._socket.close()  # aiohttp closed it if it served; else it was never handed over
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        carrier = {key.lower(): value for key, value in request.headers.items()}
        matched = self.router.match(request.method, request.rel_url.raw_path)
        route = matched.route if isinstance(matched, Matched) else None
        name = route.template if route is not None else "unmatched"
        attributes = {"http.request.method": request.method, "http.route": name}
        with current_span(
            f"{request.method} {name}", kind=SpanKind.SERVER, context=propagate.extract(carrier),
            attributes=attributes, error_on_exception=False,
        ) as span:  # fmt: skip
            try:
                response = await self._answer(request, matched)
            except HttpProblem as problem:
                response = _problem(problem)
            except Exception:
                # A bug of ours, answered as gRPC answers one: INTERNAL, the details in the log only.
                log.exception("unhandled error serving %s %s", request.method, name)
                response = _problem(problems.internal())
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status}"))
            context = span.get_span_context()
            log.info(
                "http",
                extra={
                    "trace_id": format(context.trace_id, "032x") if context.is_valid else "",
                    "method": request.method,
                    "route": name,
                    "rpc": route.rpc.full_name if route is not None else "",
                    "status": response.status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response

    async def _answer(self, request: web.Request, matched: Matched | Unmatched) -> web.StreamResponse:
        if isinstance(matched, Unmatched):
            if request.method == "GET" and request.rel_url.raw_path == OPENAPI_PATH:
                return web.Response(body=self._openapi, content_type="application/json")
            if matched.allowed:
                raise problems.method_not_allowed(request.method, matched.allowed)
            raise problems.not_found(request.rel_url.path)
        assert self._upstream is not None, "start() first"
        route = matched.route
        rpc = self._upstream.rpcs[route.rpc.name]
        try:
            if self._tenants is not None:
                authenticate(self._tenants, request.headers.get("Authorization", ""))
            if route.rpc.client_streaming:
                return await self._upload(request, route, rpc)
            body = await self._body(request) if route.body else None
            message = request_message(
                route, rpc.request_class, matched.path_params, request.rel_url.query.items(), body
            )
            apply_idempotency_key(message, request.headers.get(IDEMPOTENCY_HEADER))
            if route.rpc.server_streaming:
                return await self._stream(request, rpc, message)
            timeout = deadline(request.headers, self.settings.request_timeout_seconds)
            response = await rpc.call(message, metadata=forwarded_metadata(request.headers), timeout=timeout)
        except GatewayError as error:
            raise problems.from_gateway_error(error) from None
        except grpc.aio.AioRpcError as error:
            raise problems.from_rpc_error(error) from None
        return _json(to_json(response))

    async def _body(self, request: web.Request) -> bytes:
        """The whole body, refused with 413 past the limit (before reading it, when its length is known).

        Read within the request's deadline: aiohttp itself would wait for a stalled body forever.
        """
        if request.content_length is not None and request.content_length > self._max_body:
            raise problems.too_large(self._max_body)
        data = bytearray()
        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                async for chunk in request.content.iter_any():
                    data += chunk
                    if len(data) > self._max_body:
                        raise problems.too_large(self._max_body)
        except TimeoutError:
            raise problems.body_timeout(self.settings.request_timeout_seconds) from None
        return bytes(data)

    async def _upload(self, request: web.Request, route: Route, rpc: Rpc) -> web.StreamResponse:
        try:
            async with asyncio.timeout(self.settings.request_timeout_seconds):  # the form fields
                upload = await read_upload(request, route, rpc.request_class)
        except TimeoutError:
            raise problems.body_timeout(self.settings.request_timeout_seconds) from None
        timeout = deadline(request.headers, self.settings.stream_timeout_seconds)
        response = await rpc.call(
            upload.requests(), metadata=forwarded_metadata(request.headers), timeout=timeout
        )
        return _json(to_json(response))

    async def _stream(self, request: web.Request, rpc: Rpc, message: Any) -> web.StreamResponse:
        """A server stream as newline-delimited JSON, one ``{"result": ...}`` per message.

        The first message is awaited before the headers go out, so a call refused at once (not
        found, unauthenticated) is an HTTP error like any other; a failure later in the stream is a
        last ``{"error": Status}`` line, as grpc-gateway writes it.
        """
        timeout = deadline(request.headers, self.settings.stream_timeout_seconds)
        call = rpc.call(message, metadata=forwarded_metadata(request.headers), timeout=timeout)
        try:
            item = await call.read()
            response = web.StreamResponse(headers={"Content-Type": NDJSON})
            await response.prepare(request)
            try:
                while item is not grpc.aio.EOF:
                    await response.write(_line({"result": to_json(item)}))
                    item = await call.read()
            except grpc.aio.AioRpcError as error:
                await response.write(
                    _line({"error": problems.status_json(problems.from_rpc_error(error).status)})
                )
            await response.write_eof()
        except ConnectionResetError:
            log.info("the caller closed the stream", extra={"rpc": rpc.descriptor.full_name})
        finally:
            call.cancel()  # the caller went away, or the stream ended: nothing left to wait for
        return response


def _problem(problem: HttpProblem) -> web.Response:
    return web.Response(
        status=problem.http, body=problems.body_of(problem), headers=problems.response_headers(problem)
    )


def _json(value: Mapping[str, Any]) -> web.Response:
    return web.Response(body=_line(value), content_type="application/json")


def _line(value: Mapping[str, Any]) -> bytes:
    """JSON ending in a newline, so a shell prompt or the next curl's answer starts on its own line."""
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


def _listen(listen: str, *, reuse_port: bool = False) -> socket.socket:
    """Binds now, as the gRPC port is bound when the server is built: a taken port stops start-up
    with one line (``cannot listen on ...``), before anything has started. ``reuse_port``: the
    sibling processes of ``serve --processes N`` share the port (SO_REUSEPORT), as their gRPC one.
    """
    host, port = parse_listen(listen, allow_port_zero=True)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(f"cannot listen on {listen} (http): {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {listen} (http): {exc.strerror or exc}") from None
    return sock


def _ssl(tls: TlsSettings | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        context.load_verify_locations(tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
