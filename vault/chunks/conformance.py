"""The chunk backend conformance suite: what every ``vault.backends`` plugin must pass.

Like restic's ``test/suite.go`` and Perkeep's ``storagetest``, one suite ships with the node and
runs against every backend, the built-in ``lmdb`` and ``fs`` ones included. Each check is a plain
``async def check_…(harness)``; ``CHECKS`` lists them all. A backend author supplies a
``Harness`` with three things only they know:

- ``make()``: a new, unopened backend instance over the *same* storage on every call (the suite
  closes and reopens to test persistence and crash recovery);
- ``corrupt(chunk_id)``: damage a stored chunk's bytes in place, keeping its length, while the
  storage is closed (disk rot; the suite checks ``ChunkStore`` refuses to serve it);
- ``leftovers()``: how many staged, never-committed writes the closed storage still holds (temp
  files, staged segments), to check that interrupted writes are reclaimed at open.

With pytest and pytest-trio (``trio_mode = true``) a plugin's test module is a few lines::

    import pytest
    from vault.chunks.conformance import CHECKS, Harness

    @pytest.fixture
    def harness(tmp_path):
        return Harness(
            make=lambda: MyBackend(tmp_path / "chunks", {}),
            corrupt=lambda chunk_id: flip_a_byte(tmp_path / "chunks", chunk_id),
            leftovers=lambda: count_staged(tmp_path / "chunks"),
        )

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    async def test_conformance(harness, check):
        await check(harness)

Without pytest: ``trio.run(run_all, harness)``. ``uncovered_methods()`` names interface methods no
check exercises; the node's own tests fail when it is not empty, so a method added to
``ChunkBackend`` needs a check here.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import blake3
import trio

from vault.chunks.backend import BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.ids import ChunkId
from vault.chunks.store import (
    MAX_CHUNK_SIZE,
    VERIFY_WHOLE_LIMIT,
    ChunkCorrupt,
    ChunkMismatch,
    ChunkMissing,
    ChunkStore,
    ChunkTooLarge,
)

KiB = 1024
MiB = 1024 * 1024
ROUND_TRIP_SIZES = (0, 1, 64 * KiB, MiB + 1, 20 * MiB + 3)

Check = Callable[["Harness"], Awaitable[None]]


@dataclass(frozen=True)
class Harness:
    """What the suite needs to know about one backend (see the module docstring)."""

    make: Callable[[], ChunkBackend]
    corrupt: Callable[[ChunkId], Awaitable[None]]
    leftovers: Callable[[], Awaitable[int]]


CHECKS: list[Check] = []
_COVERED: set[str] = set()


def _covers(*methods: str) -> Callable[[Check], Check]:
    """Register a check and the interface methods it exercises."""

    def register(check: Check) -> Check:
        CHECKS.append(check)
        _COVERED.update(methods)
        return check

    return register


def uncovered_methods() -> set[str]:
    """Abstract methods of ``ChunkBackend``/``ChunkWriter`` that no check exercises."""
    required = {f"ChunkBackend.{name}" for name in ChunkBackend.__abstractmethods__} | {
        f"ChunkWriter.{name}" for name in ChunkWriter.__abstractmethods__
    }
    required.add("ChunkBackend.check")
    return required - _COVERED


async def run_all(harness: Harness) -> None:
    """Run every check in turn (each one starts from the storage the previous one left)."""
    for check in CHECKS:
        await check(harness)


# -- helpers -------------------------------------------------------------------------------------


def content(size: int, seed: int) -> bytes:
    """Deterministic incompressible bytes, different for every seed."""
    return random.Random(seed).randbytes(size)


def digest(data: bytes) -> ChunkId:
    return ChunkId(blake3.blake3(data).digest())


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """``data`` as a client would stream it, ``size`` bytes at a time."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@asynccontextmanager
async def opened(harness: Harness) -> AsyncIterator[ChunkBackend]:
    backend = harness.make()
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def read_backend(backend: ChunkBackend, chunk_id: ChunkId) -> bytes:
    return b"".join([piece async for piece in backend.read(chunk_id)])


