"""Chunk ids: the 32-byte BLAKE3 digest of the content."""

from __future__ import annotations

from typing import NewType

ChunkId = NewType("ChunkId", bytes)
DIGEST_SIZE = 32


def chunk_id_from_hex(text: str) -> ChunkId:
    """Parse 64 lowercase/uppercase hex digits; ``ValueError`` otherwise."""
    raw = bytes.fromhex(text)
    if len(raw) != DIGEST_SIZE:
        raise ValueError("a chunk id is 32 bytes (64 hex digits)")
    return ChunkId(raw)
