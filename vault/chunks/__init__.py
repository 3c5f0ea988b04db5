"""Content-addressed chunk storage: a verifying store over pluggable backends."""

from vault.chunks.backend import BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.ids import ChunkId, chunk_id_from_hex
from vault.chunks.store import (
    MAX_CHUNK_SIZE,
    ChunkCorrupt,
    ChunkMismatch,
    ChunkMissing,
    ChunkStore,
    ChunkStoreError,
    ChunkTooLarge,
)

__all__ = [
    "MAX_CHUNK_SIZE",
    "BackendStats",
    "ChunkBackend",
    "ChunkCorrupt",
    "ChunkId",
    "ChunkMismatch",
    "ChunkMissing",
    "ChunkStore",
    "ChunkStoreError",
    "ChunkTooLarge",
    "ChunkWriter",
    "chunk_id_from_hex",
]
