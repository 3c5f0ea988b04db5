"""The chunk backend conformance suite: what every ``vault.backends`` plugin must pass.

Like restic's ``test/suite.go`` and Perkeep's ``storagetest``, one suite ships with the node and
runs against every backend, the built-in ``lmdb``, ``fs`` and ``memory`` ones included, and the
wrappers of ``vault.chunks.wrappers``. Each check is a plain ``async def check_…(harness)``;
``CHECKS`` lists them all. A backend author supplies a ``Harness``:

- ``make()``: a new, unopened backend instance over the *same* storage on every call (the suite
  closes and reopens to test persistence and crash recovery);
- ``corrupt(chunk_id)``: damage a stored chunk's bytes in place, keeping its length, while the
  storage is closed (disk rot; the suite checks ``ChunkStore`` refuses to serve it);
- ``leftovers()``: how many staged, never-committed writes the closed storage still holds (temp
  files, staged segments), to check that interrupted writes are reclaimed at open.

A backend that cannot do one of these (object storage cannot rot a stored object on purpose)
passes ``None`` for that hook, explicitly: the checks that need it then raise ``NotApplicable``
(a ``unittest.SkipTest``, so test runners report them as skipped, never as passed); checks that
use it only for a last assertion run everything else first. For an eventually consistent store,
``retries`` and ``settle`` make each read-after-write and list-after-write expectation try again,
``settle`` seconds apart, before it fails.

With pytest a plugin's test module is a few lines::

    import pytest
    from vault.plugin_api import CHECKS, Harness, check_name, run_check

    @pytest.fixture
    def harness(tmp_path):
        return Harness(
            make=lambda: MyBackend(tmp_path / "chunks", MyBackend.Options()),
            corrupt=lambda chunk_id: flip_a_byte(tmp_path / "chunks", chunk_id),  # async hooks
            leftovers=lambda: count_staged(tmp_path / "chunks"),  # or None: not applicable
        )

    @pytest.mark.parametrize("check", CHECKS, ids=check_name)
    def test_conformance(harness, check):
        run_check(check, harness)  # its own trio.run, so a skip keeps its reason

(An ``async def`` test under pytest-trio can ``await check(harness)`` instead; catch
``NotApplicable`` and call ``pytest.skip`` there, as pytest-trio drops the reason.)
Without pytest: ``trio.run(run_all, make_harness)`` (a function returning a harness over new,
empty storage) returns each check's outcome.
``uncovered_methods()`` names interface methods no check exercises; the node's own tests fail
when it is not empty, so a method added to ``ChunkBackend`` needs a check here.
``check_provider(provider)`` is the matching smoke test for a ``vault.push`` provider.
"""

from __future__ import annotations

import random
import unittest
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import blake3
import trio

from vault.chunks.backend import BackendOptions, BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.ids import ChunkId
from vault.chunks.memory import MemoryBackend, MemoryOptions, MemoryStorage
from vault.chunks.store import (
    MAX_CHUNK_SIZE,
    VERIFY_WHOLE_LIMIT,
    ChunkCorrupt,
    ChunkMismatch,
    ChunkMissing,
    ChunkStore,
    ChunkTooLarge,
)
from vault.plugin_checks import expect, expect_refuses_unknown_key

KiB = 1024
MiB = 1024 * 1024
ROUND_TRIP_SIZES = (0, 1, 64 * KiB, MiB + 1, 20 * MiB + 3)

Check = Callable[["Harness"], Awaitable[None]]


@dataclass(frozen=True)
class Harness:
    """What the suite needs to know about one backend (see the module docstring).

    ``corrupt`` and ``leftovers`` have no default: a harness says ``None`` on purpose. ``retries``
    and ``settle``: how many more times, and how many seconds apart, a read-after-write or
    list-after-write expectation is tried before it fails (0 and 0: a strictly consistent store).
    """

    make: Callable[[], ChunkBackend]
    corrupt: Callable[[ChunkId], Awaitable[None]] | None
    leftovers: Callable[[], Awaitable[int]] | None
    retries: int = 0
    settle: float = 0.0


class NotApplicable(unittest.SkipTest):
    """A check (or its last part) needs a hook the harness set to ``None``: skipped, not passed."""


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


def check_name(check: Check) -> str:
    """A check's short name (``round_trip``), e.g. for pytest ids."""
    return getattr(check, "__name__", repr(check)).removeprefix("check_")


