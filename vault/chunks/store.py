"""The verifying chunk store: hashing, size limits and verification, once, above any backend.

``put`` hashes a stream while it is written and makes nothing visible unless the content matches
what the caller expected; ``get`` re-hashes what the backend returns and never lets corrupt bytes
pass as good data. Memory per operation is bounded by a few pieces, never by the chunk size.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import NoReturn

import blake3
import msgspec
import trio

from vault._trio_util import single_errors
from vault.chunks.backend import BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.ids import ChunkId
from vault.offload import Hasher, Offload

log = logging.getLogger(__name__)

MAX_CHUNK_SIZE = 64 * 1024 * 1024
# The largest piece handed to the backend and the hashing thread; pieces are at least
# GATHER_SIZE (but the last), so a thread hand-off is cheap relative to the work
# (PERFORMANCE.md: 64 KiB hand-offs ran at a quarter of the speed).
PIECE_SIZE = 4 * 1024 * 1024
# Smaller pieces from the caller are gathered to this size; larger ones pass without a copy.
GATHER_SIZE = 1024 * 1024
# Chunks up to this size are read and verified whole before the first byte is released; larger
# chunks stream and hold back their last piece until the digest is checked.
VERIFY_WHOLE_LIMIT = 8 * 1024 * 1024
# Bytes of whole verified chunks all downloads together may hold while their clients read them
# (``ChunkStore.stream``). A download that finds no room streams small re-read pieces instead, so
# fifty phones reading a video a few KiB at a time cost a few MiB, not fifty chunks.
READ_BUDGET = 16 * 1024 * 1024
# The piece a download without budget reads, hashes and hands on at a time.
SLOW_PIECE = 128 * 1024
# The piece such a download's first, verifying pass reads at a time (kept only while hashed).
VERIFY_PIECE = 1024 * 1024


class ChunkStoreError(Exception):
    """Base of the chunk store's errors."""


class ChunkMissing(ChunkStoreError, KeyError):
    """No chunk with that id is stored."""


class ChunkCorrupt(ChunkStoreError):
    """A stored chunk does not hash to its id: never serve its bytes as good data."""

    def __init__(self, chunk_id: ChunkId, reason: str = "content does not match its id") -> None:
        super().__init__(f"chunk {chunk_id.hex()} is corrupt: {reason}")
        self.chunk_id = chunk_id
        self.reason = reason


class ChunkMismatch(ChunkStoreError):
    """Content offered for storage does not match the expected digest or length."""

    def __init__(self, message: str, *, actual_id: ChunkId | None = None, size: int = 0) -> None:
        super().__init__(message)
        self.actual_id = actual_id
        self.size = size


class ChunkTooLarge(ChunkStoreError):
    """Content offered for storage is longer than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"chunk exceeds {limit} bytes")
        self.limit = limit


class PutResult(msgspec.Struct, frozen=True):
    chunk_id: ChunkId
    size: int
    existed: bool


async def _coalesce(stream: AsyncIterable[bytes], piece_size: int, limit: int) -> AsyncIterator[bytes]:
    """Regroup a stream into pieces of ``GATHER_SIZE`` to ``piece_size`` bytes; fail past ``limit``.

    Small pieces are gathered and joined once into ``GATHER_SIZE`` (one allocation per piece:
    growing a buffer and copying it out touched twice the fresh memory and halved the store's
    throughput, and 1 MiB joins ran about twice as fast as 4 MiB ones here); pieces already that
    large go on as they are, without a copy, and longer ones are cut at ``piece_size``. Pieces
    that are not ``bytes`` are copied on arrival: the caller may reuse its buffer.
    """
    gather = min(GATHER_SIZE, piece_size)
    parts: list[bytes | memoryview] = []
    held = 0
    total = 0
    async for data in stream:
        if not data:
            continue
        total += len(data)
        if total > limit:
            raise ChunkTooLarge(limit)
        if not isinstance(data, bytes):
            data = bytes(data)
        view = memoryview(data)
        while view:
            if not parts and len(view) >= gather:
                size = min(len(view), piece_size)
                yield data if size == len(data) else bytes(view[:size])
                view = view[size:]
                continue
            take = min(len(view), gather - held)
            parts.append(view[:take])
            held += take
            view = view[take:]
            if held == gather:
                piece = b"".join(parts)
                parts.clear()  # before the yield: the consumer may keep us suspended a while
                held = 0
                yield piece
                del piece
        # Let go of this read before waiting for the next: a stalled client would otherwise keep
        # the last piece it sent in memory (``parts`` keeps only what is not yet passed on).
        del data, view
    if parts:
        yield b"".join(parts)


async def _release(held: list[bytes]) -> AsyncIterator[bytes]:
    """Hand on held pieces one by one, so a consumer can let go of each (none kept here)."""
    held.reverse()
    while held:
        yield held.pop()


async def _next_piece(chunk_id: ChunkId, source: AsyncIterator[bytes]) -> bytes | None:
    """The next piece of a backend's stream of ``chunk_id``; ``None`` at its end. A backend
    raises ``KeyError`` for a chunk it does not have, here the store's ``ChunkMissing``."""
    try:
        return await source.__anext__()
    except StopAsyncIteration:
        return None
    except KeyError:
        raise ChunkMissing(chunk_id.hex()) from None


