"""The ``memory`` backend: chunks in a dict, for tests and for a throwaway node.

It keeps the interface's promises the way a real backend must (visible only once committed, one
copy per id, staged writes of a "crashed" instance reclaimed at the next open), so it passes the
whole conformance suite and can stand in for a real backend in tests. Every call checkpoints,
so concurrent callers interleave as they would around real I/O.

The bytes live in a ``MemoryStorage``, which plays the part of the disk: several instances built
over one storage see the same chunks, as the conformance suite needs when it closes and reopens.
Through the ``vault.backends`` entry point each instance gets a fresh storage, so a node run on
``backend = "memory"`` starts empty and forgets everything when the process ends.
"""

from __future__ import annotations

import bisect
import errno
import itertools
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
import trio

from vault.chunks.backend import BackendClosed, BackendOptions, BackendStats, ChunkBackend, ChunkWriter, options_as
from vault.chunks.ids import ChunkId


class MemoryOptions(BackendOptions):
    """``[storage.options]`` of the memory backend."""

    # Bytes per piece ``read`` yields (smaller pieces exercise a consumer's reassembly).
    read_piece: Annotated[int, msgspec.Meta(gt=0)] = 1024 * 1024
    # Total bytes the storage may hold; a commit past it fails with ENOSPC. 0 = unlimited.
    capacity: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Let the store put without asking first (``blind_put_is_cheap``), as an object store does:
    # tests of that path without a gateway.
    blind_put: bool = False


class MemoryStorage:
    """What a disk would hold: committed chunks, sorted ids, and staged writes by token."""

    def __init__(self) -> None:
        self.chunks: dict[ChunkId, bytes] = {}
        self.ids: list[ChunkId] = []  # sorted, for list_ids
        self.bytes = 0
        self.staged: dict[int, bytearray] = {}
        self.users = 0  # open backends over this storage
        self._tokens = itertools.count()

    def new_token(self) -> int:
        return next(self._tokens)

    def add(self, chunk_id: ChunkId, data: bytes) -> None:
        self.chunks[chunk_id] = data
        bisect.insort(self.ids, chunk_id)
        self.bytes += len(data)

    def remove(self, chunk_id: ChunkId) -> bool:
        data = self.chunks.pop(chunk_id, None)
        if data is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, chunk_id)]
        self.bytes -= len(data)
        return True

    def corrupt(self, chunk_id: ChunkId) -> None:
        """Flip the middle byte of a stored chunk, keeping its length (disk rot, for tests)."""
        damaged = bytearray(self.chunks[chunk_id])
        if not damaged:
            raise ValueError("an empty chunk has no byte to damage")
        damaged[len(damaged) // 2] ^= 0xFF
        self.chunks[chunk_id] = bytes(damaged)

    def leftovers(self) -> int:
        """How many writes are staged but neither committed nor aborted."""
        return len(self.staged)


class _MemoryWriter(ChunkWriter):
    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._storage = backend.storage
        self._token = self._storage.new_token()
        self._storage.staged[self._token] = bytearray()
        self._finished = False

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self._finished:
            raise RuntimeError("write after commit or abort")
        self._backend.require_open()
        staged = self._storage.staged.get(self._token)
        if staged is None:  # reclaimed by an open after this instance closed
            raise BackendClosed("this write was dropped when the memory backend closed")
        staged += data

    async def commit(self, chunk_id: ChunkId) -> None:
        await trio.lowlevel.checkpoint()
        self._commit_now(chunk_id, keep_if_present=False)

    async def commit_if_absent(self, chunk_id: ChunkId) -> bool:
        await trio.lowlevel.checkpoint()
        return self._commit_now(chunk_id, keep_if_present=True)

    def _commit_now(self, chunk_id: ChunkId, *, keep_if_present: bool) -> bool:
        """Whether this stored the chunk; with ``keep_if_present`` a stored id leaves the write staged."""
        if self._finished:
            raise RuntimeError("commit after commit or abort")
        if keep_if_present and chunk_id in self._storage.chunks:
            self._backend.require_open()
            return False
        self._finished = True
        staged = self._storage.staged.pop(self._token, None)
        self._backend.require_open()
        if staged is None:
            raise BackendClosed("this write was dropped when the memory backend closed")
        if chunk_id in self._storage.chunks:
            return False
        capacity = self._backend.options.capacity
        if capacity and self._storage.bytes + len(staged) > capacity:
            raise OSError(errno.ENOSPC, "memory backend capacity reached")
        self._storage.add(chunk_id, bytes(staged))
        return True

    async def abort(self) -> None:
        await trio.lowlevel.checkpoint()
        self._finished = True
        # No I/O to fail, so unlike a disk backend it discards even after close.
        self._storage.staged.pop(self._token, None)


class MemoryBackend(ChunkBackend):
    """Chunks in memory; options: ``MemoryOptions``; ``storage`` shares chunks between instances."""

    name = "memory"
    Options = MemoryOptions

    def __init__(
        self,
        path: Path | None = None,
        options: MemoryOptions | Mapping[str, Any] | None = None,
        *,
        storage: MemoryStorage | None = None,
    ) -> None:
        self.path = path  # unused: nothing touches the disk
        self.options = options_as(MemoryOptions, options)
        self.storage = storage if storage is not None else MemoryStorage()
        self._open = False

    @property
    def blind_put_is_cheap(self) -> bool:
        return self.options.blind_put

    def require_open(self) -> None:
        if not self._open:
            raise BackendClosed("the memory backend is not open")

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._open:
            return
        self._open = True
        self.storage.users += 1
        if self.storage.users == 1:
            # The sole user: whatever is staged was left by instances that closed mid-write.
            self.storage.staged.clear()

    async def close(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._open:
            self._open = False
            self.storage.users -= 1

    async def begin_put(self) -> ChunkWriter:
        await trio.lowlevel.checkpoint()
        self.require_open()
        return _MemoryWriter(self)

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        await trio.lowlevel.checkpoint()
        self.require_open()
        data = self.storage.chunks.get(chunk_id)
        if data is None:
            raise KeyError(chunk_id.hex())
        # A chunk's bytes never change under its id, so this snapshot is what a reader may see
        # even if the chunk is deleted while it streams (as with an open file).
        step = self.options.read_piece
        for start in range(0, len(data), step):
            yield data[start : start + step]
            await trio.lowlevel.checkpoint()
            self.require_open()

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        await trio.lowlevel.checkpoint()
        self.require_open()
        return {c for c in chunk_ids if c in self.storage.chunks}

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        await trio.lowlevel.checkpoint()
        self.require_open()
        return sum(self.storage.remove(c) for c in dict.fromkeys(chunk_ids))

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        await trio.lowlevel.checkpoint()
        self.require_open()
        if limit <= 0:
            return []
        ids = self.storage.ids
        start = 0 if after is None else bisect.bisect_right(ids, after)
        return ids[start : start + limit]

    async def stat(self, chunk_id: ChunkId) -> int | None:
        await trio.lowlevel.checkpoint()
        self.require_open()
        data = self.storage.chunks.get(chunk_id)
        return None if data is None else len(data)

    async def stats(self) -> BackendStats:
        await trio.lowlevel.checkpoint()
        self.require_open()
        return BackendStats(chunks=len(self.storage.chunks), bytes=self.storage.bytes)