async def run_all(fresh: Callable[[], Harness]) -> dict[str, str | None]:
    """Run every check in turn, each on a harness from ``fresh()`` over new, empty storage.

    Returns each check's name with ``None`` when it passed or the reason it was not applicable;
    the first failure raises. (The checks count what the storage holds, so they cannot share it.)
    """
    outcomes: dict[str, str | None] = {}
    for check in CHECKS:
        try:
            await check(fresh())
        except NotApplicable as exc:
            outcomes[check_name(check)] = str(exc)
        else:
            outcomes[check_name(check)] = None
    return outcomes


def run_check(check: Check, harness: Harness, *, clock: trio.abc.Clock | None = None) -> None:
    """Run one check in its own ``trio.run`` (for a synchronous test); ``NotApplicable`` propagates."""
    trio.run(check, harness, clock=clock)


def memory_harness(
    wrap: Callable[[ChunkBackend], ChunkBackend] | None = None,
    *,
    retries: int = 0,
    settle: float = 0.0,
    options: MemoryOptions | None = None,
) -> Harness:
    """A harness over one in-memory storage, each instance optionally wrapped (to test a wrapper);
    ``options``: each instance's (``MemoryOptions(blind_put=True)`` for the store's blind puts)."""
    storage = MemoryStorage()

    def make() -> ChunkBackend:
        backend = MemoryBackend(options=options, storage=storage)
        return wrap(backend) if wrap is not None else backend

    async def corrupt(chunk_id: ChunkId) -> None:
        storage.corrupt(chunk_id)

    async def leftovers() -> int:
        return storage.leftovers()

    return Harness(make=make, corrupt=corrupt, leftovers=leftovers, retries=retries, settle=settle)


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


async def expect_raises(kind: type[BaseException], action: Awaitable[object], what: str) -> BaseException:
    try:
        await action
    except kind as exc:
        return exc
    raise AssertionError(f"{what}: expected {kind.__name__}")


def _brief(value: object) -> str:
    if isinstance(value, bytes | bytearray) and len(value) > 32:
        return f"{len(value)} other bytes"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


async def expect_soon(harness: Harness, actual: Callable[[], Awaitable[object]], expected: object, what: str) -> None:
    """``await actual() == expected`` for what a write made visible (or gone), re-tried per the harness.

    A ``KeyError`` (a chunk not readable yet) counts as "not yet" until the last try.
    """
    got: object = None
    for attempt in range(harness.retries + 1):
        if attempt:
            await trio.sleep(harness.settle)
        try:
            got = await actual()
        except KeyError:
            if attempt == harness.retries:
                raise
            continue
        if got == expected:
            return
    tries = f" after {harness.retries + 1} tries" if harness.retries else ""
    raise AssertionError(f"{what}: got {_brief(got)}{tries}")


async def raises(kind: type[BaseException], action: Awaitable[object]) -> bool:
    """Whether ``action`` raises ``kind`` (for ``expect_soon`` probes)."""
    try:
        await action
    except kind:
        return True
    return False


