"""Sends through gRPC: the gateway scenario, and floor A (the same stub against the echo server).

One grpc.aio channel (HTTP/2 multiplexes the concurrent calls, as a real client service would),
the API key as metadata, and the prepared SendRequests alternated: DingTalk robot, WeCom app.
The queued scenario's accept phase is the same driver with queued Sends (an ACCEPTED answer).
"""

from __future__ import annotations

import grpc

from bench.messages import send_requests
from bench.phases import measure_async
from bench.spec import LoadResult, LoadSpec
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc

DEADLINE_SECONDS = 10.0


async def drive(spec: LoadSpec) -> LoadResult:
    requests = send_requests(*spec.accounts, queued=spec.queued)
    metadata = (("authorization", f"Bearer {spec.api_key}"),)
    async with grpc.aio.insecure_channel(spec.grpc_target) as channel:
        stub = pb_grpc.NotificationServiceStub(channel)

        async def send(i: int) -> str | None:
            try:
                await stub.Send(requests[i % len(requests)], metadata=metadata, timeout=DEADLINE_SECONDS)
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return None

        return await measure_async(spec, send)
