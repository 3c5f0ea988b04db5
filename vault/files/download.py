"""Streaming a file's content: chunk by chunk, each chunk verified as it is read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from vault.chunks import ChunkStore
from vault.chunks.ids import ChunkId
from vault.files.ranges import slices
from vault.files.records import Manifest

log = logging.getLogger(__name__)


async def stream_range(store: ChunkStore, manifest: Manifest, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``start..end`` (inclusive) of a file's content; raises ``ChunkCorrupt``/``ChunkMissing``
    from the store as soon as a chunk fails verification, which ends the response early. Each
    chunk is verified before its bytes are handed on (``ChunkStore.stream``), with bounded memory
    however slowly the client reads."""
    for position, offset, length in slices(manifest.chunks, start, end):
        chunk = manifest.chunks[position]
        async for piece in store.stream(ChunkId(chunk.chunk_id), size=chunk.size, start=offset, length=length):
            yield piece
