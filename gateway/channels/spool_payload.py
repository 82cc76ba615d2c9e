"""A spooled upload as an aiohttp request body part, streamed in blocks instead of loaded whole.

A new payload is made for every attempt and reads from the start, so a retry sends the whole file;
it never closes the spool, which belongs to the upload. Its size is known, so the multipart body
has a Content-Length, as vendors' upload endpoints expect.
"""

from __future__ import annotations

from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from gateway.spool import Spool

BLOCK = 64 * 1024


class SpoolPayload(Payload):
    _value: Spool
    _autoclose = True  # nothing for aiohttp to close: the upload closes the spool

    def __init__(self, spool: Spool, *, content_type: str, **kwargs: Any) -> None:
        super().__init__(spool, content_type=content_type, **kwargs)
        self._size = self._length = spool.size

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        end = self._length if content_length is None else min(self._length, content_length)
        offset = 0
        while offset < end:
            block = await self._value.read_at(offset, min(BLOCK, end - offset))
            if not block:
                raise ValueError(f"the spool ended at {offset} of {end} bytes")
            await writer.write(block)
            offset += len(block)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Never the bytes of a file as text (only debugging reprs call this)."""
        return f"<{self._length} bytes spooled>"
