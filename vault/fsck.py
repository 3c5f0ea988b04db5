"""Checking chunk storage: re-hash every stored chunk, and find referenced chunks that are gone.

Read-only, so it may run beside a live node: a chunk deleted between listing and reading is
simply no longer there, not a problem (unless something still references it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec
import trio

from vault.chunks import ChunkCorrupt, ChunkId, ChunkMissing, ChunkStore
from vault.chunks.refs import referenced_ids
from vault.meta import MetaStore

ProblemKind = Literal["corrupt", "missing", "unreadable"]
BATCH = 1000


class Problem(msgspec.Struct, frozen=True):
    kind: ProblemKind
    chunk_id: ChunkId
    detail: str


class FsckReport(msgspec.Struct, kw_only=True):
    checked: int = 0
    checked_bytes: int = 0
    referenced: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)


async def check_storage(
    meta: MetaStore,
    chunks: ChunkStore,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> FsckReport:
    """Verify every stored chunk (``progress(count, bytes)`` after each), then the references."""
    report = FsckReport()
    send, receive = trio.open_memory_channel[ChunkId](workers)

    async def list_all() -> None:
        async with send:
            async for chunk_id in chunks.iterate(batch=BATCH):
                await send.send(chunk_id)

    async def verify(receive: trio.MemoryReceiveChannel[ChunkId]) -> None:
        async with receive:
            async for chunk_id in receive:
                try:
                    size = await chunks.verify(chunk_id)
                except ChunkCorrupt as exc:
                    report.problems.append(Problem("corrupt", chunk_id, exc.reason))
                    size = await chunks.backend.stat(chunk_id) or 0
                except ChunkMissing:
                    continue  # deleted since it was listed
                except OSError as exc:
                    report.problems.append(Problem("unreadable", chunk_id, f"cannot be read: {exc}"))
                    size = 0
                report.checked += 1
                report.checked_bytes += size
                if progress is not None:
                    progress(report.checked, report.checked_bytes)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(list_all)
        for _ in range(workers):
            nursery.start_soon(verify, receive.clone())
        await receive.aclose()

    after: ChunkId | None = None
    while True:
        ids = await trio.to_thread.run_sync(_referenced_batch, meta, after)
        if not ids:
            break
        report.referenced += len(ids)
        present = await chunks.has_many(ids)
        report.problems.extend(
            Problem("missing", c, "referenced by a file or upload but not stored") for c in ids if c not in present
        )
        if len(ids) < BATCH:
            break
        after = ids[-1]
    report.problems.sort(key=lambda p: (p.kind, p.chunk_id))
    return report


def _referenced_batch(meta: MetaStore, after: ChunkId | None) -> list[ChunkId]:
    with meta.read() as txn:
        return referenced_ids(txn, after=after, limit=BATCH)
