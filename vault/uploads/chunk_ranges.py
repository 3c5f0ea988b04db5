"""Chunk planning (pure): how a file of ``size`` bytes is cut into numbered byte ranges."""

from __future__ import annotations

import msgspec

from vault.config import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

__all__ = ["MAX_CHUNK_SIZE", "MIN_CHUNK_SIZE", "ChunkRange", "chunk_range", "total_chunks"]


class ChunkRange(msgspec.Struct, frozen=True):
    index: int
    start: int
    end: int  # inclusive, as the spec shows

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def total_chunks(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def chunk_range(size: int, chunk_size: int, index: int) -> ChunkRange:
    """The byte range of chunk ``index``; ``IndexError`` when out of range."""
    if not 0 <= index < total_chunks(size, chunk_size):
        raise IndexError(index)
    start = index * chunk_size
    return ChunkRange(index, start, min(size, start + chunk_size) - 1)
