"""Gives the memory uploads freed back to the operating system (glibc; elsewhere a no-op).

An upload moves megabytes through gRPC's buffers in many small allocations. glibc's malloc keeps
freed memory in its arenas and returns only the top of each heap, so after a burst of uploads the
gateway's resident size stays near its peak although almost nothing is in use (seen: 250 MB free
in the arenas, 14 MB used). ``malloc_trim(0)`` returns the free pages. It runs in a thread, at
most once a second, for a few seconds after an upload ends: gRPC frees a call's buffers only once
the client has let go of the stream, which may be a moment after the handler returned.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger("gateway.memory")

INTERVAL = 1.0  # seconds between trims
TRAILING = 5.0  # keep trimming this long after the last upload ended


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): their allocators return memory their own way
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryTrimmer:
    def __init__(self, trim: Callable[[int], int] | None = None) -> None:
        self._trim = trim if trim is not None else _malloc_trim()
        self._scheduled = False
        self._last_upload = 0.0

    def upload_ended(self) -> None:
        """Trims within a second, then once a second until ``TRAILING`` seconds pass without uploads."""
        self._last_upload = time.monotonic()
        if self._trim is not None and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(INTERVAL / 4, self._run)

    def _run(self) -> None:
        trim = self._trim
        assert trim is not None
        try:
            done = asyncio.get_running_loop().run_in_executor(None, trim, 0)
        except RuntimeError:  # the loop is shutting down its executor: nothing left to trim for
            self._scheduled = False
            return
        done.add_done_callback(self._ran)

    def _ran(self, done: asyncio.Future[int]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.warning("malloc_trim failed", extra={"error": str(done.exception())})
        if time.monotonic() - self._last_upload < TRAILING:
            asyncio.get_running_loop().call_later(INTERVAL, self._run)
        else:
            self._scheduled = False
