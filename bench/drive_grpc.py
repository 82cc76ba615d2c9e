"""Sends through gRPC: the gateway scenarios, and floor A (the same stub against the echo server).

grpc.aio channels (HTTP/2 multiplexes the concurrent calls, as a real client service would),
the API key as metadata, and the prepared SendRequests alternated: DingTalk robot, WeCom app.
The queued scenario's accept phase is the same driver with queued Sends (an ACCEPTED answer).

`idempotency_keys`: every Send carries a key of its own (unique across load processes and
rounds), so the gateway claims it in Redis on every Send, as it does for a client that retries
safely. Copying the request to set the key is the load process's cost, not the gateway's.

`channels` > 1: that many connections, the Sends spread over them in turn. One channel is one
TCP connection, and with `serve --processes N` (SO_REUSEPORT) the kernel hands each connection
to one process, so a single channel would load one process only. Each channel has its own
subchannel pool: gRPC would otherwise share one connection between channels to the same target.
"""

from __future__ import annotations

import secrets

import grpc

from bench.messages import send_requests
from bench.phases import measure_async
from bench.spec import LoadResult, LoadSpec
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc

DEADLINE_SECONDS = 10.0


async def drive(spec: LoadSpec) -> LoadResult:
    requests = send_requests(*spec.accounts, queued=spec.queued)
    metadata = (("authorization", f"Bearer {spec.api_key}"),)
    prefix = f"bench-{secrets.token_hex(6)}-"
    options = [("grpc.use_local_subchannel_pool", 1)] if spec.channels > 1 else []
    channels = [grpc.aio.insecure_channel(spec.grpc_target, options=options) for _ in range(spec.channels)]
    stubs = [pb_grpc.NotificationServiceStub(channel) for channel in channels]
    try:
        for channel in channels:  # connect them all before the clock starts
            await channel.channel_ready()

        async def send(i: int) -> str | None:
            request = requests[i % len(requests)]
            if spec.idempotency_keys:
                keyed = pb.SendRequest()
                keyed.CopyFrom(request)
                keyed.idempotency_key = f"{prefix}{i}"
                request = keyed
            try:
                await stubs[i % len(stubs)].Send(request, metadata=metadata, timeout=DEADLINE_SECONDS)
            except grpc.aio.AioRpcError as error:
                return f"{error.code().name}: {error.details()}"
            return None

        return await measure_async(spec, send)
    finally:
        for channel in channels:
            await channel.close()
