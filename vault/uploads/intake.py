"""Accepting upload pieces: one way for chunk PUTs, tus PATCHes and one-request uploads alike.

A piece is stored (verified while it streams), then referenced by the upload in a metadata write.
Content the store already held (deduplicated) is the one risky case: the node's collector may
have judged that chunk garbage just before the reference landed. So the reference is taken under
the shared side of the ``RefGuard`` and, when any piece was deduplicated, the pieces are checked
to be still stored before the guard is let go; if one is gone the reference is taken back and the
client is told to send that piece again (``ContentReclaimed``: 503 with Retry-After, the same
answer for both protocols).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from vault import errors
from vault.chunks import ChunkStore
from vault.chunks.ids import ChunkId
from vault.chunks.refguard import RefGuard
from vault.chunks.store import PutResult
from vault.meta import MetaStore, Txn
from vault.offload import Hasher, Offload

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

    async def write_after_check(
        self, pieces: Sequence[PutResult], write: Callable[[], Awaitable[T]], *, check_all: bool = False
    ) -> T:
        """Run ``write`` (a transaction that takes the references on ``pieces`` and may do more:
        a one-request upload creates its file in it) once the pieces are known to be still
        stored, all under the guard; ``ContentReclaimed`` with nothing written when the collector
        took one. Checked before the write rather than after, as ``reference`` does, because what
        ``write`` makes (a file, its journal entry) is not something to take back. ``check_all``:
        check fresh pieces too (stored long before ``write``, they may have outlived the
        collector's grace period)."""
        async with self.ref_guard.taking():
            if check_all or any(piece.existed for piece in pieces):
                wanted = {piece.chunk_id for piece in pieces}
                if wanted and len(await self.chunks.has_many(wanted)) < len(wanted):
                    raise errors.ContentReclaimed()
            return await write()


class BodyPieces:
    """Cuts a request body into pieces of at most ``size`` bytes each (``piece(size)``), each one
    stored as a chunk. Past ``limit`` bytes in all it is ``PAYLOAD_TOO_LARGE`` (``too_long``).
    ``hashers`` are fed the whole body (a tus PATCH's ``Upload-Checksum``, a one-request upload's
    file checksum) and ``at_end`` runs once the body ended, while the last piece is still being
    stored: raising there keeps that piece from being committed."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        limit: int,
        offload: Offload,
        *,
        hashers: Sequence[Hasher] = (),
        at_end: Callable[[], None] | None = None,
        too_long: str = "the body is longer than its declared length",
    ) -> None:
        self._body = body
        self._carry = b""
        self._limit = limit
        self._hashers = list(hashers)
        self._at_end = at_end
        self._too_long = too_long
        self._offload = offload
        self.total = 0
        self.finished = False

    async def _next(self) -> bytes:
        if self._carry:
            data, self._carry = self._carry, b""
            return data
        if self.finished:
            return b""
        try:
            data = await self._body.__anext__()
        except StopAsyncIteration:
            self.finished = True
            if self._at_end is not None:
                self._at_end()
            return b""
        self.total += len(data)
        if self.total > self._limit:
            raise errors.PayloadTooLarge(self._too_long)
        if self._hashers:
            await self._offload.hash(self._hashers, data)
        return data

    async def piece(self, size: int) -> AsyncIterator[bytes]:
        remaining = size
        while remaining > 0:
            data = await self._next()
            if not data:
                return
            if len(data) > remaining:
                data, self._carry = data[:remaining], data[remaining:]
            remaining -= len(data)
            yield data
            del data  # not held while the next piece is awaited (a client may stall)

    @property
    def exhausted(self) -> bool:
        return self.finished and not self._carry
