"""A spool gives back exactly what was written, wherever the bytes ended up (memory or file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.spool import Spool

WRITES = [b"a" * 10, b"b" * 5000, b"c", b"d" * 70000, b"e" * 3, b"f" * 200000]
WHOLE = b"".join(WRITES)


async def read_all(spool: Spool, block: int) -> bytes:
    out = bytearray()
    while len(out) < spool.size:
        out += await spool.read_at(len(out), block)
    return bytes(out)


@pytest.mark.parametrize("memory_bytes", [0, 4096, 65536, len(WHOLE)], ids=lambda m: f"memory-{m}")
async def test_what_is_written_reads_back_whole_with_its_size_and_sha256(
    memory_bytes: int, tmp_path: Path
) -> None:
    spool = Spool(memory_bytes, tmp_path)
    try:
        for data in WRITES:
            await spool.write(data)

        assert spool.size == len(WHOLE)
        assert spool.sha256 == hashlib.sha256(WHOLE).hexdigest()
        assert await read_all(spool, 65536) == WHOLE
        assert await read_all(spool, 4093) == WHOLE  # blocks that straddle the memory/file seam
        assert await spool.read_at(5005, 10) == WHOLE[5005:5015]
    finally:
        spool.close()


async def test_a_closed_spool_holds_nothing_and_refuses_to_be_read(tmp_path: Path) -> None:
    spool = Spool(16, tmp_path)
    await spool.write(b"x" * 100)

    spool.close()
    spool.close()  # twice is harmless: every path that ends an upload closes it

    with pytest.raises(ValueError, match="closed"):
        await spool.read_at(0, 10)
    with pytest.raises(ValueError, match="closed"):
        await spool.write(b"more")
