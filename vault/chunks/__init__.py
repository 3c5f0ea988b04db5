"""Content-addressed chunk storage: a verifying store over pluggable backends.

Plugins import from ``vault.plugin_api``, not from here; this package is the node's own.
"""

from vault.chunks.backend import (
    BackendClosed,
    BackendOptions,
    BackendStats,
    ChunkBackend,
    ChunkWriter,
    StorageRefused,
    StorageUnavailable,
)
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
    "BackendClosed",
    "BackendOptions",
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
    "StorageRefused",
    "StorageUnavailable",
    "chunk_id_from_hex",
]
