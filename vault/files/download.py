"""Streaming a file's content: chunk by chunk, each chunk verified as it is read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from vault.chunks import ChunkStore
from vault.chunks.ids import ChunkId
from vault.chunks.store import VERIFY_WHOLE_LIMIT
from vault.files.ranges import slices
from vault.files.records import Manifest

log = logging.getLogger(__name__)


async def stream_range(store: ChunkStore, manifest: Manifest, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``start..end`` (inclusive) of a file's content; raises ``ChunkCorrupt``/``ChunkMissing``
    from the store as soon as a chunk fails verification, which ends the response early."""
    for position, offset, length in slices(manifest.chunks, start, end):
        chunk = manifest.chunks[position]
        if chunk.size > VERIFY_WHOLE_LIMIT and offset + length < chunk.size:
            # A large chunk is verified as its last piece is read; a range that stops before
            # that point would never reach the check, so verify the whole chunk first.
            await store.verify(ChunkId(chunk.chunk_id))
        skip, remaining = offset, length
        async for piece in await store.get(ChunkId(chunk.chunk_id), expected_size=chunk.size):
            if skip >= len(piece):
                skip -= len(piece)
                continue
            part = piece[skip : skip + remaining] if (skip or remaining < len(piece)) else piece
            skip = 0
            remaining -= len(part)
            if part:
                yield part
            if remaining <= 0:
                break
