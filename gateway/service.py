"""The servicer: maps each RPC onto its chain and nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from gateway.chain.chains import Chains
from gateway.chain.context import CallContext
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc


class NotificationService(pb_grpc.NotificationServiceServicer):
    def __init__(self, chains: Chains) -> None:
        self._chains = chains

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        return await self._chains.send(CallContext.with_timeout("send", request, context.time_remaining()))

    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext) -> pb.RecallResponse:
        return await self._chains.recall(
            CallContext.with_timeout("recall", request, context.time_remaining())
        )

    async def UploadMedia(
        self, request_iterator: AsyncIterator[pb.UploadMediaRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadMediaResponse:
        ctx = CallContext.with_timeout("upload", request_iterator, context.time_remaining())
        return await self._chains.upload(ctx)
