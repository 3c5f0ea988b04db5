"""Uploads: deduplicated by checksum before a byte is sent, chunked, several chunks in flight,
each chunk retried with backoff, and resumable after the process is killed.

The flow is the node's: ``upload/init`` (answers ``exists`` when the account already holds the
content: nothing is sent), a ``PUT`` per chunk with ``X-Chunk-Checksum``, then ``complete`` with
the whole file's checksum. The upload id is written to the state as soon as the node gives it; a
later run with the same content asks the node which chunks it holds (``GET upload/{id}``) and
sends only the missing ones. Many small files share one ``init`` (up to 1,000 a request), and a
file that is one chunk goes in one ``PUT ...?complete=true``, which completes it against init's
checksum: that is the small-file path, one request a file after the batch's ``init``. The node's
``POST upload/file`` is not used: it learns that the account already holds a file only after its
bytes were sent.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from vault_client import wire
from vault_client.errors import Conflict, NodeError, NotFound, UploadExpired
from vault_client.hashing import checksum_of_file, read_range_blocking
from vault_client.progress import NoProgress, Progress
from vault_client.session import Session
from vault_client.state import State
from vault_client.tasks import open_nursery

DEFAULT_CHUNK = 8 * 1024 * 1024
INIT_BATCH = 1000  # files per upload/init request (the node's limit)


@dataclass
class UploadItem:
    """One local file to upload to ``folder``/``name``; ``key`` names it in the state for resume."""

    path: Path
    folder: str
    name: str
    checksum: str | None = None
    key: str | None = None

    @property
    def state_key(self) -> str:
        return self.key or f"push:{self.path.resolve()}->{self.folder.rstrip('/')}/{self.name}"


class Uploader:
    def __init__(
        self,
        session: Session,
        state: State,
        *,
        parallel: int = 4,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
        wifi_only: bool = False,
    ) -> None:
        self.session = session
        self.state = state
        self.parallel = max(1, parallel)
        self.chunk_size = chunk_size
        self.progress: Progress = progress or NoProgress()
        self.wifi_only = wifi_only
        # Chunk streams in flight across every file of this client: more than a few make a small
        # node (fsync per chunk, two cores) slower, not faster (bench/README.md, client).
        self._streams = trio.CapacityLimiter(self.parallel)
        self.bytes_sent = 0  # chunk bytes that reached the node (for tests and the benchmark)
        self.deduplicated = 0  # files the node already held

    async def upload(self, item: UploadItem) -> wire.FileEntry:
        (entry,) = await self.upload_many([item])
        return entry

    async def upload_many(self, items: list[UploadItem], *, files_in_flight: int = 4) -> list[wire.FileEntry]:
        """Upload every item; answers their file entries in order."""
        for item in items:
            if item.checksum is None:
                item.checksum = await checksum_of_file(item.path)
        results: list[wire.FileEntry | None] = [None] * len(items)
        fresh: list[int] = []
        for i, item in enumerate(items):
            resumed = await self._resume(item)
            if resumed is not None:
                results[i] = resumed
            else:
                fresh.append(i)
        for start in range(0, len(fresh), INIT_BATCH):
            batch = fresh[start : start + INIT_BATCH]
            planned = await self._init([items[i] for i in batch])
            limiter = trio.CapacityLimiter(files_in_flight)

            async def one(i: int, plan: wire.PlannedFile, limiter: trio.CapacityLimiter = limiter) -> None:
                async with limiter:
                    results[i] = await self._finish_planned(items[i], plan)

            async with open_nursery() as nursery:
                for i, plan in zip(batch, planned, strict=True):
                    nursery.start_soon(one, i, plan)
        return [r for r in results if r is not None]

    async def _init(self, items: list[UploadItem]) -> list[wire.PlannedFile]:
        files = []
        for n, item in enumerate(items):
            size = item.path.stat().st_size
            files.append(
                wire.InitFile(
                    local_id=str(n),
                    name=item.name,
                    size=size,
                    mime_type=mimetypes.guess_type(item.name)[0] or "application/octet-stream",
                    folder=item.folder,
                    checksum=item.checksum,
                )
            )
        body = wire.InitRequest(
            files=files, upload_options=wire.UploadOptions(wifi_only=self.wifi_only, chunk_size=self.chunk_size)
        )
        answer: wire.InitResponse = await self.session.call(wire.POST_UPLOAD_INIT, body)
        by_local = {p.local_id: p for p in answer.files}
        return [by_local[str(n)] for n in range(len(items))]

    async def _finish_planned(self, item: UploadItem, plan: wire.PlannedFile) -> wire.FileEntry:
        if plan.status == "exists":
            self.deduplicated += 1
            if plan.file is not None:
                return plan.file
            assert plan.file_id is not None
            entry: wire.FileResponse = await self.session.call(wire.GET_FILES_FILE_ID, path={"file_id": plan.file_id})
            return entry.file
        return await self.send_planned(item, plan)

    async def send_planned(self, item: UploadItem, plan: wire.PlannedFile) -> wire.FileEntry:
        """Send an upload the node planned (``upload/init``, or ``uploadRequired`` from sync)."""
        assert plan.upload_id is not None and item.checksum is not None
        size = item.path.stat().st_size
        self.state.put_upload(item.state_key, plan.upload_id, item.checksum, size)
        chunk_size = plan.chunk_size or self.chunk_size
        missing = list(range(plan.total_chunks))
        return await self._send(item, plan.upload_id, size, chunk_size, missing)

    async def _resume(self, item: UploadItem) -> wire.FileEntry | None:
        """Carry on with an upload a killed run began for this very content, from the node's
        own view of what it holds; ``None`` when there is none to resume."""
        assert item.checksum is not None
        size = item.path.stat().st_size
        upload_id = self.state.open_upload(item.state_key, item.checksum, size)
        if upload_id is None:
            return None
        try:
            status: wire.UploadState = await self.session.call(wire.GET_UPLOAD_UPLOAD_ID, path={"upload_id": upload_id})
        except (NotFound, UploadExpired):
            self.state.drop_upload(item.state_key)
            return None
        if status.status == "completed" and status.file_id:
            self.state.drop_upload(item.state_key)
            found: wire.FileResponse = await self.session.call(wire.GET_FILES_FILE_ID, path={"file_id": status.file_id})
            return found.file
        if status.status != "uploading":
            self.state.drop_upload(item.state_key)
            return None
        return await self._send(item, upload_id, size, status.chunk_size, status.missing_chunks, resumed=status)

    async def _send(
        self,
        item: UploadItem,
        upload_id: str,
        size: int,
        chunk_size: int,
        missing: list[int],
        resumed: wire.UploadState | None = None,
    ) -> wire.FileEntry:
        key = item.state_key
        self.progress.start(key, item.name, size)
        if resumed is not None:
            self.progress.advance(key, resumed.bytes_received)
        assert item.checksum is not None
        request = wire.CompleteRequest(upload_id=upload_id, checksum=item.checksum)
        # Every chunk sent in this run and acknowledged: complete at once. After a resume the
        # node's own view decides (its lists stop at 1,000), and so it does when complete says
        # chunks are missing (one that gc raced, say).
        trust_acks = resumed is None
        try:
            while True:
                if trust_acks and len(missing) == 1:
                    # The only chunk left in a run that sent the others: it completes the file.
                    # Without a file in the receipt the node lacks others; a 409 is a retry after
                    # a lost answer finding it complete already. Either way its view decides.
                    try:
                        receipt = await self._put_chunk(item, upload_id, missing[0], size, chunk_size, complete=True)
                    except Conflict:
                        receipt = None
                    if receipt is not None and receipt.file is not None:
                        self.state.drop_upload(key)
                        return receipt.file
                    missing, trust_acks = [], False
                await self._send_chunks(item, upload_id, size, chunk_size, missing)
                if trust_acks:
                    try:
                        done: wire.CompleteResponse = await self.session.call(wire.POST_UPLOAD_COMPLETE, request)
                        break
                    except Conflict:
                        trust_acks = False
                status: wire.UploadState = await self.session.call(
                    wire.GET_UPLOAD_UPLOAD_ID, path={"upload_id": upload_id}
                )
                if status.missing_count == 0:
                    done = await self.session.call(wire.POST_UPLOAD_COMPLETE, request)
                    break
                missing = status.missing_chunks
        finally:
            self.progress.finish(key)
        self.state.drop_upload(key)
        return done.file

    async def _send_chunks(
        self, item: UploadItem, upload_id: str, size: int, chunk_size: int, indexes: list[int]
    ) -> None:
        send, receive = trio.open_memory_channel[int](len(indexes) or 1)
        for index in indexes:
            send.send_nowait(index)
        send.close()

        async def worker() -> None:
            async for index in receive:
                async with self._streams:
                    await self._put_chunk(item, upload_id, index, size, chunk_size)

        async with open_nursery() as nursery:
            for _ in range(min(self.parallel, len(indexes))):
                nursery.start_soon(worker)

    async def _put_chunk(
        self, item: UploadItem, upload_id: str, index: int, size: int, chunk_size: int, *, complete: bool = False
    ) -> wire.ChunkReceipt:
        start = index * chunk_size
        length = max(0, min(size, start + chunk_size) - start)
        data, piece_sum = await trio.to_thread.run_sync(read_range_blocking, item.path, start, length)
        key = item.state_key
        url = wire.PUT_UPLOAD_UPLOAD_ID_CHUNKS_INDEX.path.replace("{upload_id}", upload_id).replace(
            "{index}", str(index)
        )

        params = {"complete": "true"} if complete else None

        async def put(auth: dict[str, str]) -> wire.ChunkReceipt:
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                self.progress.advance(key, n)

            headers = {
                **auth,
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
                "X-Chunk-Checksum": piece_sum,
            }
            try:
                response = await self.session.http.put(
                    url, content=self.session.body(data, count), headers=headers, params=params
                )
                receipt: wire.ChunkReceipt = self.session.decode(wire.PUT_UPLOAD_UPLOAD_ID_CHUNKS_INDEX, response)
            except BaseException:
                self.progress.advance(key, -sent)  # it goes again from the start
                raise
            self.bytes_sent += len(data)
            return receipt

        receipt: wire.ChunkReceipt = await self.session.authorized(True, put)
        return receipt


def upload_items(
    paths: list[Path], folder: str, on_skip: Callable[[Path, str], None] | None = None
) -> list[UploadItem]:
    """Files to push: each path (a folder recursively, its tree kept below ``folder``)."""
    items: list[UploadItem] = []
    base = folder.rstrip("/") or ""
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                rel = Path(dirpath).relative_to(path.parent)
                target = base + "/" + rel.as_posix()
                for name in sorted(filenames):
                    items.append(UploadItem(Path(dirpath) / name, target, name))
        elif path.is_file():
            items.append(UploadItem(path, base or "/", path.name))
        elif on_skip is not None:
            on_skip(path, "not a file or folder")
    return items


__all__ = ["NodeError", "UploadItem", "Uploader", "upload_items"]
