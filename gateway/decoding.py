"""Request deserializers that never raise: bytes that do not decode become a marker to refuse.

grpc.aio answers a deserializer's exception by itself, with UNKNOWN "Unexpected <class
'DecodeError'>" (INTERNAL for a stream), before any interceptor runs: the caller is told nothing it
can fix, authentication is skipped and the access log never hears of the call. Returning an
``Undecodable`` marker instead lets the call go through the interceptors like any other; the
handler (gateway.handlers) then refuses it with INVALID_ARGUMENT on the field ``request``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from gateway.errors import InvalidArgument, Violation

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Bytes that are not a valid ``type_name``; ``reason`` is the parser's account of why."""

    type_name: str
    reason: str

    def error(self, position: int | None = None) -> InvalidArgument:
        """The refusal; ``position`` counts the messages of a request stream from 1."""
        where = "" if position is None else f"message {position} of the stream "
        return InvalidArgument(
            [Violation("request", f"{where}is not a valid {self.type_name}: {self.reason}")]
        )


def lenient_deserializer(message_class: type[M]) -> Callable[[bytes], M | Undecodable]:
    """``message_class.FromString`` that returns an ``Undecodable`` where it would raise."""
    type_name = message_class.DESCRIPTOR.full_name
    # The parser's message repeats the type name, which the violation already gives.
    prefix = f"Error parsing message with type '{type_name}': "

    def deserialize(data: bytes) -> M | Undecodable:
        try:
            return message_class.FromString(data)
        except Exception as error:  # DecodeError in practice; any failure here means "does not decode"
            return Undecodable(type_name, str(error).removeprefix(prefix) or "the bytes do not decode")

    return deserialize


def decoded(request: M | Undecodable) -> M:
    """The request, or INVALID_ARGUMENT if it did not decode."""
    if isinstance(request, Undecodable):
        raise request.error()
    return request


async def decoded_stream(requests: AsyncIterator[M | Undecodable]) -> AsyncIterator[M]:
    """The request stream, ending in INVALID_ARGUMENT at the first message that did not decode.

    The messages before it are handed on as they come, so a handler has already checked (and may
    have refused) what they said by the time the bad one is reached.
    """
    position = 0
    async for request in requests:
        position += 1
        if isinstance(request, Undecodable):
            raise request.error(position)
        yield request