async def _aclose(source: AsyncIterator[bytes]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


class ByteBudget:
    """A count of bytes that may be held at once; taken without waiting (callers have a fallback)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity

    def try_take(self, n: int) -> bool:
        if n > self.free:
            return False
        self.free -= n
        return True

    def give(self, n: int) -> None:
        self.free = min(self.capacity, self.free + n)


class ChunkStore:
    """Content-addressed, verified storage of chunks of up to 64 MiB over a ``ChunkBackend``."""

    def __init__(
        self,
        backend: ChunkBackend,
        *,
        piece_size: int = PIECE_SIZE,
        offload: Offload | None = None,
        on_corrupt: Callable[[ChunkId], None] | None = None,
        on_repaired: Callable[[ChunkId], None] | None = None,
        read_budget: int = READ_BUDGET,
    ) -> None:
        self.backend = backend
        self.read_budget = ByteBudget(read_budget)
        self._verify_slots = trio.CapacityLimiter(4)
        self.piece_size = piece_size
        # Hashing follows the node's one offload rule (``vault.offload``), on its limiter.
        self.offload = offload or Offload()
        # Told when a read finds a chunk corrupt, and when a put replaced a corrupt copy (metrics).
        self._on_corrupt = on_corrupt
        self._on_repaired = on_repaired

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        await self.backend.close()

    async def put(
        self,
        stream: AsyncIterable[bytes],
        *,
        expected_id: ChunkId | None = None,
        expected_size: int | None = None,
        max_size: int = MAX_CHUNK_SIZE,
        also: Sequence[Hasher] = (),
    ) -> PutResult:
        """Store a stream; visible only if it hashes to ``expected_id`` and has ``expected_size``.

        When ``expected_id`` is already stored (and the stored copy still verifies) the bytes are
        hashed but not written again; a stored copy that fails verification is replaced by these
        bytes, so the next good upload of rotted content repairs it rather than dedup onto it.
        On a backend whose ``blind_put_is_cheap`` is true the bytes are written without asking
        first, and the commit says whether the chunk was there already; only then is the stored
        copy verified (and replaced when corrupt): ``existed`` means the same either way.
        ``also``: more hashers fed the same bytes in the same thread hop (an upload's running
        whole-file digest), so the content is read once whatever is computed from it.
        Raises ``ChunkTooLarge`` as soon as the stream passes ``max_size`` (or ``expected_size``)
        and ``ChunkMismatch`` when the finished content is not what was expected.
        """
        limit = min(max_size, MAX_CHUNK_SIZE)
        if expected_size is not None:
            limit = min(limit, expected_size)
        blind = self.backend.blind_put_is_cheap
        existed = not blind and expected_id is not None and await self._stored_intact(expected_id)
        writer = None if existed else await self.backend.begin_put()
        hasher = blake3.blake3()
        size = 0
        try:
            size = await self._pump(_coalesce(stream, self.piece_size, limit), [hasher, *also], writer)
            actual = ChunkId(hasher.digest())
            if expected_size is not None and size != expected_size:
                raise ChunkMismatch(f"expected {expected_size} bytes, got {size}", actual_id=actual, size=size)
            if expected_id is not None and actual != expected_id:
                raise ChunkMismatch("content does not match its checksum", actual_id=actual, size=size)
            if writer is not None and blind:
                existed = await self._commit_blind(writer, actual)
                writer = None
            elif writer is not None:
                # Without an expected id we learn the id only now, so look again: callers rely on
                # ``existed`` (an upload re-checks an existing chunk against gc). With one, it was
                # absent when we began; a concurrent put of it since then stored a fresh chunk,
                # which gc cannot reclaim before its grace period, and commit is a no-op for it.
                existed = expected_id is None and await self._stored_intact(actual)
                if existed:
                    await writer.abort()
                else:
                    await writer.commit(actual)
                writer = None
            return PutResult(chunk_id=actual, size=size, existed=existed)
        finally:
            if writer is not None:
                with trio.CancelScope(shield=True):
                    await writer.abort()

    async def _commit_blind(self, writer: ChunkWriter, chunk_id: ChunkId) -> bool:
        """Commit unless stored; whether the chunk existed (and verified) before.

        A copy that was there is checked as the asking path checks it: when it verifies, these
        bytes are dropped (the caller re-checks it against gc, as for any deduplicated chunk);
        when it is corrupt it has been deleted and these bytes take its place.
        """
        if await writer.commit_if_absent(chunk_id):
            return False
        if await self._stored_intact(chunk_id):
            await writer.abort()
            return True
        await writer.commit(chunk_id)
        return False

    async def _stored_intact(self, chunk_id: ChunkId) -> bool:
        """Whether ``chunk_id`` is stored and verifies; a corrupt copy is deleted (so that the
        caller's good bytes take its place) and reported."""
        if not await self.backend.has_many([chunk_id]):
            return False
        try:
            await self.verify(chunk_id)
        except ChunkMissing:
            return False  # deleted meanwhile (gc): store it afresh
        except ChunkCorrupt:
            log.warning("chunk %s is corrupt; replacing it with a good copy being uploaded", chunk_id.hex())
            await self.backend.delete_many([chunk_id])
            if self._on_repaired is not None:
                self._on_repaired(chunk_id)
            return False
        return True

    async def _pump(self, pieces: AsyncIterator[bytes], hashers: Sequence[Hasher], writer: ChunkWriter | None) -> int:
        """Hash and write each piece while the next one is being read from the client."""
        size = 0
        # No buffer: the producer still reads one piece ahead (it waits in ``send`` holding it),
        # and memory stays at about three pieces in flight.
        send, receive = trio.open_memory_channel[bytes](0)

        async def produce() -> None:
            async with send:
                async for piece in pieces:
                    await send.send(piece)
                    del piece  # not held while the next one is awaited (a stalled client)

        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                async with receive:
                    async for piece in receive:
                        size += len(piece)
                        if writer is None:
                            await self.offload.hash(hashers, piece)
                        else:
                            async with trio.open_nursery() as both:
                                both.start_soon(self.offload.hash, hashers, piece)
                                await writer.write(piece)
                        del piece  # written: not held while the next one is awaited
        return size

    async def put_bytes(self, data: bytes, *, expected_id: ChunkId | None = None) -> PutResult:
        """Store an in-memory buffer (small chunks, tests, tools)."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put(one(), expected_id=expected_id, expected_size=len(data))

    async def get(self, chunk_id: ChunkId, *, expected_size: int | None = None) -> AsyncIterator[bytes]:
        """Stream a chunk, verified: raises ``ChunkMissing`` or ``ChunkCorrupt``.

        Chunks up to ``VERIFY_WHOLE_LIMIT`` are read and verified here, before this returns, and
        then handed on from memory; larger ones stream with the last piece held back until the
        digest (and the size) match, so a consumer never receives a complete-looking copy of
        corrupt content. There is no separate existence or size lookup: the read itself answers
        both (an object store's GET, one request instead of a HEAD and a GET), so ``ChunkMissing``
        is raised here and a stored size other than ``expected_size`` is ``ChunkCorrupt`` as soon
        as the bytes read show it (here, for a chunk up to the limit). Without ``expected_size``
        a chunk past the limit has the limit and one piece read before it starts streaming.
        """
        source = self.backend.read(chunk_id)
        handed_on = False
        hasher = blake3.blake3()
        held: list[bytes] = []
        size = 0
        # A chunk known to be large streams from its first piece; any other is read here until it
        # ends or turns out larger than the limit (or than expected).
        ahead = VERIFY_WHOLE_LIMIT if expected_size is None or expected_size <= VERIFY_WHOLE_LIMIT else 0
        ended = False
        try:
            piece = await _next_piece(chunk_id, source)
            while piece is not None:
                size += len(piece)
                self._check_not_longer(chunk_id, size, expected_size)
                held.append(piece)
                if size > ahead:
                    # Hashed here, then the stream goes on from the next piece.
                    await self.offload.hash([hasher], piece)
                    break
                piece = await self._hash_and_read_next(chunk_id, hasher, piece, source)
            ended = piece is None
            if not ended:
                handed_on = True  # the stream closes the source
                return self._stream_rest(chunk_id, source, hasher, held, size, expected_size)
            self._check_complete(chunk_id, hasher, size, expected_size)
        finally:
            if not handed_on:
                await _aclose(source)
        return _release(held)

    async def _hash_and_read_next(
        self, chunk_id: ChunkId, hasher: blake3.blake3, piece: bytes, source: AsyncIterator[bytes]
    ) -> bytes | None:
        """Hash ``piece`` in a worker thread while the next piece is read (``None`` at the end),
        so the digest costs no time of its own beside a backend that waits on the network. The
        source is read by the calling task only (a backend's stream may hold a cancel scope)."""
        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.offload.hash, [hasher], piece)
                return await _next_piece(chunk_id, source)

    def _check_not_longer(self, chunk_id: ChunkId, size: int, expected_size: int | None) -> None:
        if expected_size is not None and size > expected_size:
            raise ChunkCorrupt(chunk_id, f"stored size is more than {expected_size}")

    def _check_complete(self, chunk_id: ChunkId, hasher: blake3.blake3, size: int, expected_size: int | None) -> None:
        if expected_size is not None and size != expected_size:
            raise ChunkCorrupt(chunk_id, f"stored size {size} differs from {expected_size}")
        if hasher.digest() != chunk_id:
            self._corrupt(chunk_id)

    async def _stream_rest(
        self,
        chunk_id: ChunkId,
        source: AsyncIterator[bytes],
        hasher: blake3.blake3,
        held: list[bytes],
        size: int,
        expected_size: int | None,
    ) -> AsyncIterator[bytes]:
        """The rest of a large chunk: every piece handed on once the next one has arrived, the
        last only once the digest and the size match."""
        try:
            # What ``get`` read ahead: all but its last piece may go.
            waiting = held.pop()
            held.reverse()
            while held:
                yield held.pop()
            piece = await _next_piece(chunk_id, source)
            while piece is not None:
                size += len(piece)
                self._check_not_longer(chunk_id, size, expected_size)
                # Hashed before the next is read (not beside it): a stream holds two pieces.
                await self.offload.hash([hasher], piece)
                yield waiting
                waiting = piece
                piece = await _next_piece(chunk_id, source)
            self._check_complete(chunk_id, hasher, size, expected_size)
            yield waiting
        finally:
            await _aclose(source)

    def _corrupt(self, chunk_id: ChunkId) -> NoReturn:
        log.error("chunk %s failed verification on read", chunk_id.hex())
        if self._on_corrupt is not None:
            self._on_corrupt(chunk_id)
        raise ChunkCorrupt(chunk_id)

    async def _hash_by_ranges(self, chunk_id: ChunkId, size: int) -> None:
        """Verify a chunk keeping nothing: ``VERIFY_PIECE`` read and hashed at a time."""
        hasher = blake3.blake3()
        position = 0
        while position < size:
            # A few at a time: a hundred downloads starting together would otherwise hold a
            # piece each at once, and the allocator keeps such a peak long after it passed.
            async with self._verify_slots:
                try:
                    piece = await self.backend.read_range(chunk_id, position, VERIFY_PIECE)
                except KeyError:
                    raise ChunkMissing(chunk_id.hex()) from None
                if not piece:
                    raise ChunkCorrupt(chunk_id, "shorter than its stored size")
                await self.offload.hash([hasher], piece)
                position += len(piece)
                del piece
        if hasher.digest() != chunk_id:
            self._corrupt(chunk_id)

    async def stream(self, chunk_id: ChunkId, *, size: int, start: int, length: int) -> AsyncIterator[bytes]:
        """Bytes ``start .. start+length`` of a stored chunk of ``size`` bytes, for a download;
        raises ``ChunkMissing``/``ChunkCorrupt`` before handing on anything it could not verify.

        While the node's read budget has room, the chunk is read and verified whole and handed on
        from memory (one read, one hash: the fast path). Without room, it is verified by a first
        pass that keeps nothing, then read again ``SLOW_PIECE`` at a time and hashed again, each
        piece handed on as the next one arrives and the last one only once the second digest
        matches too: a slow client then holds two small pieces, whatever the chunk size.
        """
        if size <= VERIFY_WHOLE_LIMIT and self.read_budget.try_take(size):
            held = size
            try:
                skip, remaining = start, length
                async for piece in await self.get(chunk_id, expected_size=size):
                    count = len(piece)
                    if remaining > 0 and skip < count:
                        part = piece[skip : skip + remaining] if (skip or remaining < count) else piece
                        remaining -= len(part)
                        yield part
                        del part
                    skip = max(0, skip - count)
                    del piece
                    # Resumed: the consumer sent that piece on, so its bytes are let go.
                    back = min(held, count)
                    self.read_budget.give(back)
                    held -= back
            finally:
                self.read_budget.give(held)
            return
        stored = await self.backend.stat(chunk_id)
        if stored is None:
            raise ChunkMissing(chunk_id.hex())
        if stored != size:
            raise ChunkCorrupt(chunk_id, f"stored size {stored} differs from {size}")
        await self._hash_by_ranges(chunk_id, size)
        hasher = blake3.blake3()
        waiting: bytes | None = None
        position, stop = 0, start + length
        while position < size:
            try:
                piece = await self.backend.read_range(chunk_id, position, SLOW_PIECE)
            except KeyError:
                raise ChunkMissing(chunk_id.hex()) from None
            if not piece:
                raise ChunkCorrupt(chunk_id, "shorter than its stored size")
            await self.offload.hash([hasher], piece)
            end = position + len(piece)
            if end > start and position < stop:
                part = piece[max(0, start - position) : stop - position]
                if waiting is not None:
                    yield waiting
                waiting = part
            position = end
        if hasher.digest() != chunk_id:
            self._corrupt(chunk_id)
        if waiting:
            yield waiting

    async def read_all(self, chunk_id: ChunkId) -> bytes:
        """A whole verified chunk in memory (tools and tests; the API streams instead)."""
        parts = [piece async for piece in await self.get(chunk_id)]
        return b"".join(parts)

    async def verify(self, chunk_id: ChunkId) -> int:
        """Re-hash one stored chunk; returns its size or raises ``ChunkMissing``/``ChunkCorrupt``."""
        total = 0
        async for piece in await self.get(chunk_id):
            total += len(piece)
        return total

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        return await self.backend.has_many(chunk_ids)

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        return await self.backend.delete_many(chunk_ids)

    async def iterate(self, *, after: ChunkId | None = None, batch: int = 1000) -> AsyncIterator[ChunkId]:
        """Every stored id in ascending order, fetched ``batch`` at a time by cursor."""
        cursor = after
        while True:
            ids = await self.backend.list_ids(cursor, batch)
            for chunk_id in ids:
                yield chunk_id
            if len(ids) < batch:
                return
            cursor = ids[-1]

    async def stats(self) -> BackendStats:
        return await self.backend.stats()
