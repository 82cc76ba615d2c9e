"""An HTTP upload as UploadMedia's stream: ``info`` first, then the body in chunks, never all in memory.

Two shapes, both ``POST /v1/media:upload`` (``body: "chunk"`` in the proto): the raw file as the
body with ``info.*`` as query parameters, or a multipart form whose fields are the same ``info.*``
names and whose file is the part ``chunk``, after the fields (as ``curl -F`` sends them in order).
The limits (vendor sizes, formats, idle and total time) are the gRPC ones: the stream is checked
as it arrives, and a refusal ends the upload without reading the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from google.protobuf.message import Message

from gateway.errors import InvalidArgument, Violation
from gateway.http.routes import Route
from gateway.http.transcoding import request_message

CHUNK_BYTES = 64 * 1024  # as the clients stream: well under any gRPC message limit
_FIELD_BYTES = 4096  # a form field is a name or a number; more is not a field
#: Content types HTTP tools put on a raw body by default; they say nothing of the file.
_GENERIC_TYPES = frozenset({"application/octet-stream", "application/x-www-form-urlencoded", ""})


@dataclass
class Upload:
    """The stream's first message and where its bytes come from."""

    first: Message
    chunks: AsyncIterator[bytes]

    async def requests(self) -> AsyncIterator[Message]:
        yield self.first
        # Every upload request message has a `chunk` field; the generic Message type does not say so.
        chunk_class: Callable[..., Message] = type(self.first)
        async for chunk in self.chunks:
            yield chunk_class(chunk=chunk)


async def read_upload(request: web.Request, route: Route, message_class: type[Message]) -> Upload:
    """The upload this request carries; INVALID_ARGUMENT naming the field if its info does not fit."""
    query = list(request.rel_url.query.items())
    if request.content_type.startswith("multipart/"):
        return await _multipart(request, route, message_class, query)
    first = request_message(route, message_class, {}, query, None)
    info = first.info  # type: ignore[attr-defined]
    if not info.size and request.content_length:
        info.size = request.content_length  # a known size lets the gateway refuse before reading
    if not info.content_type and request.content_type not in _GENERIC_TYPES:
        info.content_type = request.content_type
    return Upload(first, request.content.iter_chunked(CHUNK_BYTES))


async def _multipart(
    request: web.Request, route: Route, message_class: type[Message], query: list[tuple[str, str]]
) -> Upload:
    reader = await request.multipart()
    fields: list[tuple[str, str]] = []
    while True:
        part = await reader.next()
        if part is None:
            raise InvalidArgument([Violation(route.body, "is required: the file, as the form part 'chunk'")])
        if not isinstance(part, BodyPartReader):
            raise InvalidArgument([Violation(route.body, "a nested multipart form is not a file")])
        if part.name == route.body:
            break
        fields.append((part.name or "", await _field(part)))
    first = request_message(route, message_class, {}, [*query, *fields], None)
    info = first.info  # type: ignore[attr-defined]
    if not info.filename and part.filename:
        info.filename = part.filename
    part_type = part.headers.get("Content-Type", "")
    if not info.content_type and part_type not in _GENERIC_TYPES:
        info.content_type = part_type
    return Upload(first, _part_chunks(part))


async def _field(part: BodyPartReader) -> str:
    value = bytearray()
    while chunk := await part.read_chunk(_FIELD_BYTES):
        value += chunk
        if len(value) > _FIELD_BYTES:
            raise InvalidArgument([Violation(part.name or "form", f"at most {_FIELD_BYTES} bytes")])
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidArgument([Violation(part.name or "form", "is not UTF-8 text")]) from None


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk
