"""BLAKE3 checksums of local files, as the node writes them (``blake3:<hex>``), in worker threads
(hashing a large photo library must not stall the event loop)."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import trio

# As many hashing threads as cores: BLAKE3 releases the GIL, the disk is the other limit.
HASHING = trio.CapacityLimiter(max(1, os.cpu_count() or 1))
_BLOCK = 4 * 1024 * 1024


def checksum_of_bytes(data: bytes | memoryview) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def checksum_of_file_blocking(path: str | Path) -> str:
    hasher = blake3.blake3()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
    return "blake3:" + hasher.hexdigest()


async def checksum_of_file(path: str | Path) -> str:
    return await trio.to_thread.run_sync(checksum_of_file_blocking, path, limiter=HASHING)


def read_range_blocking(path: str | Path, start: int, length: int) -> tuple[bytes, str]:
    """``length`` bytes at ``start`` and their checksum (for ``X-Chunk-Checksum``)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(length)
    return data, checksum_of_bytes(data)