async def stage(backend: ChunkBackend, data: bytes, piece_sizes: tuple[int, ...]) -> ChunkWriter:
    """A writer holding ``data``, written in pieces cycling through ``piece_sizes``."""
    writer = await backend.begin_put()
    offset, turn = 0, 0
    while offset < len(data):
        size = piece_sizes[turn % len(piece_sizes)]
        await writer.write(data[offset : offset + size])
        offset += size
        turn += 1
    return writer


async def store_many(store: ChunkStore, count: int, seed: int, size: int = 4 * KiB) -> list[ChunkId]:
    ids = []
    for index in range(count):
        result = await store.put_bytes(content(size + index, seed + index))
        ids.append(result.chunk_id)
    return ids


def expect(condition: bool, message: str) -> None:
    """A failed expectation (independent of ``python -O``, unlike ``assert``)."""
    if not condition:
        raise AssertionError(message)


async def expect_raises(kind: type[BaseException], action: Awaitable[object], what: str) -> BaseException:
    try:
        await action
    except kind as exc:
        return exc
    raise AssertionError(f"{what}: expected {kind.__name__}")


# -- the checks ----------------------------------------------------------------------------------


@_covers(
    "ChunkBackend.open",
    "ChunkBackend.close",
    "ChunkBackend.begin_put",
    "ChunkWriter.write",
    "ChunkWriter.commit",
    "ChunkBackend.read",
    "ChunkBackend.stat",
    "ChunkBackend.stats",
)
async def check_round_trip(harness: Harness) -> None:
    """Chunks of 0 bytes to 20 MiB come back byte for byte, through the backend and the store."""
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        expected_bytes = 0
        for seed, size in enumerate(ROUND_TRIP_SIZES):
            data = content(size, seed)
            result = await store.put(pieces(data, 256 * KiB + 7), expected_id=digest(data), expected_size=size)
            expect(result.chunk_id == digest(data) and result.size == size, f"put of {size} bytes")
            expect(not result.existed, f"a new {size}-byte chunk is reported as existing")
            expect(await backend.stat(result.chunk_id) == size, f"stat of a {size}-byte chunk")
            expect(await read_backend(backend, result.chunk_id) == data, f"backend read of {size} bytes")
            expect(await store.read_all(result.chunk_id) == data, f"verified read of {size} bytes")
            expected_bytes += size
        # Pieces of odd sizes straight into a writer, as another caller of the interface might.
        data = content(9 * MiB + 5, 99)
        writer = await stage(backend, data, (3, MiB + 5, 2 * MiB - 1, 4 * MiB))
        await writer.commit(digest(data))
        expect(await read_backend(backend, digest(data)) == data, "odd-sized pieces read back")
        expected_bytes += len(data)
        stats = await backend.stats()
        expect(
            stats == BackendStats(chunks=len(ROUND_TRIP_SIZES) + 1, bytes=expected_bytes),
            f"stats after the round trips: {stats}",
        )


@_covers("ChunkBackend.read", "ChunkBackend.stat", "ChunkBackend.has_many", "ChunkBackend.check")
async def check_missing_chunk(harness: Harness) -> None:
    """An absent chunk: ``read`` raises ``KeyError``, ``stat`` is ``None``, the store says missing."""
    absent = digest(b"never stored")
    async with opened(harness) as backend:
        await backend.check()
        await expect_raises(KeyError, read_backend(backend, absent), "reading an absent chunk")
        expect(await backend.stat(absent) is None, "stat of an absent chunk is None")
        expect(await backend.has_many([absent]) == set(), "has_many of an absent chunk")
        expect(await backend.delete_many([absent]) == 0, "deleting an absent chunk counts 0")
        store = ChunkStore(backend)
        await expect_raises(ChunkMissing, store.read_all(absent), "store read of an absent chunk")
        await expect_raises(ChunkMissing, store.verify(absent), "verify of an absent chunk")


