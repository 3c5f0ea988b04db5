"""Reclaiming chunks that nothing references: mark and sweep with a grace period.

A chunk is garbage when no row in ``chunk_refs`` names it (``vault.chunks.refs``). On a stopped
node (``vault gc``) that is the whole story and ``grace=0`` deletes at once. A running node must
also spare chunks an upload has just stored but not yet referenced, so its periodic collection
passes a grace period: the first pass that finds a chunk unreferenced records when
(``gc_candidates``), and a later pass deletes it only once it has been unreferenced for ``grace``
seconds and still is. Taking a reference clears the record (``refs.incref``), restarting the clock.

The last check and the delete are not one atomic step across the metadata and chunk stores: a
caller that runs beside uploads passes ``guard``, a lock its upload path also holds between
"this chunk is already stored" and taking its reference.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import msgspec

from vault.chunks import ChunkId, ChunkStore
from vault.chunks.refs import CANDIDATES_TABLE, is_referenced
from vault.meta import MetaStore, Txn
from vault.offload import Offload

_SINCE = struct.Struct(">d")
BATCH = 1000


class GcReport(msgspec.Struct, kw_only=True):
    """What one collection found and did."""

    scanned: int = 0
    unreferenced: int = 0
    # Unreferenced for at least the grace period: what a deleting run removes.
    reclaimable: int = 0
    reclaimable_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0


async def collect_garbage(
    meta: MetaStore,
    chunks: ChunkStore,
    *,
    now: float,
    grace: float = 0.0,
    delete: bool = False,
    guard: AbstractAsyncContextManager[object] | None = None,
    batch: int = BATCH,
    offload: Offload | None = None,
) -> GcReport:
    """One pass over the chunk store; deletes only with ``delete``, and never writes otherwise
    unless ``grace`` > 0 (then unreferenced chunks are marked as candidates)."""
    report = GcReport()
    offload = offload or Offload()
    cursor: ChunkId | None = None
    while True:
        ids = await chunks.backend.list_ids(cursor, batch)
        if not ids:
            break
        cursor = ids[-1]
        report.scanned += len(ids)
        unreferenced, since = await offload.run(_unreferenced, meta, ids)
        report.unreferenced += len(unreferenced)
        if grace > 0:
            fresh = [c for c in unreferenced if c not in since]
            if fresh:
                await meta.write(_marker(fresh, now))
            due = [c for c in unreferenced if c in since and now - since[c] >= grace]
        else:
            due = unreferenced
        sizes = {c: size for c in due if (size := await chunks.backend.stat(c)) is not None}
        report.reclaimable += len(sizes)
        report.reclaimable_bytes += sum(sizes.values())
        if delete and sizes:
            async with guard if guard is not None else contextlib.nullcontext():
                confirmed = await meta.write(_confirmer(list(sizes), now, grace))
                report.deleted += await chunks.delete_many(confirmed)
            report.deleted_bytes += sum(sizes[c] for c in confirmed)
        if len(ids) < batch:
            break
    if grace > 0 or delete:
        await _forget_vanished(meta, chunks, batch, offload)
    return report


def _unreferenced(meta: MetaStore, ids: list[ChunkId]) -> tuple[list[ChunkId], dict[ChunkId, float]]:
    with meta.read() as txn:
        unreferenced = [c for c in ids if not is_referenced(txn, c)]
        since = {}
        for chunk_id in unreferenced:
            raw = txn.get_bytes(CANDIDATES_TABLE, chunk_id)
            if raw is not None:
                since[chunk_id] = _SINCE.unpack(raw)[0]
    return unreferenced, since


def _marker(ids: list[ChunkId], now: float) -> Callable[[Txn], None]:
    def mark(txn: Txn) -> None:
        for chunk_id in ids:
            # Re-checked inside the write: a reference taken since the read wins.
            if not is_referenced(txn, chunk_id) and txn.get_bytes(CANDIDATES_TABLE, chunk_id) is None:
                txn.put_bytes(CANDIDATES_TABLE, chunk_id, _SINCE.pack(now))

    return mark


def _confirmer(ids: list[ChunkId], now: float, grace: float) -> Callable[[Txn], list[ChunkId]]:
    """The ids still unreferenced (and, with a grace period, still marked long enough)."""

    def confirm(txn: Txn) -> list[ChunkId]:
        doomed = []
        for chunk_id in ids:
            if is_referenced(txn, chunk_id):
                continue
            raw = txn.get_bytes(CANDIDATES_TABLE, chunk_id)
            if grace > 0 and (raw is None or now - _SINCE.unpack(raw)[0] < grace):
                continue
            if raw is not None:
                txn.delete_key(CANDIDATES_TABLE, chunk_id)
            doomed.append(chunk_id)
        return doomed

    return confirm


async def _forget_vanished(meta: MetaStore, chunks: ChunkStore, batch: int, offload: Offload) -> None:
    """Drop candidate records of chunks no longer stored (deleted by an earlier pass or by hand)."""
    start: bytes | None = None
    while True:
        keys = await offload.run(_candidate_keys, meta, start, batch)
        if not keys:
            return
        present = await chunks.has_many(keys)
        gone = [k for k in keys if k not in present]
        if gone:

            def forget(txn: Txn, gone: list[ChunkId] = gone) -> None:
                for chunk_id in gone:
                    txn.delete_key(CANDIDATES_TABLE, chunk_id)

            await meta.write(forget)
        if len(keys) < batch:
            return
        start = keys[-1] + b"\x00"


def _candidate_keys(meta: MetaStore, start: bytes | None, limit: int) -> list[ChunkId]:
    keys: list[ChunkId] = []
    with meta.read() as txn:
        for key in txn.keys(CANDIDATES_TABLE, start=start):
            keys.append(ChunkId(key))
            if len(keys) >= limit:
                break
    return keys
