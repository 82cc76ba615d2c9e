"""Floor A: a bare grpc.aio server, `python -m bench.echo_server`; prints `READY <port>`.

It serves `notify.v1.NotificationService/Send` with no interceptors, no health or reflection,
and answers every request with one fixed SendResponse. The load generator sends it the same
SendRequest bytes it sends the gateway, so what this process spends per call is the least any
Python grpc.aio server spends to receive, parse, answer and frame one Send.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc

from bench.messages import echo_response
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc


class EchoService(pb_grpc.NotificationServiceServicer):
    """Answers every Send with the same response object: nothing built per call."""

    def __init__(self) -> None:
        self._response = echo_response()

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        return self._response

    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext) -> pb.RecallResponse:
        raise NotImplementedError("floor A serves Send only")

    async def UploadMedia(
        self, request_iterator: AsyncIterator[pb.UploadMediaRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadMediaResponse:
        raise NotImplementedError("floor A serves Send only")


async def serve() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_NotificationServiceServicer_to_server(EchoService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=0)


def main() -> int:
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
