"""The gateway's own gRPC server, as the HTTP face calls it: one channel, one callable per RPC.

Callables are built from the method descriptors, so they follow the proto with no stubs to keep
in step; the request and response classes come from the same descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message


@dataclass(frozen=True)
class Rpc:
    """One RPC: its descriptor, its message classes and the multicallable that invokes it."""

    descriptor: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    call: Any  # grpc.aio.{Unary,Stream}{Unary,Stream}MultiCallable, by the RPC's shape


class Upstream:
    """An insecure channel to ``target`` (the gateway's internal unix socket) and its RPCs."""

    def __init__(self, target: str, service: ServiceDescriptor, max_message_bytes: int) -> None:
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", -1),  # our own answers; the server bounds them
            ],
        )
        self.rpcs = {method.name: self._rpc(service, method) for method in service.methods}

    def _rpc(self, service: ServiceDescriptor, method: MethodDescriptor) -> Rpc:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        path = f"/{service.full_name}/{method.name}"
        codec = {
            "request_serializer": request_class.SerializeToString,
            "response_deserializer": response_class.FromString,
        }
        if method.client_streaming and method.server_streaming:
            call: Any = self._channel.stream_stream(path, **codec)
        elif method.client_streaming:
            call = self._channel.stream_unary(path, **codec)
        elif method.server_streaming:
            call = self._channel.unary_stream(path, **codec)
        else:
            call = self._channel.unary_unary(path, **codec)
        return Rpc(method, request_class, response_class, call)

    async def close(self) -> None:
        await self._channel.close()
