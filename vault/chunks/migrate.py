"""Copying every chunk from one chunk store to another (``vault migrate-chunks``).

Each chunk is read through the source store (verified against its id as it streams) and put
into the destination with its expected id and size (hashed again on the way in, so a chunk
damaged anywhere between the two never lands). Chunks the destination already holds are
skipped, which makes an interrupted run resume where it stopped and a second run a check that
nothing is missing. The source is never changed.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import trio

from vault.chunks.ids import ChunkId
from vault.chunks.store import ChunkCorrupt, ChunkMissing, ChunkStore

BATCH = 1000


class MigrateReport(msgspec.Struct, kw_only=True):
    seen: int = 0
    seen_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    present: int = 0
    failed: list[tuple[ChunkId, str]] = msgspec.field(default_factory=list)


async def migrate_chunks(
    source: ChunkStore,
    destination: ChunkStore,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
    batch: int = BATCH,
) -> MigrateReport:
    """Copy what ``destination`` lacks of ``source``; ``progress(chunks, bytes)`` after each chunk."""
    report = MigrateReport()
    send, receive = trio.open_memory_channel[ChunkId](workers)

    def advance(size: int) -> None:
        report.seen += 1
        report.seen_bytes += size
        if progress is not None:
            progress(report.seen, report.seen_bytes)

    async def plan() -> None:
        async with send:
            cursor: ChunkId | None = None
            while True:
                ids = await source.backend.list_ids(cursor, batch)
                if not ids:
                    return
                cursor = ids[-1]
                there = await destination.has_many(ids)
                for chunk_id in ids:
                    if chunk_id in there:
                        report.present += 1
                        advance(await destination.backend.stat(chunk_id) or 0)
                    else:
                        await send.send(chunk_id)
                if len(ids) < batch:
                    return

    async def copy(receive: trio.MemoryReceiveChannel[ChunkId]) -> None:
        async with receive:
            async for chunk_id in receive:
                try:
                    size = await source.backend.stat(chunk_id)
                    if size is None:
                        raise ChunkMissing(chunk_id.hex())
                    stream = await source.get(chunk_id, expected_size=size)
                    await destination.put(stream, expected_id=chunk_id, expected_size=size)
                except ChunkMissing:
                    report.failed.append((chunk_id, "listed by the source but gone when read"))
                    continue
                except ChunkCorrupt as exc:
                    report.failed.append((chunk_id, f"corrupt in the source: {exc.reason}"))
                    continue
                report.copied += 1
                report.copied_bytes += size
                advance(size)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(plan)
        for _ in range(workers):
            nursery.start_soon(copy, receive.clone())
        await receive.aclose()
    return report
