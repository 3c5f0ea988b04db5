"""Chunk reference counts: what keeps a chunk from being collected."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vault.chunks import ChunkId
from vault.chunks.refs import CANDIDATES_TABLE, REFS_TABLE, decref, incref, is_referenced, refcount, referenced_ids
from vault.meta import MetaStore, Txn


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[MetaStore]:
    store = MetaStore(tmp_path / "meta")
    await store.open()
    yield store
    await store.close()


def new_id() -> ChunkId:
    return ChunkId(os.urandom(32))


async def test_counts_rise_and_fall_and_report_what_became_garbage(meta: MetaStore) -> None:
    a, b = new_id(), new_id()
    await meta.write(lambda txn: incref(txn, [a, a, b]))
    with meta.read() as txn:
        assert (refcount(txn, a), refcount(txn, b)) == (2, 1)
        assert is_referenced(txn, a) and is_referenced(txn, b)
    assert await meta.write(lambda txn: decref(txn, [a, b])) == [b]
    assert await meta.write(lambda txn: decref(txn, [a])) == [a]
    with meta.read() as txn:
        assert refcount(txn, a) == refcount(txn, b) == 0
        assert not is_referenced(txn, a)
        # No row is left at zero: "not in chunk_refs" is what unreferenced means to gc and fsck.
        assert txn.get_bytes(REFS_TABLE, a) is None


async def test_count_is_stored_as_8_byte_big_endian(meta: MetaStore) -> None:
    chunk = new_id()
    await meta.write(lambda txn: incref(txn, [chunk] * 258))
    with meta.read() as txn:
        assert txn.get_bytes(REFS_TABLE, chunk) == (258).to_bytes(8, "big")


async def test_dropping_a_reference_never_taken_fails_and_changes_nothing(meta: MetaStore) -> None:
    kept, never = new_id(), new_id()
    await meta.write(lambda txn: incref(txn, [kept]))

    def bad(txn: Txn) -> list[ChunkId]:
        return decref(txn, [kept, never])

    with pytest.raises(ValueError, match=never.hex()):
        await meta.write(bad)
    with meta.read() as txn:
        assert refcount(txn, kept) == 1


async def test_a_new_reference_cancels_a_pending_collection(meta: MetaStore) -> None:
    chunk = new_id()
    await meta.write(lambda txn: txn.put_bytes(CANDIDATES_TABLE, chunk, b"\x00" * 8))
    await meta.write(lambda txn: incref(txn, [chunk]))
    with meta.read() as txn:
        assert txn.get_bytes(CANDIDATES_TABLE, chunk) is None


async def test_referenced_ids_pages_in_order(meta: MetaStore) -> None:
    ids = sorted(new_id() for _ in range(7))
    await meta.write(lambda txn: incref(txn, ids))
    with meta.read() as txn:
        assert referenced_ids(txn) == ids
        assert referenced_ids(txn, limit=3) == ids[:3]
        assert referenced_ids(txn, after=ids[2], limit=3) == ids[3:6]
        assert referenced_ids(txn, after=ids[-1]) == []