@_covers("ChunkBackend.has_many", "ChunkBackend.delete_many", "ChunkBackend.stats")
async def check_batches(harness: Harness) -> None:
    """``has_many``/``delete_many`` take large mixed batches, duplicates and generators."""
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        stored = await store_many(store, 40, seed=1000)
        absent = [digest(f"absent {n}".encode()) for n in range(40)]
        mixed = stored + absent + stored[:5]
        random.Random(7).shuffle(mixed)
        expect(await backend.has_many(iter(mixed)) == set(stored), "has_many picks exactly the stored ids")
        expect(await backend.has_many([]) == set(), "has_many of nothing")
        doomed = stored[:25]
        deleted = await backend.delete_many(c for c in doomed + doomed[:3] + absent[:5])
        expect(deleted == 25, f"delete_many counts each existing chunk once, got {deleted}")
        expect(await backend.delete_many([]) == 0, "delete_many of nothing")
        expect(await backend.has_many(stored) == set(stored[25:]), "deleted chunks are gone, others stay")
        sizes = [await backend.stat(c) for c in stored[25:]]
        stats = await backend.stats()
        expect(stats.chunks == 15 and stats.bytes == sum(s or 0 for s in sizes), f"stats after deletes: {stats}")


@_covers("ChunkBackend.read")
async def check_corrupt_chunk_detected(harness: Harness) -> None:
    """Damaged bytes raise ``ChunkCorrupt`` and never come out complete and good-looking."""
    small, large = content(64 * KiB, 1), content(VERIFY_WHOLE_LIMIT + 3 * MiB + 1, 2)
    healthy = content(10 * KiB, 3)
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        for data in (small, large, healthy):
            await store.put_bytes(data)
    for data in (small, large):
        await harness.corrupt(digest(data))
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        for data in (small, large):
            chunk_id = digest(data)
            await expect_raises(ChunkCorrupt, store.verify(chunk_id), f"verify of a corrupt {len(data)}-byte chunk")
            received = bytearray()

            async def consume(chunk_id: ChunkId = chunk_id, received: bytearray = received) -> None:
                async for piece in await store.get(chunk_id):
                    received.extend(piece)

            await expect_raises(ChunkCorrupt, consume(), f"streaming a corrupt {len(data)}-byte chunk")
            expect(len(received) < len(data), "a corrupt chunk was served in full before the error")
            expect(bytes(received) != data, "corrupt content came out as the original")
        expect(await store.read_all(digest(healthy)) == healthy, "an undamaged neighbour still reads")


@_covers("ChunkWriter.commit", "ChunkBackend.list_ids")
async def check_concurrent_puts(harness: Harness) -> None:
    """Eight puts of one chunk at once all succeed and leave one copy; different chunks all land."""
    same = content(2 * MiB + 1, 5)
    others = [content(300 * KiB + n, 50 + n) for n in range(8)]
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        results = []

        async def put(data: bytes) -> None:
            results.append(await store.put(pieces(data, 64 * KiB)))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(put, same)
            for data in others:
                nursery.start_soon(put, data)
        same_results = [r for r in results if r.chunk_id == digest(same)]
        expect(len(same_results) == 8, "every concurrent put of the same chunk succeeded")
        expect(any(not r.existed for r in same_results), "one of the concurrent puts stored the chunk")

        # Below the store's existence check: eight staged copies committed at the same moment.
        racing = content(MiB + 17, 6)
        writers = [await stage(backend, racing, (512 * KiB,)) for _ in range(8)]
        async with trio.open_nursery() as nursery:
            for writer in writers:
                nursery.start_soon(writer.commit, digest(racing))

        expected = sorted([digest(same), digest(racing), *(digest(d) for d in others)])
        expect(await backend.list_ids(None, 100) == expected, "one listing entry per distinct chunk")
        stats = await backend.stats()
        total = len(same) + len(racing) + sum(len(d) for d in others)
        expect(stats == BackendStats(chunks=len(expected), bytes=total), f"one stored copy each: {stats}")
        expect(await store.read_all(digest(same)) == same, "the contended chunk reads back")
        expect(await store.read_all(digest(racing)) == racing, "the raced chunk reads back")
    expect(await harness.leftovers() == 0, "losing copies left staged data behind")


