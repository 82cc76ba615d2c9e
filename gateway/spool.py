"""The bytes of one upload with bounded memory: a small buffer in memory, the rest in a temporary file.

Uploads run to 20 MB and many stream at once, so an upload keeps at most ``memory_bytes`` in memory
and spills the rest to a temporary file. The file has no name (``tempfile.TemporaryFile``): it is
gone when its descriptor closes, even if the process is killed, so no clean-up can be missed.
Not ``tempfile.SpooledTemporaryFile``: its ``fileno()`` forces a roll-over, and the vendor call must
read the bytes from the start once per attempt while a cancelled attempt's read may still run.

The sha256 is updated as bytes arrive, so the media cache is asked without reading the file again.
Disk writes and reads run in a thread, so a slow disk never stalls the event loop; one lock orders
them with ``close``.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO


class Spool:
    def __init__(self, memory_bytes: int, directory: Path | None = None) -> None:
        self._memory_bytes = memory_bytes
        self._directory = directory
        self._buffer = bytearray()
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()  # of the bytes written to the file; the buffer is added on demand
        self._lock = threading.Lock()
        self._closed = False
        self.size = 0

    @property
    def sha256(self) -> str:
        """The hex sha256 of everything written so far."""
        digest = self._hash.copy()
        digest.update(self._buffer)
        return digest.hexdigest()

    async def write(self, data: bytes) -> None:
        """Appends ``data``; once the buffer would pass ``memory_bytes``, it and ``data`` go to disk."""
        if self._closed:
            raise ValueError("write to a closed spool")
        self.size += len(data)
        if len(self._buffer) + len(data) <= self._memory_bytes:
            self._buffer += data  # small chunks gather here, so the file is written in large blocks
            return
        buffered, self._buffer = self._buffer, bytearray()
        await asyncio.to_thread(self._spill, buffered, data)

    def _spill(self, *blocks: bytes | bytearray) -> None:
        with self._lock:
            if self._closed:
                return  # the upload ended while this write waited for a thread
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115 (closed by close())
            for block in blocks:
                self._hash.update(block)
                self._file.write(block)

    async def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``: each reader keeps its own position."""
        if self._closed:
            raise ValueError("read from a closed spool")
        on_disk = self.size - len(self._buffer)  # the file holds the head, the buffer the tail
        if offset < on_disk:
            return await asyncio.to_thread(self._read_file, offset, min(length, on_disk - offset))
        start = offset - on_disk
        return bytes(self._buffer[start : start + length])

    def _read_file(self, offset: int, length: int) -> bytes:
        with self._lock:
            if self._closed or self._file is None:
                raise ValueError("read from a closed spool")
            self._file.flush()
            self._file.seek(offset)
            return self._file.read(length)

    def close(self) -> None:
        """Frees the buffer and removes the file; safe to call twice, and while a thread still reads."""
        with self._lock:
            self._closed = True
            self._buffer = bytearray()
            if self._file is not None:
                self._file.close()
