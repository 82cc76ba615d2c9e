"""The plumbing for interceptors that wrap a call: each subclass implements only ``around``.

grpc.aio interceptors receive a method handler, not the call; to run code around the call we
rebuild the handler with a wrapped behaviour, for every RPC shape. Streaming-request RPCs are
wrapped too (the request is the iterator). A streaming response (WatchMessage) is wrapped as a
call that writes each message with ``context.write``, so authentication, tracing, the access log
and error mapping cover the whole stream, not just its start.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Invoke = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class HandlerWrapper(grpc.aio.ServerInterceptor):
    #: Methods left alone (health checks and reflection must work without auth or noise).
    skip_prefixes: tuple[str, ...] = ("/grpc.health.", "/grpc.reflection.")

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def around(
        self, invoke: Invoke, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached  # a method's handler never changes: wrap it once, not on every call
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self.skip_prefixes):
            return handler
        if handler.unary_unary is not None:
            inner, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        elif handler.stream_unary is not None:
            inner, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif handler.unary_stream is not None:
            inner, factory = _writing(handler.unary_stream), grpc.unary_stream_rpc_method_handler
        else:
            return handler

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await self.around(inner, request, context, method)
            except grpc.aio.AbortError as abort:
                # grpc keeps the AbortError in the call's state; the frames its traceback passed
                # through hold the call's context, which holds that state: a cycle, with the request
                # in it, that only a full garbage collection would free. Their locals are dropped,
                # so the call's memory goes as soon as grpc lets go of it.
                traceback.clear_frames(abort.__traceback__)
                del request, context
                raise

        wrapped = factory(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = wrapped
        return wrapped


def _writing(handler: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Invoke:
    """A response-streaming handler as one awaitable call: it writes what the handler yields.

    The handler may be the servicer's async generator or an already wrapped one (a coroutine).
    """

    async def invoke(request: Any, context: grpc.aio.ServicerContext) -> None:
        produced = handler(request, context)
        if hasattr(produced, "__aiter__"):
            async for message in produced:
                await context.write(message)
        else:
            await produced

    return invoke