@_covers("ChunkBackend.list_ids")
async def check_iteration_with_cursor(harness: Harness) -> None:
    """``list_ids`` pages in ascending byte order after a cursor; ``ChunkStore.iterate`` sees all."""
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        ids = sorted(await store_many(store, 30, seed=2000, size=100))
        expect(await backend.list_ids(None, 1000) == ids, "a full listing is sorted by id bytes")
        expect(await backend.list_ids(None, 0) == [], "limit 0 lists nothing")
        paged: list[ChunkId] = []
        cursor: ChunkId | None = None
        while True:
            page = await backend.list_ids(cursor, 7)
            expect(len(page) <= 7, "a page respects its limit")
            paged += page
            if len(page) < 7:
                break
            cursor = page[-1]
        expect(paged == ids, "paging by cursor visits every id once, in order")
        expect(await backend.list_ids(ids[-1], 10) == [], "nothing after the last id")
        expect(await backend.list_ids(ids[9], 3) == ids[10:13], "strictly after a stored cursor")
        between = ChunkId(ids[9][:31] + bytes([(ids[9][31] + 1) % 256])) if ids[9][31] < 255 else ids[9]
        expect(
            await backend.list_ids(between, 100) == [i for i in ids if i > between],
            "a cursor that is not a stored id",
        )
        expect(await backend.list_ids(ChunkId(b"\x00" * 32), 100) == ids, "cursor below every id")
        expect([c async for c in store.iterate(batch=4)] == ids, "ChunkStore.iterate in small batches")
        expect([c async for c in store.iterate(after=ids[19], batch=4)] == ids[20:], "iterate after a cursor")


@_covers("ChunkBackend.delete_many", "ChunkBackend.stats")
async def check_delete(harness: Harness) -> None:
    """A deleted chunk is gone for every method, its bytes leave the stats, and it can come back."""
    data, keep = content(3 * MiB + 9, 11), content(5 * KiB, 12)
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        chunk_id = (await store.put_bytes(data)).chunk_id
        await store.put_bytes(keep)
        expect(await store.delete_many([chunk_id]) == 1, "delete_many counts the deleted chunk")
        expect(await backend.delete_many([chunk_id]) == 0, "deleting again counts nothing")
        await expect_raises(KeyError, read_backend(backend, chunk_id), "reading a deleted chunk")
        expect(await backend.stat(chunk_id) is None, "stat of a deleted chunk")
        expect(await backend.list_ids(None, 10) == [digest(keep)], "listing after delete")
        expect(await backend.stats() == BackendStats(chunks=1, bytes=len(keep)), "stats after delete")
        again = await store.put_bytes(data)
        expect(
            not again.existed and await store.read_all(chunk_id) == data,
            "a deleted chunk can be stored again",
        )
    async with opened(harness) as backend:
        expect(await backend.stats() == BackendStats(chunks=2, bytes=len(data) + len(keep)), "stats after reopen")


@_covers("ChunkBackend.open", "ChunkBackend.close", "ChunkWriter.write")
async def check_crash_leftovers_ignored(harness: Harness) -> None:
    """Writes never committed (the process died) are invisible after reopening and reclaimed."""
    big, small = content(5 * MiB + 3, 21), content(3, 22)
    async with opened(harness) as backend:
        await ChunkStore(backend).put_bytes(content(100, 23))
        await stage(backend, big, (MiB,))
        await stage(backend, small, (3,))
        # Closing with writers neither committed nor aborted is what a crash leaves on disk.
    expect(await harness.leftovers() > 0, "the simulated crash left no staged data (check the hook)")
    async with opened(harness) as backend:
        expect(await backend.has_many([digest(big), digest(small)]) == set(), "uncommitted chunks are invisible")
        expect(
            await backend.list_ids(None, 10) == [digest(content(100, 23))],
            "only the committed chunk is listed",
        )
        expect(await backend.stats() == BackendStats(chunks=1, bytes=100), "stats ignore staged data")
    expect(await harness.leftovers() == 0, "staged data of the crashed writes was not reclaimed at open")
    async with opened(harness) as backend:
        result = await ChunkStore(backend).put_bytes(big)
        expect(not result.existed and await read_backend(backend, digest(big)) == big, "the store works after")


