"""Floor A: a bare grpc.aio server, `python -m bench.echo_server [REDIS_URL]`; prints `READY <port>`.

It serves `notify.v1.NotificationService/Send` with no interceptors, no health or reflection,
and answers every request with one fixed SendResponse, on the gateway's event loop (uvloop where
installed). The load generator sends it the same SendRequest bytes it sends the gateway, so what
this process spends per call is the least any Python grpc.aio server spends to receive, parse,
answer and frame one Send.

With a Redis URL it makes one Redis round trip per Send before answering (a SET through
redis-py's asyncio client, hiredis when installed, as the gateway's): "floor A + one Redis round
trip", the yardstick of issue 15's target for accepting a queued Send (at most 1.2x floor A plus
one round trip), whose round trip the bench otherwise could not price.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc
import redis.asyncio

from bench.messages import echo_response
from gateway.event_loop import loop_factory, resolve
from gateway.handlers import GenericOnly
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc

ROUND_TRIP_KEY = "notify-bench:echo-round-trip"


class EchoService(pb_grpc.NotificationServiceServicer):
    """Answers every Send with the same response object: nothing built per call."""

    def __init__(self, store: redis.asyncio.Redis | None = None) -> None:
        self._response = echo_response()
        self._store = store

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        if self._store is not None:
            await self._store.set(ROUND_TRIP_KEY, b"1")
        return self._response

    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext) -> pb.RecallResponse:
        raise NotImplementedError("floor A serves Send only")

    async def UploadMedia(
        self, request_iterator: AsyncIterator[pb.UploadMediaRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadMediaResponse:
        raise NotImplementedError("floor A serves Send only")

    async def GetMessage(
        self, request: pb.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMessageResponse:
        raise NotImplementedError("floor A serves Send only")

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMessagesResponse:
        raise NotImplementedError("floor A serves Send only")

    async def WatchMessage(
        self, request: pb.WatchMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchMessageResponse]:
        raise NotImplementedError("floor A serves Send only")
        yield  # a server-streaming method is an async generator


async def serve(redis_url: str | None) -> None:
    store = redis.asyncio.Redis.from_url(redis_url) if redis_url else None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    # Generic handlers, as the gateway's: registered methods cost every call a wait on one pending
    # request per method (gateway.handlers.add_service), which a floor should not pay.
    pb_grpc.add_NotificationServiceServicer_to_server(EchoService(store), GenericOnly(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=0)
    if store is not None:
        await store.aclose()


def main() -> int:
    # The gateway's event loop (uvloop where installed), so the floor is what the gateway could
    # cost at least on the loop it runs on: asyncio's own loop costs ~15% more per call.
    with asyncio.Runner(loop_factory=loop_factory(resolve("auto"))) as runner:
        runner.run(serve(sys.argv[1] if len(sys.argv) > 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
