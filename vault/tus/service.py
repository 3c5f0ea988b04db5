"""tus uploads: byte offsets over the node's upload sessions, pieces over its chunk store.

A tus PATCH may stop at any byte, so each PATCH's bytes are stored as pieces (chunks of up to
the upload's chunk size, the last one short) appended in order; the offset is the sum of the
pieces. Pieces are accepted exactly as chunk PUTs are (``vault.uploads.intake``). What arrived
before a client went away is kept (tus semantics), unless the PATCH carried an
``Upload-Checksum``: a partial body cannot be verified, so nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from vault import errors
from vault.checksums import Hasher
from vault.chunks import ChunkMismatch, ChunkTooLarge
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref, incref
from vault.chunks.store import PutResult
from vault.ids import new_id
from vault.meta import Txn
from vault.offload import Offload
from vault.quota import check_quota, get_usage, put_usage
from vault.uploads import by_device
from vault.uploads.intake import BodyPieces
from vault.uploads.records import (
    UPLOAD_CHUNKS,
    UPLOADS,
    ReceivedChunk,
    UploadSession,
    chunk_key,
    load_session,
    read_session,
    received_chunks,
    require_open,
)
from vault.uploads.service import UploadService


class PatchBody(Protocol):
    """A PATCH body that ends quietly when the client goes away (``interrupted`` then says so)."""

    @property
    def interrupted(self) -> bool: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class UploadChecksum:
    """``Upload-Checksum``: the hasher to feed the body into and the digest it must give."""

    def __init__(self, hasher: Hasher, expected: bytes) -> None:
        self.hasher = hasher
        self.expected = expected


class ChecksumFailed(Exception):
    """The PATCH body does not match its ``Upload-Checksum`` (tus answers 460)."""


class TusService:
    def __init__(self, uploads: UploadService) -> None:
        self.uploads = uploads
        self.meta = uploads.meta
        self.intake = uploads.intake
        self.offload: Offload = uploads.offload
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
        quota = await self.uploads.quota_of(user_id)
        now = self.uploads.now
        config = self.uploads.config
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
            chunk_size=int(config.default_chunk_size),
            total_chunks=0,
            created_at=now,
            expires_at=now + float(config.session_ttl),
            via="tus",
        )

        cap = int(config.max_open_per_device)

        def write(txn: Txn) -> None:
            by_device.require_room(txn, user_id, device_id, 1, now, cap)
            usage = get_usage(txn, user_id)
            check_quota(usage, quota, size)
            usage.reserved += size
            put_usage(txn, user_id, usage)
            txn.put(UPLOADS, upload.id.encode(), upload)
            by_device.add(txn, upload)

        await self.meta.write(write)
        return upload

    async def status(self, user_id: str, upload_id: str) -> tuple[UploadSession, int]:
        """(session, offset); NOT_FOUND/410 for gone uploads."""
        upload, received = await self.offload.run(read_session, self.meta, user_id, upload_id)
        if upload.via != "tus" or upload.status == "aborted":
            raise errors.NotFound("No such upload")
        if upload.status == "expired" or (upload.status == "uploading" and upload.expires_at <= self.uploads.now):
            raise errors.UploadExpired()
        if upload.status == "completed":
            return upload, upload.size
        return upload, sum(c.size for c in received.values())

    async def receive(
        self, user_id: str, upload: UploadSession, offset: int, body: PatchBody, checksum: UploadChecksum | None
    ) -> int:
        """Store a PATCH body at ``offset``; returns the new offset (what arrived is kept even when
        ``body.interrupted``). Raises ``ChecksumFailed`` and keeps nothing on a checksum mismatch."""
        running = self.uploads.running
        trial = running.trial(upload.id, offset, with_sha256=False)
        pieces = BodyPieces(
            aiter(body),
            upload.size - offset,
            self.offload,
            hashers=[checksum.hasher] if checksum else (),
            too_long="PATCH body goes past Upload-Length",
        )
        stored: list[PutResult] = []
        new_offset = offset

        async def record(batch: list[PutResult]) -> None:
            nonlocal new_offset
            before = new_offset
            new_offset = await self._append(user_id, upload.id, before, batch)
            self.uploads.metrics.received_bytes.inc(new_offset - before)
            if trial is not None:
                running.accept(upload.id, trial, new_offset)

        while not pieces.exhausted:
            try:
                result = await self.intake.store(
                    pieces.piece(upload.chunk_size),
                    max_size=upload.chunk_size,
                    also=trial.hashers() if trial is not None else (),
                )
            except (ChunkTooLarge, ChunkMismatch):  # pragma: no cover - the splitter bounds pieces
                raise errors.ValidationError("malformed PATCH body") from None
            if result.size == 0:
                break
            if checksum is None:
                # Recorded as it lands: what arrived is kept (tus semantics), the offset advances
                # while a long PATCH goes on, and gc never sees a stored piece without a reference.
                await record([result])
            else:
                stored.append(result)
        if checksum is not None:
            if body.interrupted:
                return offset  # cannot verify a partial body: keep nothing
            if checksum.hasher.digest() != checksum.expected:
                raise ChecksumFailed()
            if stored:
                await record(stored)
        return new_offset

    async def _append(self, user_id: str, upload_id: str, offset: int, pieces: list[PutResult]) -> int:
        """Reference pieces stored at ``offset`` (taken back if gc reclaimed one meanwhile)."""
        now = self.uploads.now

        def write(txn: Txn) -> int:
            upload = load_session(txn, user_id, upload_id)
            require_open(upload, now)
            received = received_chunks(txn, upload_id)
            current = sum(c.size for c in received.values())
            if current != offset:
                raise errors.Conflict("Upload-Offset does not match the upload's offset")
            index = len(received)
            for piece in pieces:
                incref(txn, [piece.chunk_id])
                txn.put(UPLOAD_CHUNKS, chunk_key(upload_id, index), ReceivedChunk(piece.chunk_id, piece.size, now))
                index += 1
                current += piece.size
            return current

        def undo(txn: Txn) -> None:
            _truncate(txn, user_id, upload_id, offset)

        try:
            new_offset: int = await self.intake.reference(pieces, write, undo)
        except errors.ContentReclaimed:
            self.uploads.running.forget(upload_id)
            raise
        return new_offset


def _truncate(txn: Txn, user_id: str, upload_id: str, offset: int) -> None:
    """Forget the pieces recorded at or past ``offset`` (their references too)."""
    load_session(txn, user_id, upload_id)
    position = 0
    for index, chunk in sorted(received_chunks(txn, upload_id).items()):
        if position >= offset:
            txn.delete(UPLOAD_CHUNKS, chunk_key(upload_id, index))
            decref(txn, [ChunkId(chunk.chunk_id)])
        position += chunk.size