async def expect_no_leftovers(harness: Harness, message: str) -> None:
    """The closed storage holds no staged data; ``NotApplicable`` without a ``leftovers`` hook.

    Called last in a check, so without the hook everything else has been checked already.
    """
    if harness.leftovers is None:
        raise NotApplicable("staged data not counted: the harness has no leftovers hook (everything else passed)")
    expect(await harness.leftovers() == 0, message)


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
            chunk_id = result.chunk_id
            await expect_soon(harness, partial(backend.stat, chunk_id), size, f"stat of a {size}-byte chunk")
            await expect_soon(harness, partial(read_backend, backend, chunk_id), data, f"backend read of {size} bytes")
            await expect_soon(harness, partial(store.read_all, chunk_id), data, f"verified read of {size} bytes")
            expected_bytes += size
        # Pieces of odd sizes straight into a writer, as another caller of the interface might.
        data = content(9 * MiB + 5, 99)
        writer = await stage(backend, data, (3, MiB + 5, 2 * MiB - 1, 4 * MiB))
        await writer.commit(digest(data))
        await expect_soon(harness, lambda: read_backend(backend, digest(data)), data, "odd-sized pieces read back")
        expected_bytes += len(data)
        await expect_soon(
            harness,
            backend.stats,
            BackendStats(chunks=len(ROUND_TRIP_SIZES) + 1, bytes=expected_bytes),
            "stats after the round trips",
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


@_covers("ChunkBackend.read_range")
async def check_read_range(harness: Harness) -> None:
    """``read_range`` answers exactly the asked bytes anywhere in a chunk, fewer at its end, none
    past it, and ``KeyError`` for an absent chunk; the store's slow download path relies on it."""
    data = content(3 * MiB + 12345, 7)
    chunk_id = digest(data)
    async with opened(harness) as backend:
        await ChunkStore(backend).put_bytes(data)
        cases = [(0, 1), (0, 128 * KiB), (MiB - 5, 10), (MiB, MiB), (2 * MiB + 77, 128 * KiB), (len(data) - 3, 100)]
        for start, length in cases:
            await expect_soon(
                harness,
                partial(backend.read_range, chunk_id, start, length),
                data[start : start + length],
                f"read_range({start}, {length})",
            )
        expect(await backend.read_range(chunk_id, len(data), 10) == b"", "read_range past the end is empty")
        await expect_raises(KeyError, backend.read_range(digest(b"absent"), 0, 10), "read_range of an absent chunk")
        store = ChunkStore(backend, read_budget=0)  # no room: every download takes the ranged path

        async def streamed(start: int, length: int) -> bytes:
            return b"".join([p async for p in store.stream(chunk_id, size=len(data), start=start, length=length)])

        for start, length in [(0, len(data)), (MiB + 3, 200 * KiB), (len(data) - 1, 1)]:
            await expect_soon(
                harness,
                partial(streamed, start, length),
                data[start : start + length],
                f"ranged stream of {length} bytes from {start}",
            )


@_covers("ChunkBackend.has_many", "ChunkBackend.delete_many", "ChunkBackend.stats")
async def check_batches(harness: Harness) -> None:
    """``has_many``/``delete_many`` take large mixed batches, duplicates and generators."""
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        stored = await store_many(store, 40, seed=1000)
        absent = [digest(f"absent {n}".encode()) for n in range(40)]
        mixed = stored + absent + stored[:5]
        random.Random(7).shuffle(mixed)
        await expect_soon(
            harness, lambda: backend.has_many(iter(mixed)), set(stored), "has_many picks exactly the stored ids"
        )
        expect(await backend.has_many([]) == set(), "has_many of nothing")
        doomed = stored[:25]
        deleted = await backend.delete_many(c for c in doomed + doomed[:3] + absent[:5])
        expect(deleted == 25, f"delete_many counts each existing chunk once, got {deleted}")
        expect(await backend.delete_many([]) == 0, "delete_many of nothing")
        await expect_soon(
            harness, lambda: backend.has_many(stored), set(stored[25:]), "deleted chunks are gone, others stay"
        )
        sizes = [await backend.stat(c) for c in stored[25:]]
        await expect_soon(
            harness, backend.stats, BackendStats(chunks=15, bytes=sum(s or 0 for s in sizes)), "stats after deletes"
        )


@_covers("ChunkBackend.read")
async def check_corrupt_chunk_detected(harness: Harness) -> None:
    """Damaged bytes raise ``ChunkCorrupt`` and never come out complete and good-looking."""
    if harness.corrupt is None:
        raise NotApplicable("the harness has no corrupt hook: detection of damaged chunks is not checked")
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
            for budget in (0, 64 * MiB):  # the ranged path and the whole-chunk path of downloads
                served = bytearray()

                async def download(
                    chunk_id: ChunkId = chunk_id,
                    served: bytearray = served,
                    budget: int = budget,
                    size: int = len(data),
                ) -> None:
                    ranged = ChunkStore(backend, read_budget=budget)
                    async for piece in ranged.stream(chunk_id, size=size, start=0, length=size):
                        served.extend(piece)

                await expect_raises(ChunkCorrupt, download(), f"downloading a corrupt {len(data)}-byte chunk")
                expect(len(served) < len(data), "a download served a corrupt chunk in full")
        await expect_soon(
            harness, lambda: store.read_all(digest(healthy)), healthy, "an undamaged neighbour still reads"
        )


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
        await expect_soon(
            harness, lambda: backend.list_ids(None, 100), expected, "one listing entry per distinct chunk"
        )
        total = len(same) + len(racing) + sum(len(d) for d in others)
        await expect_soon(
            harness, backend.stats, BackendStats(chunks=len(expected), bytes=total), "one stored copy each"
        )
        await expect_soon(harness, lambda: store.read_all(digest(same)), same, "the contended chunk reads back")
        await expect_soon(harness, lambda: store.read_all(digest(racing)), racing, "the raced chunk reads back")
    await expect_no_leftovers(harness, "losing copies left staged data behind")


@_covers("ChunkWriter.commit_if_absent")
async def check_put_of_a_stored_chunk(harness: Harness) -> None:
    """A put of a stored chunk is reported as existing and stored once, whether the store asks
    first or, where ``blind_put_is_cheap``, puts blind. Then, on such a backend only,
    ``commit_if_absent`` itself: a new chunk is stored and it says so; on a stored id it writes
    nothing, says so, and keeps the staged bytes, to be committed after all or aborted."""
    data, other = content(MiB + 5, 70), content(300 * KiB, 71)
    chunk_id = digest(data)
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        stored = await store.put(pieces(other, 64 * KiB), expected_id=digest(other), expected_size=len(other))
        expect(not stored.existed, "a put of a new chunk does not report it as existing")
        await expect_soon(harness, lambda: store.read_all(digest(other)), other, "the new chunk reads back")
        again = await store.put(pieces(other, 64 * KiB), expected_id=digest(other), expected_size=len(other))
        expect(again.existed, "a put of a stored chunk reports it as existing")
        unnamed = await store.put(pieces(other, 100 * KiB))
        expect(unnamed.existed, "a put of a stored chunk without its id reports it as existing")
        await expect_soon(
            harness, backend.stats, BackendStats(chunks=1, bytes=len(other)), "a chunk put three times is stored once"
        )
        if backend.blind_put_is_cheap:
            first = await stage(backend, data, (256 * KiB,))
            expect(await first.commit_if_absent(chunk_id), "commit_if_absent of a new chunk says it stored it")
            await expect_soon(harness, lambda: read_backend(backend, chunk_id), data, "the new chunk is stored")
            refused = await stage(backend, data, (MiB,))
            expect(not await refused.commit_if_absent(chunk_id), "commit_if_absent of a stored chunk says so")
            await refused.abort()
            kept = await stage(backend, data, (MiB,))
            expect(not await kept.commit_if_absent(chunk_id), "commit_if_absent of a stored chunk says so")
            expect(await backend.delete_many([chunk_id]) == 1, "the stored copy is deleted")
            await kept.commit(chunk_id)  # the bytes the refused commit_if_absent kept
            await expect_soon(harness, lambda: read_backend(backend, chunk_id), data, "kept bytes committed later")
            await expect_soon(
                harness,
                backend.stats,
                BackendStats(chunks=2, bytes=len(data) + len(other)),
                "commit_if_absent stores one copy",
            )
    await expect_no_leftovers(harness, "puts of a stored chunk left staged data behind")


@_covers("ChunkBackend.read", "ChunkBackend.delete_many")
async def check_corrupt_chunk_replaced_by_a_good_put(harness: Harness) -> None:
    """A good put of content whose stored copy is corrupt replaces that copy (repair), whether the
    store asks first or puts blind: it is neither deduplicated onto nor stored twice."""
    if harness.corrupt is None:
        raise NotApplicable("the harness has no corrupt hook: repair of damaged chunks is not checked")
    data = content(512 * KiB + 3, 80)
    chunk_id = digest(data)
    async with opened(harness) as backend:
        await ChunkStore(backend).put_bytes(data)
    await harness.corrupt(chunk_id)
    async with opened(harness) as backend:
        repaired: list[ChunkId] = []
        store = ChunkStore(backend, on_repaired=repaired.append)
        await expect_raises(ChunkCorrupt, store.verify(chunk_id), "verify of the damaged chunk")
        result = await store.put(pieces(data, 64 * KiB), expected_id=chunk_id, expected_size=len(data))
        expect(not result.existed, "a good put onto a corrupt copy is not reported as deduplicated")
        expect(repaired == [chunk_id], f"the repair is reported once, got {len(repaired)}")
        await expect_soon(harness, lambda: store.read_all(chunk_id), data, "the good bytes replaced the corrupt ones")
        await expect_soon(harness, backend.stats, BackendStats(chunks=1, bytes=len(data)), "one copy after the repair")


@_covers("ChunkBackend.list_ids")
async def check_iteration_with_cursor(harness: Harness) -> None:
    """``list_ids`` pages in ascending byte order after a cursor; ``ChunkStore.iterate`` sees all."""
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        ids = sorted(await store_many(store, 30, seed=2000, size=100))
        # Once the listing has settled the rest of the check expects it to stay put.
        await expect_soon(harness, lambda: backend.list_ids(None, 1000), ids, "a full listing is sorted by id bytes")
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
        await expect_soon(
            harness, lambda: raises(KeyError, read_backend(backend, chunk_id)), True, "reading a deleted chunk"
        )
        await expect_soon(harness, lambda: backend.stat(chunk_id), None, "stat of a deleted chunk")
        await expect_soon(harness, lambda: backend.list_ids(None, 10), [digest(keep)], "listing after delete")
        await expect_soon(harness, backend.stats, BackendStats(chunks=1, bytes=len(keep)), "stats after delete")
        again = await store.put_bytes(data)
        expect(not again.existed, "a deleted chunk can be stored again")
        await expect_soon(harness, lambda: store.read_all(chunk_id), data, "a deleted chunk can be stored again")
    async with opened(harness) as backend:
        await expect_soon(
            harness, backend.stats, BackendStats(chunks=2, bytes=len(data) + len(keep)), "stats after reopen"
        )


@_covers("ChunkBackend.open", "ChunkBackend.close", "ChunkWriter.write")
async def check_crash_leftovers_ignored(harness: Harness) -> None:
    """Writes never committed (the process died) are invisible after reopening and reclaimed."""
    big, small = content(5 * MiB + 3, 21), content(3, 22)
    async with opened(harness) as backend:
        await ChunkStore(backend).put_bytes(content(100, 23))
        await stage(backend, big, (MiB,))
        await stage(backend, small, (3,))
        # Closing with writers neither committed nor aborted is what a crash leaves on disk.
    if harness.leftovers is not None:
        expect(await harness.leftovers() > 0, "the simulated crash left no staged data (check the hook)")
    async with opened(harness) as backend:
        expect(await backend.has_many([digest(big), digest(small)]) == set(), "uncommitted chunks are invisible")
        await expect_soon(
            harness,
            lambda: backend.list_ids(None, 10),
            [digest(content(100, 23))],
            "only the committed chunk is listed",
        )
        await expect_soon(harness, backend.stats, BackendStats(chunks=1, bytes=100), "stats ignore staged data")
    if harness.leftovers is not None:
        expect(await harness.leftovers() == 0, "staged data of the crashed writes was not reclaimed at open")
    async with opened(harness) as backend:
        result = await ChunkStore(backend).put_bytes(big)
        expect(not result.existed, "the store works after")
        await expect_soon(harness, lambda: read_backend(backend, digest(big)), big, "the store works after")
    await expect_no_leftovers(harness, "the store left staged data behind after the recovery")


@_covers("ChunkBackend.open", "ChunkBackend.close")
async def check_persistence(harness: Harness) -> None:
    """Committed chunks survive close and reopen through a new backend instance."""
    chunks = [content(size, 30 + n) for n, size in enumerate((0, 77, 2 * MiB + 1))]
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        for data in chunks:
            await store.put_bytes(data)
        before = BackendStats(chunks=len(chunks), bytes=sum(len(d) for d in chunks))
        await expect_soon(harness, backend.stats, before, "stats count the stored chunks")
    async with opened(harness) as backend:
        store = ChunkStore(backend)
        await expect_soon(harness, backend.stats, before, "stats survive a reopen")
        await expect_soon(
            harness, lambda: backend.list_ids(None, 10), sorted(digest(d) for d in chunks), "listing survives"
        )
        for data in chunks:
            await expect_soon(
                harness, partial(store.read_all, digest(data)), data, f"a {len(data)}-byte chunk survives"
            )


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
    await expect_no_leftovers(harness, "an aborted write left staged data behind")


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
        # The store looks the chunk up before a put: let the new chunk become visible first.
        await expect_soon(
            harness, lambda: backend.has_many([stored.chunk_id]), {stored.chunk_id}, "a stored chunk becomes visible"
        )
        again = await store.put(pieces(data, 64 * KiB), expected_id=stored.chunk_id, expected_size=len(data))
        expect(again.existed and again.chunk_id == stored.chunk_id, "a known chunk is recognised, not rewritten")
        await expect_soon(
            harness, backend.stats, BackendStats(chunks=1, bytes=len(data)), "a known chunk is stored once"
        )
    await expect_no_leftovers(harness, "refused puts left staged data behind")


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
    await expect_no_leftovers(harness, "a refused large put left staged data behind")


@_covers()
async def check_options_struct(harness: Harness) -> None:
    """The backend's ``Options`` is a ``BackendOptions`` struct that refuses unknown keys by name."""
    kind = type(harness.make()).Options
    expect(isinstance(kind, type) and issubclass(kind, BackendOptions), "Options is not a BackendOptions subclass")
    expect_refuses_unknown_key(kind, "backend Options")
