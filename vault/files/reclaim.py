"""Purging what deleted files and replaced contents kept, once their retention has passed.

The node runs ``reclaim_expired`` every ``[files] reclaim_interval``. It reads what is due from the
time-ordered indexes (``trash_by_time``, ``versions_by_time``: only due entries are read, never the
files) in worker threads, ``batch`` at a time, and purges each batch in one write: the chunk
references are dropped (the garbage collector reclaims chunks left unreferenced, after its grace
period), the usage lowered, the records and manifests deleted. Purging is not a change a client
sees (the file was already deleted, or the version was not current): no journal entry, no feed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from vault.chunks.ids import ChunkId
from vault.files import trash, versions
from vault.meta import MetaStore, Txn
from vault.offload import Offload

BATCH = 500
D = TypeVar("D")


class ReclaimReport(msgspec.Struct, kw_only=True):
    """What one pass purged."""

    files: int = 0  # trashed files forgotten (with their kept versions)
    versions: int = 0  # expired earlier versions of files
    bytes: int = 0  # usage given back
    released: int = 0  # chunks left without any reference (garbage for the collector)


async def reclaim_expired(
    meta: MetaStore,
    *,
    now: float,
    trash_retention: float,
    version_retention: float,
    offload: Offload | None = None,
    batch: int = BATCH,
) -> ReclaimReport:
    """Purge trash entries deleted ``trash_retention`` or more before ``now`` and kept versions
    replaced ``version_retention`` or more before it."""
    offload = offload or Offload()
    report = ReclaimReport()
    while True:
        due_files = await offload.run(_read, meta, trash.due, now - trash_retention, batch)
        if due_files:
            done = await meta.write(_purger(trash.purge, due_files))
            report.files += done.count
            report.bytes += done.freed
            report.released += len(done.released)
        if len(due_files) < batch:
            break
    while True:
        due_versions = await offload.run(_read, meta, versions.due, now - version_retention, batch)
        if due_versions:
            done = await meta.write(_purger(versions.purge_due, due_versions))
            report.versions += done.count
            report.bytes += done.freed
            report.released += len(done.released)
        if len(due_versions) < batch:
            break
    return report


def _read(meta: MetaStore, due: Callable[..., list[D]], cutoff: float, limit: int) -> list[D]:
    with meta.read() as txn:
        return due(txn, cutoff, limit=limit)


class _Purged(msgspec.Struct):
    count: int = 0
    freed: int = 0
    released: list[ChunkId] = msgspec.field(default_factory=list)


def _purger(purge: Callable[[Txn, D], tuple[list[ChunkId], int] | None], items: list[D]) -> Callable[[Txn], _Purged]:
    def write(txn: Txn) -> _Purged:
        done = _Purged()
        for item in items:
            result = purge(txn, item)
            if result is not None:  # None: restored or purged meanwhile, only its index entry went
                done.count += 1
                done.freed += result[1]
                done.released += result[0]
        return done

    return write
