"""The servicer: maps each RPC onto its chain and nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from gateway.chain.chains import Chains
from gateway.chain.context import CallContext, RequestT
from gateway.tenants import current_tenant
from generated.notify.v1 import notification_service_pb2 as pb
from generated.notify.v1 import notification_service_pb2_grpc as pb_grpc


class NotificationService(pb_grpc.NotificationServiceServicer):
    def __init__(self, chains: Chains) -> None:
        self._chains = chains

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        return await self._chains.send(_context("send", request, context))

    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext) -> pb.RecallResponse:
        return await self._chains.recall(_context("recall", request, context))

    async def UploadMedia(
        self, request_iterator: AsyncIterator[pb.UploadMediaRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadMediaResponse:
        return await self._chains.upload(_context("upload", request_iterator, context))

    async def GetMessage(
        self, request: pb.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMessageResponse:
        return await self._chains.get(_context("get", request, context))

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMessagesResponse:
        return await self._chains.list(_context("list", request, context))

    async def WatchMessage(
        self, request: pb.WatchMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchMessageResponse]:
        changes = await self._chains.watch(_context("watch", request, context))
        async for change in changes:
            yield change


def _context(operation: str, request: RequestT, context: grpc.aio.ServicerContext) -> CallContext[RequestT]:
    """The chain's context: the caller's deadline, and the tenant authentication found."""
    ctx = CallContext.with_timeout(operation, request, context.time_remaining())
    tenant = current_tenant.get()
    if tenant is not None:
        ctx.tenant = tenant.name
        ctx.annotate("notify.tenant", tenant.name)
    return ctx
