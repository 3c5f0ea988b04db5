"""Accepting upload pieces: one way for chunk PUTs and tus PATCHes alike.

A piece is stored (verified while it streams), then referenced by the upload in a metadata write.
Content the store already held (deduplicated) is the one risky case: the node's collector may
have judged that chunk garbage just before the reference landed. So the reference is taken under
the shared side of the ``RefGuard`` and, when any piece was deduplicated, the pieces are checked
to be still stored before the guard is let go; if one is gone the reference is taken back and the
client is told to send that piece again (``ContentReclaimed``: 503 with Retry-After, the same
answer for both protocols).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Sequence
from typing import TypeVar

from vault import errors
from vault.chunks import ChunkStore
from vault.chunks.ids import ChunkId
from vault.chunks.refguard import RefGuard
from vault.chunks.store import PutResult
from vault.meta import MetaStore, Txn
from vault.offload import Hasher

T = TypeVar("T")


class PieceIntake:
    def __init__(self, meta: MetaStore, chunks: ChunkStore, ref_guard: RefGuard) -> None:
        self.meta = meta
        self.chunks = chunks
        self.ref_guard = ref_guard

    async def store(
        self,
        stream: AsyncIterable[bytes],
        *,
        max_size: int,
        expected_id: ChunkId | None = None,
        expected_size: int | None = None,
        also: Sequence[Hasher] = (),
    ) -> PutResult:
        """Store one piece, verified; ``ChunkTooLarge``/``ChunkMismatch`` as ``ChunkStore.put``."""
        return await self.chunks.put(
            stream, expected_id=expected_id, expected_size=expected_size, max_size=max_size, also=also
        )

    async def reference(
        self, pieces: Sequence[PutResult], record: Callable[[Txn], T], undo: Callable[[Txn], None]
    ) -> T:
        """Run ``record`` (which takes the upload's references on ``pieces``); if the collector
        took a deduplicated piece meanwhile, run ``undo`` and raise ``ContentReclaimed``."""
        async with self.ref_guard.taking():
            value = await self.meta.write(record)
            if any(piece.existed for piece in pieces):
                wanted = {piece.chunk_id for piece in pieces}
                if len(await self.chunks.has_many(wanted)) < len(wanted):
                    await self.meta.write(undo)
                    raise errors.ContentReclaimed()
        return value
