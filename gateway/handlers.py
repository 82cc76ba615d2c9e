"""Registers a servicer's RPCs from the service descriptor, with deserializers that never raise.

It does what the generated ``add_<Service>Servicer_to_server`` does, except for three things: each
request deserializer returns a marker for bytes that do not decode (gateway.decoding), each
handler refuses that marker with INVALID_ARGUMENT, and the methods are served by a generic handler
only, not registered (``add_service`` says why). The refusal is raised inside the handler, so the
interceptors see it like any other error: authentication still comes first, the error interceptor
maps it and the access log records it. Everything is read from the descriptor, so an RPC added to
the proto needs no code here.

A handler that reads its stream with ``context.read()`` instead of the iterator it is given would
see the marker itself; the gateway's servicer does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from gateway.decoding import decoded, decoded_stream, lenient_deserializer

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


def add_service(server: grpc.aio.Server, servicer: object, service: ServiceDescriptor) -> None:
    """Serves every RPC of ``service`` by the servicer's method of the same name, generically.

    Not also as registered methods, as generated code does: grpc.aio's server (1.85) keeps one
    pending call request per registered method and waits on all of them (``asyncio.wait``) for
    every call it accepts. With this service, health and reflection registered, that was a wait
    over 11 requests per call, ~5k instructions per request waited on: 2-3% of a Send (README,
    "What a Send costs"). A generic handler serves the same methods.
    """
    handlers = {method.name: _handler(getattr(servicer, method.name), method) for method in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


class GenericOnly:
    """The server as generated ``add_<Service>Servicer_to_server`` code sees it: its handlers are
    served generically and never registered as methods, for the reason ``add_service`` gives."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        """Dropped: the same handlers came through ``add_generic_rpc_handlers`` just before."""


def _handler(behaviour: Behaviour, method: MethodDescriptor) -> grpc.RpcMethodHandler:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    codec = {
        "request_deserializer": lenient_deserializer(request_class),
        "response_serializer": response_class.SerializeToString,
    }
    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(_stream_stream(behaviour), **codec)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(_stream_unary(behaviour), **codec)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(_unary_stream(behaviour), **codec)
    return grpc.unary_unary_rpc_method_handler(_unary_unary(behaviour), **codec)


def _unary_unary(behaviour: Behaviour) -> Behaviour:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(decoded(request), context)

    return handle


def _stream_unary(behaviour: Behaviour) -> Behaviour:
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(decoded_stream(_read(context)), context)

    return handle


def _unary_stream(behaviour: Behaviour) -> Behaviour:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in _responses(behaviour(decoded(request), context)):
            yield response

    return handle


def _stream_stream(behaviour: Behaviour) -> Behaviour:
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in _responses(behaviour(decoded_stream(_read(context)), context)):
            yield response

    return handle


async def _read(context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """The request stream, read with ``context.read()`` rather than the iterator grpc hands over:
    that iterator and the generator it keeps refer to each other, so each call's state, with its
    buffers, would stay in memory until a full garbage collection (issue 12, refused uploads)."""
    while (request := await context.read()) is not grpc.aio.EOF:
        yield request


async def _responses(produced: Any) -> AsyncIterator[Any]:
    """What a response-streaming method produced: an async generator, or a coroutine that writes."""
    if hasattr(produced, "__aiter__"):
        async for response in produced:
            yield response
    else:
        await produced
