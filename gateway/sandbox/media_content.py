"""The bytes of uploaded media, kept so the inbox page can show images and offer files.

A vendor keeps what was uploaded; the sandbox's `MediaRecord` keeps only facts (tests compare
sha256), so the bytes live here, by sha256, within a byte budget: the oldest content is
forgotten first, so a sandbox that receives uploads for days stays within its memory.
Forgotten content only means the page shows a placeholder; the media_id itself stays valid.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

DEFAULT_BUDGET: Final = 64 * 1024 * 1024
"""Bytes kept at most: a few dozen images and files of the sizes the vendors take."""


class MediaContent:
    """Uploaded bytes by sha256, least recently kept or read first out when over `budget`."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        if budget < 0:
            raise ValueError("the budget must be >= 0 bytes")
        self.budget = budget
        self._content: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def keep(self, sha256: str, data: bytes) -> None:
        """Keep `data` (whose digest is `sha256`); content larger than the budget is not kept."""
        if len(data) > self.budget:
            return
        old = self._content.pop(sha256, None)
        if old is not None:
            self._size -= len(old)
        self._content[sha256] = data
        self._size += len(data)
        while self._size > self.budget:
            _, dropped = self._content.popitem(last=False)
            self._size -= len(dropped)

    def get(self, sha256: str) -> bytes | None:
        """The bytes with that digest, if still kept."""
        data = self._content.get(sha256)
        if data is not None:
            self._content.move_to_end(sha256)
        return data

    @property
    def size(self) -> int:
        """Bytes kept now."""
        return self._size