@_covers("ChunkBackend.open", "ChunkBackend.close")
async def check_persistence(harness: Harness) -> None:
    """Committed chunks survive close and reopen through a new backend instance."""
    chunks = [content(size, 30 + n) for n, size in enumerate((0, 77, 2 * MiB + 1))]
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        for data in chunks:
            await store.put_bytes(data)
        before = await backend.stats()
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        expect(await backend.stats() == before, "stats survive a reopen")
        expect(await backend.list_ids(None, 10) == sorted(digest(d) for d in chunks), "listing survives")
        for data in chunks:
            expect(await store.read_all(digest(data)) == data, f"a {len(data)}-byte chunk survives")


@_covers("ChunkWriter.abort")
async def check_abort_discards(harness: Harness) -> None:
    """An aborted write leaves nothing behind; abort is safe twice and without any write."""
    data = content(2 * MiB + 100, 40)
    async with opened(harness) as backend:
        writer = await stage(backend, data, (MiB,))
        await writer.abort()
        await writer.abort()
        empty = await backend.begin_put()
        await empty.abort()
        expect(await backend.has_many([digest(data)]) == set(), "an aborted chunk is invisible")
        expect(await backend.stats() == BackendStats(chunks=0, bytes=0), "stats after abort")
    expect(await harness.leftovers() == 0, "an aborted write left staged data behind")


@_covers("ChunkWriter.abort")
async def check_store_mismatch_leaves_nothing(harness: Harness) -> None:
    """Content that does not match the expected id or size is refused and leaves no trace."""
    data = content(MiB + 3, 50)
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        wrong_id = digest(b"something else")
        error = await expect_raises(
            ChunkMismatch, store.put(pieces(data, 64 * KiB), expected_id=wrong_id), "a wrong expected id"
        )
        expect(
            isinstance(error, ChunkMismatch) and error.actual_id == digest(data),
            "the error names the real id",
        )
        await expect_raises(
            ChunkMismatch, store.put(pieces(data, 64 * KiB), expected_size=len(data) + 1), "a short stream"
        )
        await expect_raises(
            ChunkTooLarge, store.put(pieces(data, 64 * KiB), expected_size=len(data) - 1), "a long stream"
        )
        expect(await backend.has_many([digest(data), wrong_id]) == set(), "nothing became visible")
        expect(await backend.list_ids(None, 10) == [], "nothing is listed")
        expect(await backend.stats() == BackendStats(chunks=0, bytes=0), "stats after refused puts")
        stored = await store.put_bytes(data)
        again = await store.put(pieces(data, 64 * KiB), expected_id=stored.chunk_id, expected_size=len(data))
        expect(again.existed and again.chunk_id == stored.chunk_id, "a known chunk is recognised, not rewritten")
        expect(await backend.stats() == BackendStats(chunks=1, bytes=len(data)), "a known chunk is stored once")
    expect(await harness.leftovers() == 0, "refused puts left staged data behind")


@_covers("ChunkWriter.abort")
async def check_too_large(harness: Harness) -> None:
    """A stream past the store's 64 MiB limit (or a caller's smaller one) is cut off and discarded."""
    piece = content(4 * MiB, 60)

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(MAX_CHUNK_SIZE // len(piece) + 1):
            yield piece

    async with opened(harness) as backend:
        store = ChunkStore(backend)
        await expect_raises(ChunkTooLarge, store.put(endless()), "a stream past 64 MiB")
        await expect_raises(ChunkTooLarge, store.put(pieces(piece, 64 * KiB), max_size=MiB), "a stream past max_size")
        expect(await backend.list_ids(None, 10) == [], "nothing too large became visible")
    expect(await harness.leftovers() == 0, "a refused large put left staged data behind")
