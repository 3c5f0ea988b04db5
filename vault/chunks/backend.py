"""The chunk backend interface: what a plugin in the ``vault.backends`` group implements.

Like restic's and Perkeep's backends, a backend trusts its input: hashing, size limits and
verification live once, in ``ChunkStore`` above it. A backend only has to store bytes under an id
durably and atomically, give them back, and enumerate what it holds.

Backends are async so that each can offload blocking work its own way (a thread for LMDB and
files, an async HTTP client for object storage); none may block the Trio event loop.
A backend is constructed as ``Backend(path: pathlib.Path, options: dict)`` (``path`` is
``DATA_DIR/chunks``; ``options`` is ``[storage.options]``, and unknown keys should be refused by
name) and then opened. ``vault.chunks.conformance`` is the suite every backend must pass.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable

import msgspec

from vault.chunks.ids import ChunkId


class BackendStats(msgspec.Struct, frozen=True):
    """How many chunks a backend holds and their total size in bytes."""

    chunks: int
    bytes: int


class ChunkWriter(abc.ABC):
    """A staged chunk: invisible under any id until ``commit`` returns."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data`` (the store hands over pieces of at most 4 MiB, never concurrently)."""

    @abc.abstractmethod
    async def commit(self, chunk_id: ChunkId) -> None:
        """Make the staged bytes durable and visible as ``chunk_id``; a no-op if it exists.

        Returns only once the chunk would survive a crash. Concurrent commits of one id must
        leave exactly one copy. After a failed commit nothing is visible and nothing is left.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the staged bytes; safe to call after a failed write or twice."""


class ChunkBackend(abc.ABC):
    """Stores opaque bytes under 32-byte ids. Implementations must be safe for concurrent use."""

    name: str = "abstract"

    @abc.abstractmethod
    async def open(self) -> None:
        """Open or create the storage; remove leftovers of interrupted writes.

        Leftovers may belong to another process using the same storage (``vault fsck`` beside a
        running node): remove them only when this process is the storage's sole user.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every resource once operations in progress have finished.

        Writers neither committed nor aborted are dropped as a crash would leave them; the next
        ``open`` removes what they staged. Their later ``abort`` must not fail.
        """

    @abc.abstractmethod
    async def begin_put(self) -> ChunkWriter:
        """Start staging a new chunk."""

    @abc.abstractmethod
    def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        """Stream a stored chunk's bytes; raises ``KeyError`` when it is absent."""

    @abc.abstractmethod
    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        """The subset of ``chunk_ids`` that is stored."""

    @abc.abstractmethod
    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        """Delete the given chunks durably; returns how many existed."""

    @abc.abstractmethod
    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        """Up to ``limit`` stored ids in ascending byte order, strictly greater than ``after``."""

    @abc.abstractmethod
    async def stat(self, chunk_id: ChunkId) -> int | None:
        """The stored size of a chunk, or ``None`` when it is absent."""

    @abc.abstractmethod
    async def stats(self) -> BackendStats:
        """Chunk count and total bytes (may be maintained incrementally)."""

    async def check(self) -> None:
        """Raise ``OSError`` when the storage cannot be read (used by the health check)."""
        await self.list_ids(None, 1)
