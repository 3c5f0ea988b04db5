"""The conformance kit itself: hooks a store cannot offer, and stores that settle over time."""

from __future__ import annotations

import unittest
from collections.abc import AsyncIterator, Iterable

import pytest
import trio
import trio.testing

from vault.chunks.backend import BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.conformance import (
    CHECKS,
    Check,
    Harness,
    NotApplicable,
    check_abort_discards,
    check_corrupt_chunk_detected,
    check_name,
    check_round_trip,
    memory_harness,
    run_all,
    run_check,
)
from vault.chunks.ids import ChunkId
from vault.chunks.memory import MemoryBackend, MemoryStorage
from vault.chunks.wrappers import BackendWrapper

# The checks that count staged leftovers (some only in their last assertion).
USES_LEFTOVERS = {
    "concurrent_puts",
    "crash_leftovers_ignored",
    "abort_discards",
    "store_mismatch_leaves_nothing",
    "too_large",
    "put_of_a_stored_chunk",
}
# The checks that damage a stored chunk.
USES_CORRUPT = {"corrupt_chunk_detected", "corrupt_chunk_replaced_by_a_good_put"}


def object_store_like(storage: MemoryStorage) -> Harness:
    """A store that can neither damage its own objects nor count staged uploads."""
    return Harness(make=lambda: MemoryBackend(storage=storage), corrupt=None, leftovers=None)


def test_missing_hooks_make_checks_not_applicable_never_passed() -> None:
    outcomes = trio.run(run_all, lambda: object_store_like(MemoryStorage()))
    skipped = {name for name, reason in outcomes.items() if reason is not None}
    assert skipped == USES_LEFTOVERS | USES_CORRUPT
    assert all("no corrupt hook" in (outcomes[name] or "") for name in USES_CORRUPT)
    assert all("no leftovers hook" in (outcomes[name] or "") for name in USES_LEFTOVERS)


def test_with_every_hook_nothing_is_skipped() -> None:
    outcomes = trio.run(run_all, memory_harness)
    assert set(outcomes) == {check_name(check) for check in CHECKS}
    assert all(reason is None for reason in outcomes.values())


def test_not_applicable_is_a_skip_for_test_runners() -> None:
    """A ``unittest.SkipTest``: pytest and unittest report a synchronous ``run_check`` as skipped."""
    assert issubclass(NotApplicable, unittest.SkipTest)
    with pytest.raises(NotApplicable, match="no corrupt hook"):
        run_check(check_corrupt_chunk_detected, object_store_like(MemoryStorage()))


def test_a_check_without_its_leftovers_hook_still_runs_the_rest() -> None:
    """The leftover count comes last: a defect before it fails the check, it is not skipped."""

    class Miscounting(MemoryBackend):
        async def stats(self) -> BackendStats:
            real = await super().stats()
            return BackendStats(chunks=real.chunks + 1, bytes=real.bytes)

    storage = MemoryStorage()
    harness = Harness(make=lambda: Miscounting(storage=storage), corrupt=None, leftovers=None)
    with pytest.raises(AssertionError, match="stats after abort"):
        run_check(check_abort_discards, harness)
    with pytest.raises(NotApplicable, match="everything else passed"):
        run_check(check_abort_discards, object_store_like(MemoryStorage()))


# -- eventually consistent stores ----------------------------------------------------------------


class Lagging(BackendWrapper):
    """New chunks stay invisible for ``lag`` seconds, as in an eventually consistent object store."""

    def __init__(self, inner: ChunkBackend, lag: float) -> None:
        super().__init__(inner)
        self.lag = lag
        self.born: dict[ChunkId, float] = {}

    def hidden(self, chunk_id: ChunkId) -> bool:
        born = self.born.get(chunk_id)
        return born is not None and trio.current_time() < born + self.lag

    async def begin_put(self) -> ChunkWriter:
        return _LaggingWriter(self, await self.inner.begin_put())

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        if self.hidden(chunk_id):
            raise KeyError(chunk_id.hex())
        async for piece in self.inner.read(chunk_id):
            yield piece

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        return {c for c in await self.inner.has_many(chunk_ids) if not self.hidden(c)}

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        ids = await self.inner.list_ids(after, limit + len(self.born))
        return [c for c in ids if not self.hidden(c)][: max(limit, 0)]

    async def stat(self, chunk_id: ChunkId) -> int | None:
        return None if self.hidden(chunk_id) else await self.inner.stat(chunk_id)

    async def stats(self) -> BackendStats:
        total = await self.inner.stats()
        hidden = [c for c in self.born if self.hidden(c)]
        sizes = [await self.inner.stat(c) or 0 for c in hidden]
        return BackendStats(chunks=total.chunks - len(hidden), bytes=total.bytes - sum(sizes))

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        doomed = list(chunk_ids)
        for chunk_id in doomed:
            self.born.pop(chunk_id, None)
        return await self.inner.delete_many(doomed)


class _LaggingWriter(ChunkWriter):
    def __init__(self, owner: Lagging, inner: ChunkWriter) -> None:
        self.owner, self.inner = owner, inner

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def commit(self, chunk_id: ChunkId) -> None:
        new = not await self.owner.inner.has_many([chunk_id])
        await self.inner.commit(chunk_id)
        if new:
            self.owner.born[chunk_id] = trio.current_time()

    async def abort(self) -> None:
        await self.inner.abort()


def lagging(retries: int, settle: float) -> Harness:
    return memory_harness(lambda backend: Lagging(backend, lag=2.0), retries=retries, settle=settle)


@pytest.mark.parametrize("check", CHECKS, ids=check_name)
def test_settle_and_retries_let_an_eventually_consistent_store_pass(check: Check) -> None:
    run_check(check, lagging(retries=5, settle=0.5), clock=trio.testing.MockClock(autojump_threshold=0))


def test_without_retries_the_same_store_fails_read_after_write() -> None:
    with pytest.raises(AssertionError, match="stat of a 0-byte chunk: got None"):
        run_check(check_round_trip, lagging(retries=0, settle=0.0), clock=trio.testing.MockClock(autojump_threshold=0))


def test_too_few_retries_fail_and_say_how_often_they_tried() -> None:
    with pytest.raises(AssertionError, match="after 3 tries"):
        run_check(check_round_trip, lagging(retries=2, settle=0.1), clock=trio.testing.MockClock(autojump_threshold=0))
