"""Garbage collection's mark and sweep: a grace period for a running node, none for the CLI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from vault_backends.fs_backend import FsBackend

from vault.chunks import ChunkId, ChunkStore
from vault.chunks.refs import CANDIDATES_TABLE, decref, incref
from vault.gc import collect_garbage
from vault.meta import MetaStore

HOUR = 3600.0


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[MetaStore, ChunkStore]]:
    meta, chunks = MetaStore(tmp_path / "meta"), ChunkStore(FsBackend(tmp_path / "chunks", {}))
    await meta.open()
    await chunks.open()
    yield meta, chunks
    await chunks.close()
    await meta.close()


async def store(chunks: ChunkStore, count: int) -> list[ChunkId]:
    return [(await chunks.put_bytes(os.urandom(1000 + n))).chunk_id for n in range(count)]


async def stored(chunks: ChunkStore) -> set[ChunkId]:
    return {c async for c in chunks.iterate()}


async def test_without_grace_unreferenced_chunks_go_at_once(stores: tuple[MetaStore, ChunkStore]) -> None:
    meta, chunks = stores
    keep, drop = await store(chunks, 2), await store(chunks, 3)
    await meta.write(lambda txn: incref(txn, keep))
    report = await collect_garbage(meta, chunks, now=0, delete=True)
    assert (report.scanned, report.unreferenced, report.deleted) == (5, 3, 3)
    assert report.deleted_bytes == sum(1000 + n for n in range(3))
    assert await stored(chunks) == set(keep)
    assert drop  # deleted above


async def test_a_dry_run_deletes_and_records_nothing(stores: tuple[MetaStore, ChunkStore]) -> None:
    meta, chunks = stores
    ids = await store(chunks, 4)
    report = await collect_garbage(meta, chunks, now=0, delete=False)
    assert (report.reclaimable, report.deleted) == (4, 0)
    assert await stored(chunks) == set(ids)
    with meta.read() as txn:
        assert txn.count(CANDIDATES_TABLE) == 0


async def test_grace_period_spares_young_garbage_and_late_references(
    stores: tuple[MetaStore, ChunkStore],
) -> None:
    meta, chunks = stores
    garbage, rescued = await store(chunks, 2), await store(chunks, 1)
    start = 1_000_000.0

    first = await collect_garbage(meta, chunks, now=start, grace=HOUR, delete=True)
    assert (first.unreferenced, first.deleted) == (3, 0)
    # An upload references a chunk it stored just before the first pass.
    await meta.write(lambda txn: incref(txn, rescued))
    early = await collect_garbage(meta, chunks, now=start + HOUR - 1, grace=HOUR, delete=True)
    assert early.deleted == 0
    due = await collect_garbage(meta, chunks, now=start + HOUR, grace=HOUR, delete=True)
    assert due.deleted == 2
    assert await stored(chunks) == set(rescued)
    assert garbage


async def test_a_chunk_dropped_later_gets_a_fresh_grace_period(stores: tuple[MetaStore, ChunkStore]) -> None:
    meta, chunks = stores
    (chunk,) = await store(chunks, 1)
    await collect_garbage(meta, chunks, now=0, grace=HOUR, delete=True)  # marked at 0
    await meta.write(lambda txn: incref(txn, [chunk]))  # referenced: the mark is void
    await meta.write(lambda txn: decref(txn, [chunk]))  # unreferenced again at about 2 h
    later = await collect_garbage(meta, chunks, now=2 * HOUR, grace=HOUR, delete=True)
    assert later.deleted == 0  # marked again now, not at 0
    final = await collect_garbage(meta, chunks, now=3 * HOUR, grace=HOUR, delete=True)
    assert final.deleted == 1
    with meta.read() as txn:
        assert txn.count(CANDIDATES_TABLE) == 0
