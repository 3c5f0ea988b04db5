"""tus upload sessions: byte offsets over the node's upload sessions and chunk store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from vault import errors
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref, incref
from vault.ids import new_id
from vault.meta import Txn
from vault.uploads.records import UPLOAD_CHUNKS, UPLOADS, ReceivedChunk, UploadSession, chunk_key
from vault.uploads.service import UploadService
from vault.uploads.usage import check_quota, get_usage, put_usage


class TusUploads:
    """The tus 1.0 view of upload sessions: byte offsets over variable-size pieces.

    A tus PATCH may stop at any byte, so each PATCH's bytes are stored as pieces (chunks of up
    to ``piece_size``, the last one short) appended in order; the offset is the sum of the pieces.
    """

    def __init__(self, uploads: UploadService) -> None:
        self.uploads = uploads
        self._locks: dict[str, trio.Lock] = {}

    @asynccontextmanager
    async def exclusive(self, upload_id: str) -> AsyncIterator[None]:
        """One PATCH at a time per upload (a retry may overlap a stalled earlier request); the
        lock is dropped once nobody holds or waits for it, so the table stays small."""
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = trio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(upload_id, None)

    async def create(
        self, user_id: str, device_id: str, *, name: str, folder: str, size: int, mime_type: str
    ) -> UploadSession:
        node = self.uploads.node
        quota = await self.uploads.quota_of(user_id)
        now = self.uploads.now
        upload = UploadSession(
            id=new_id("upload"),
            user_id=user_id,
            device_id=device_id,
            session=new_id("session"),
            local_id="",
            name=name,
            folder=folder,
            size=size,
            mime_type=mime_type,
            chunk_size=int(node.config.uploads.default_chunk_size),
            total_chunks=0,
            created_at=now,
            expires_at=now + float(node.config.uploads.session_ttl),
            via="tus",
        )

        def write(txn: Txn) -> None:
            usage = get_usage(txn, user_id)
            check_quota(usage, quota, size)
            usage.reserved += size
            put_usage(txn, user_id, usage)
            txn.put(UPLOADS, upload.id.encode(), upload)

        await node.meta.write(write)
        return upload

    def status(self, user_id: str, upload_id: str) -> tuple[UploadSession, int, int]:
        """(session, offset, next piece index); NOT_FOUND/410 for gone uploads."""
        with self.uploads.node.meta.read() as txn:
            upload = self.uploads.load(txn, user_id, upload_id)
            if upload.via != "tus" or upload.status == "aborted":
                raise errors.NotFound("No such upload")
            received = self.uploads.received(txn, upload_id)
        if upload.status == "expired" or (upload.status == "uploading" and upload.expires_at <= self.uploads.now):
            raise errors.UploadExpired()
        if upload.status == "completed":
            return upload, upload.size, len(received)
        return upload, sum(c.size for c in received.values()), len(received)

    async def append(self, user_id: str, upload_id: str, offset: int, pieces: list[tuple[ChunkId, int]]) -> int:
        """Record pieces stored at ``offset``; returns the new offset."""
        now = self.uploads.now

        def write(txn: Txn) -> int:
            upload = self.uploads.load(txn, user_id, upload_id)
            self.uploads.require_open(upload, now)
            received = self.uploads.received(txn, upload_id)
            current = sum(c.size for c in received.values())
            if current != offset:
                raise errors.Conflict("Upload-Offset does not match the upload's offset")
            index = len(received)
            for chunk_id, size in pieces:
                incref(txn, [chunk_id])
                txn.put(UPLOAD_CHUNKS, chunk_key(upload_id, index), ReceivedChunk(chunk_id, size, now))
                index += 1
                current += size
            return current

        new_offset: int = await self.uploads.node.meta.write(write)
        return new_offset

    async def truncate(self, user_id: str, upload_id: str, offset: int) -> None:
        """Forget the pieces recorded at or past ``offset`` (their references too)."""

        def write(txn: Txn) -> None:
            self.uploads.load(txn, user_id, upload_id)
            position = 0
            for index, chunk in sorted(self.uploads.received(txn, upload_id).items()):
                if position >= offset:
                    txn.delete(UPLOAD_CHUNKS, chunk_key(upload_id, index))
                    decref(txn, [ChunkId(chunk.chunk_id)])
                position += chunk.size

        await self.uploads.node.meta.write(write)
        self.uploads.running.forget(upload_id)
