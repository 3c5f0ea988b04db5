"""Chunk reference counts in the ``chunk_refs`` table: what keeps a chunk from garbage collection.

Key: the 32-byte chunk id; value: the count as 8 bytes big-endian. A chunk with no row is
unreferenced (a count never sits at zero). Files hold one reference per chunk they list, and an
upload takes one per chunk as it is received, handing it to the file on completion or dropping it
on abort or expiry. All functions work inside a caller's ``vault.meta.Txn``, so counting commits
atomically with the change that causes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from vault.chunks.ids import ChunkId
from vault.meta import RawTable, Txn

REFS_TABLE = RawTable("chunk_refs")
# Unreferenced chunks seen by the collector, with when (``vault.gc``); a new reference clears it.
CANDIDATES_TABLE = RawTable("gc_candidates")
_COUNT_SIZE = 8


def _decode(raw: bytes | None) -> int:
    return 0 if raw is None else int.from_bytes(raw, "big")


def refcount(txn: Txn, chunk_id: ChunkId) -> int:
    """How many references ``chunk_id`` has (0 when none)."""
    return _decode(txn.get_bytes(REFS_TABLE, chunk_id))


def is_referenced(txn: Txn, chunk_id: ChunkId) -> bool:
    return txn.get_bytes(REFS_TABLE, chunk_id) is not None


def incref(txn: Txn, chunk_ids: Iterable[ChunkId]) -> None:
    """Add one reference per occurrence in ``chunk_ids`` (a chunk listed twice gains two)."""
    for chunk_id, times in Counter(chunk_ids).items():
        count = refcount(txn, chunk_id) + times
        txn.put_bytes(REFS_TABLE, chunk_id, count.to_bytes(_COUNT_SIZE, "big"))
        # Referenced again: whatever grace period the collector had started is void.
        txn.delete_key(CANDIDATES_TABLE, chunk_id)


def decref(txn: Txn, chunk_ids: Iterable[ChunkId]) -> list[ChunkId]:
    """Drop one reference per occurrence; returns the ids whose count reached zero (now garbage).

    Dropping a reference that was never taken is a bookkeeping bug: it raises ``ValueError`` and,
    raised inside a ``MetaStore.write`` function, undoes that function's changes.
    """
    released: list[ChunkId] = []
    for chunk_id, times in Counter(chunk_ids).items():
        count = refcount(txn, chunk_id) - times
        if count < 0:
            raise ValueError(f"chunk {chunk_id.hex()} has fewer references than are being dropped")
        if count == 0:
            txn.delete_key(REFS_TABLE, chunk_id)
            released.append(chunk_id)
        else:
            txn.put_bytes(REFS_TABLE, chunk_id, count.to_bytes(_COUNT_SIZE, "big"))
    return released


def referenced_ids(txn: Txn, *, after: ChunkId | None = None, limit: int = 1000) -> list[ChunkId]:
    """Up to ``limit`` referenced chunk ids in ascending order, strictly after ``after``."""
    ids: list[ChunkId] = []
    for key in txn.keys(REFS_TABLE, start=after):
        if after is not None and key <= after:
            continue
        ids.append(ChunkId(key))
        if len(ids) >= limit:
            break
    return ids
