"""Upload sessions: init, chunk receipt, progress, complete, abort and expiry.

Nothing is visible until verified and durable: a chunk is acknowledged only after the chunk
store committed it and its receipt is in metadata; a file exists only after every chunk was
re-read, verified, and the whole content matched the client's checksum.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from vault import errors
from vault.checksums import Checksum, Hasher, new_hasher, parse_checksum
from vault.chunks import ChunkCorrupt, ChunkMismatch, ChunkMissing, ChunkTooLarge
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref, incref
from vault.clock import parse_rfc3339, rfc3339
from vault.files import service as files
from vault.files.paths import normalize_folder, normalize_mime, normalize_name
from vault.files.records import ChunkRef, FileRecord, file_entry
from vault.ids import new_id
from vault.meta import Txn
from vault.uploads.api_types import (
    ChunkReceipt,
    EchoedOptions,
    InitFile,
    InitRequest,
    InitResponse,
    PlannedChunk,
    PlannedFile,
    UploadState,
)
from vault.uploads.expiry import expire_sessions, release_session
from vault.uploads.plan import chunk_range, total_chunks
from vault.uploads.records import (
    UPLOAD_CHUNKS,
    UPLOADS,
    ReceivedChunk,
    UploadSession,
    chunk_key,
    chunk_prefix,
    index_of,
)
from vault.uploads.running import RunningDigests
from vault.uploads.usage import check_quota, get_usage, put_usage

if TYPE_CHECKING:
    from vault.node import Node

log = logging.getLogger(__name__)

QuotaOf = Callable[[str], Awaitable[int]]
# Called with (txn, session, file or None, error or None, now) inside the finishing transaction.
CompletionHook = Callable[[Txn, UploadSession, FileRecord | None, str | None, float], None]


class UploadService:
    def __init__(self, node: Node, quota_of: QuotaOf, on_complete: CompletionHook | None = None) -> None:
        self.node = node
        self.quota_of = quota_of
        self.on_complete = on_complete
        self.running = RunningDigests()

    @property
    def now(self) -> float:
        return float(self.node.clock.now())

    # -- init ----------------------------------------------------------------------------------

    async def init(self, user_id: str, device_id: str, req: InitRequest, base_url: str) -> InitResponse:
        chunk_size = req.uploadOptions.chunkSize or int(self.node.config.uploads.default_chunk_size)
        ttl = float(self.node.config.uploads.session_ttl)
        checked = [self._check_file(i, f) for i, f in enumerate(req.files)]
        quota = await self.quota_of(user_id)
        now = self.now
        session_id = new_id("session")

        def write(txn: Txn) -> list[PlannedFile]:
            planned: list[PlannedFile] = []
            needed = 0
            sessions: list[UploadSession] = []
            for item, (name, folder, checksum, modified) in zip(req.files, checked, strict=True):
                if checksum is not None:
                    have = files.find_by_content(txn, user_id, checksum.algo, checksum.hex)
                    if have is not None:
                        planned.append(
                            PlannedFile(
                                localId=item.localId,
                                status="exists",
                                fileId=have.id,
                                file=file_entry(have),
                                priority=item.priority,
                            )
                        )
                        continue
                upload = UploadSession(
                    id=new_id("upload"),
                    user_id=user_id,
                    device_id=device_id,
                    session=session_id,
                    local_id=item.localId,
                    name=name,
                    folder=folder,
                    size=item.size,
                    mime_type=item.mimeType or "application/octet-stream",
                    chunk_size=chunk_size,
                    total_chunks=total_chunks(item.size, chunk_size),
                    checksum_algo=checksum.algo if checksum else None,
                    checksum_hex=checksum.hex if checksum else None,
                    priority=item.priority,
                    options={
                        "wifiOnly": req.uploadOptions.wifiOnly,
                        "maxRetries": req.uploadOptions.maxRetries,
                    },
                    created_at=now,
                    expires_at=now + ttl,
                    modified_at=modified,
                )
                sessions.append(upload)
                needed += item.size
                planned.append(self._planned(upload, base_url))
            usage = get_usage(txn, user_id)
            check_quota(usage, quota, needed)
            usage.reserved += needed
            put_usage(txn, user_id, usage)
            for upload in sessions:
                txn.put(UPLOADS, upload.id.encode(), upload)
            return planned

        planned = await self.node.meta.write(write)
        return InitResponse(
            uploadSession=session_id,
            files=planned,
            expiresAt=rfc3339(now + ttl),
            uploadOptions=EchoedOptions(
                wifiOnly=req.uploadOptions.wifiOnly,
                chunkSize=chunk_size,
                maxRetries=req.uploadOptions.maxRetries,
            ),
        )

    @staticmethod
    def _check_file(i: int, item: InitFile) -> tuple[str, str, Checksum | None, float | None]:
        normalize_mime(item.mimeType, f"files[{i}].mimeType")
        name = normalize_name(item.name, f"files[{i}].name")
        folder = normalize_folder(item.folder, f"files[{i}].folder")
        checksum = parse_checksum(item.checksum, f"files[{i}].checksum") if item.checksum else None
        modified = None
        if item.lastModified:
            try:
                modified = parse_rfc3339(item.lastModified)
            except ValueError:
                raise errors.ValidationError(
                    "lastModified must be an RFC 3339 timestamp",
                    details={"field": f"files[{i}].lastModified"},
                ) from None
        return name, folder, checksum, modified

    @staticmethod
    def chunk_url(base_url: str, upload_id: str, index: int) -> str:
        return f"{base_url}/api/mobile/upload/{upload_id}/chunks/{index}"

    def _planned(self, upload: UploadSession, base_url: str) -> PlannedFile:
        chunks = [
            PlannedChunk(
                index=i,
                start=r.start,
                end=r.end,
                uploadUrl=self.chunk_url(base_url, upload.id, i),
            )
            for i in range(upload.total_chunks)
            for r in (chunk_range(upload.size, upload.chunk_size, i),)
        ]
        return PlannedFile(
            localId=upload.local_id,
            status="pending",
            uploadId=upload.id,
            uploadUrl=f"{base_url}/api/mobile/upload/{upload.id}/chunks",
            chunks=chunks,
            totalChunks=upload.total_chunks,
            chunkSize=upload.chunk_size,
            priority=upload.priority,  # type: ignore[arg-type]
        )

    # -- sessions ------------------------------------------------------------------------------

    def load(self, txn: Txn, user_id: str, upload_id: str) -> UploadSession:
        """The caller's session; NOT_FOUND for unknown ids and other users' uploads."""
        upload = txn.get(UPLOADS, upload_id.encode())
        if upload is None or upload.user_id != user_id:
            raise errors.NotFound("No such upload")
        return upload

    def require_open(self, upload: UploadSession, now: float) -> None:
        """Raise unless chunks may still arrive (``now`` is passed in: the writer thread has no clock)."""
        if upload.status == "aborted":
            raise errors.Conflict("This upload was aborted")
        if upload.status == "completed":
            raise errors.Conflict("This upload is already complete")
        if upload.status == "expired" or upload.expires_at <= now:
            raise errors.UploadExpired(details={"expiresAt": rfc3339(upload.expires_at)})

    def received(self, txn: Txn, upload_id: str) -> dict[int, ReceivedChunk]:
        return {index_of(k): v for k, v in txn.scan(UPLOAD_CHUNKS, chunk_prefix(upload_id))}

    async def state(self, user_id: str, upload_id: str) -> UploadState:
        with self.node.meta.read() as txn:
            upload = self.load(txn, user_id, upload_id)
            received = self.received(txn, upload_id)
        status = upload.status
        if status == "uploading" and upload.expires_at <= self.now:
            status = "expired"
        if status == "completed":
            have = list(range(upload.total_chunks))
            missing: list[int] = []
            got = upload.size
        else:
            have = sorted(received)
            missing = [i for i in range(upload.total_chunks) if i not in received]
            got = sum(c.size for c in received.values())
        return UploadState(
            uploadId=upload.id,
            localId=upload.local_id,
            name=upload.name,
            folder=upload.folder,
            status=status,
            size=upload.size,
            chunkSize=upload.chunk_size,
            totalChunks=upload.total_chunks,
            receivedChunks=have,
            missingChunks=missing,
            bytesReceived=got,
            priority=upload.priority,
            expiresAt=rfc3339(upload.expires_at),
            fileId=upload.file_id,
        )

    # -- chunks --------------------------------------------------------------------------------

    async def receive_chunk(
        self,
        user_id: str,
        upload_id: str,
        index: int,
        body: AsyncIterable[bytes],
        *,
        content_length: int | None,
        declared: Checksum | None,
    ) -> ChunkReceipt:
        """Store one chunk, verified while it streams; acknowledged only once durable."""
        with self.node.meta.read() as txn:
            upload = self.load(txn, user_id, upload_id)
        self.require_open(upload, self.now)
        try:
            rng = chunk_range(upload.size, upload.chunk_size, index)
        except IndexError:
            raise errors.ValidationError(
                f"chunk index must be between 0 and {upload.total_chunks - 1}", details={"index": index}
            ) from None
        if content_length is not None and content_length > rng.length:
            raise errors.PayloadTooLarge(
                f"chunk {index} is {rng.length} bytes, not {content_length}",
                details={"expected": rng.length, "received": content_length},
            )
        if content_length is not None and content_length < rng.length:
            raise errors.ValidationError(
                f"chunk {index} is {rng.length} bytes, not {content_length}",
                details={"expected": rng.length, "received": content_length},
            )
        stream = body
        expected_id = None
        if declared is not None and declared.algo == "blake3":
            expected_id = ChunkId(declared.digest)
        elif declared is not None:
            stream = _checked(body, declared)
        trial = self.running.trial(upload_id, index, with_sha256=upload.checksum_algo == "sha256")
        try:
            result = await self.node.chunks.put(
                stream,
                expected_id=expected_id,
                expected_size=rng.length,
                max_size=rng.length,
                also=trial.hashers() if trial is not None else (),
            )
        except ChunkTooLarge:
            raise errors.PayloadTooLarge(
                f"chunk {index} is longer than {rng.length} bytes", details={"expected": rng.length}
            ) from None
        except ChunkMismatch as exc:
            if exc.size != rng.length:
                raise errors.ValidationError(
                    f"chunk {index} is {rng.length} bytes, received {exc.size}",
                    details={"expected": rng.length, "received": exc.size},
                ) from None
            raise errors.ChecksumMismatch(
                f"chunk {index} does not match X-Chunk-Checksum", details={"index": index}
            ) from None
        now = self.now

        def record(txn: Txn) -> None:
            current = self.load(txn, user_id, upload_id)
            self.require_open(current, now)
            key = chunk_key(upload_id, index)
            previous = txn.get(UPLOAD_CHUNKS, key)
            if previous is not None and previous.chunk_id == result.chunk_id:
                return
            incref(txn, [result.chunk_id])
            if previous is not None:
                decref(txn, [ChunkId(previous.chunk_id)])
            txn.put(UPLOAD_CHUNKS, key, ReceivedChunk(result.chunk_id, result.size, now))

        async with self.node.ref_guard.taking():
            await self.node.meta.write(record)
            if result.existed:
                await self._ensure_still_stored(user_id, upload_id, index, result.chunk_id)
        if trial is not None:
            self.running.accept(upload_id, trial, index + 1)
        # Off the response path: the client may send its next chunk while we read back.
        if self.running.current(upload.id) is not None and not self.node.spawn(partial(self._catch_up, upload)):
            await self._catch_up(upload)
        self.node.metrics.received_bytes.inc(result.size)
        return ChunkReceipt(
            uploadId=upload_id, index=index, received=result.size, checksum=f"blake3:{result.chunk_id.hex()}"
        )

    async def _catch_up(self, upload: UploadSession) -> None:
        """Hash chunks that arrived ahead of their turn into the running digest, in order."""
        if self.running.current(upload.id) is None:
            return
        try:
            await self._catch_up_locked(upload)
        except Exception:  # a background helper must never take the node down
            log.exception("running digest of %s dropped", upload.id)
            self.running.forget(upload.id)

    async def _catch_up_locked(self, upload: UploadSession) -> None:
        async with self.running.catch_up_lock(upload.id):
            while (run := self.running.current(upload.id)) is not None and run.position < upload.total_chunks:
                with self.node.meta.read() as txn:
                    chunk = txn.get(UPLOAD_CHUNKS, chunk_key(upload.id, run.position))
                if chunk is None:
                    return
                trial = run.fork()
                try:
                    async for piece in await self.node.chunks.get(ChunkId(chunk.chunk_id), expected_size=chunk.size):
                        await trial.update(piece)
                except (ChunkMissing, ChunkCorrupt):
                    self.running.forget(upload.id)  # complete re-reads, and reports the problem
                    return
                self.running.accept(upload.id, trial, run.position + 1)

    async def _ensure_still_stored(self, user_id: str, upload_id: str, index: int, chunk_id: ChunkId) -> None:
        """A deduplicated chunk may have been collected just before our reference landed."""
        if await self.node.chunks.has_many([chunk_id]):
            return

        def undo(txn: Txn) -> None:
            key = chunk_key(upload_id, index)
            current = txn.get(UPLOAD_CHUNKS, key)
            if current is not None and current.chunk_id == chunk_id:
                txn.delete(UPLOAD_CHUNKS, key)
                decref(txn, [chunk_id])

        await self.node.meta.write(undo)
        self.running.forget(upload_id)
        raise errors.Conflict("The node was reclaiming this chunk's content; send the chunk again")

    # -- complete ------------------------------------------------------------------------------

    async def complete(self, user_id: str, upload_id: str, checksum_text: str, metadata: dict[str, Any]) -> FileRecord:
        """Verify every chunk and the whole content against ``checksum``; then create the file."""
        return await self.finalize(user_id, upload_id, parse_checksum(checksum_text), metadata)

    async def finalize(
        self, user_id: str, upload_id: str, checksum: Checksum | None, metadata: dict[str, Any]
    ) -> FileRecord:
        """Create the file from a fully received upload (``checksum=None``: trust the chunks'
        own verification, as tus does when the last byte arrives). Idempotent."""
        with self.node.meta.read() as txn:
            upload = self.load(txn, user_id, upload_id)
            if upload.status == "completed" and upload.file_id:
                return self._completed_file(txn, upload)
            self.require_open(upload, self.now)
            received = self.received(txn, upload_id)
        chunks = self._ordered_chunks(upload, received)
        if checksum is not None and upload.checksum_algo == checksum.algo and upload.checksum_hex != checksum.hex:
            raise errors.ValidationError("checksum differs from the one declared at init")
        declared = self._declared(upload)
        if self.running.current(upload.id) is not None:
            await self._catch_up(upload)  # joins (or finishes) a catch-up still running
        need_sha = any(c is not None and c.algo == "sha256" for c in (checksum, declared))
        digests = self._running_digests(upload, len(chunks), need_sha)
        if digests is None or not self._matches(digests, checksum, declared):
            # No running digest, or one that disagrees (two racing PUTs of one chunk can leave it
            # describing the loser): the stored chunks have the last word.
            self.running.forget(upload_id)
            digests = await self._whole_file_digests(chunks, "sha256" if need_sha else "blake3")
        for expected in (checksum, declared):
            if expected is not None and digests.get(expected.algo) != expected.hex:
                await self._record_failure(upload, "checksum mismatch")
                raise errors.ChecksumMismatch(
                    "The uploaded content does not match the file checksum",
                    details={
                        "expected": str(expected),
                        "actual": f"{expected.algo}:{digests.get(expected.algo)}",
                    },
                )
        modified = upload.modified_at
        captured = metadata.get("capturedAt")
        if modified is None and isinstance(captured, str):
            try:
                modified = parse_rfc3339(captured)
            except ValueError:
                raise errors.ValidationError(
                    "metadata.capturedAt must be an RFC 3339 timestamp",
                    details={"field": "metadata.capturedAt"},
                ) from None
        quota = await self.quota_of(user_id)
        now = self.now

        def write(txn: Txn) -> FileRecord:
            current = self.load(txn, user_id, upload_id)
            if current.status == "completed" and current.file_id:
                return self._completed_file(txn, current)
            self.require_open(current, now)
            # The digests were computed from ``chunks`` outside this transaction; a chunk re-sent
            # since then would make the file list content it does not hold a reference on.
            if self.received(txn, upload_id) != received:
                raise errors.Conflict("A chunk changed while the upload was completing; complete it again")
            record, _released = files.store_content(
                txn,
                user_id=user_id,
                folder=current.folder,
                name=current.name,
                size=current.size,
                mime_type=current.mime_type,
                blake3_hex=digests["blake3"],
                sha256_hex=digests.get("sha256"),
                chunks=[ChunkRef(c.chunk_id, c.size) for c in chunks],
                modified_at=modified,
                metadata=metadata,
                now=now,
                quota=quota,
            )
            # The upload's chunk references now belong to the file.
            for key, _ in list(txn.scan_bytes("upload_chunks", chunk_prefix(upload_id))):
                txn.delete(UPLOAD_CHUNKS, key)
            usage = get_usage(txn, user_id)
            usage.reserved = max(0, usage.reserved - current.size)
            put_usage(txn, user_id, usage)
            current.status = "completed"
            current.file_id = record.id
            txn.put(UPLOADS, current.id.encode(), current)
            if self.on_complete is not None:
                self.on_complete(txn, current, record, None, now)
            return record

        record: FileRecord = await self.node.meta.write(write)
        self.running.forget(upload_id)
        return record

    @staticmethod
    def _matches(digests: dict[str, str], *expected: Checksum | None) -> bool:
        return all(e is None or digests.get(e.algo) == e.hex for e in expected)

    def _running_digests(self, upload: UploadSession, pieces: int, need_sha: bool) -> dict[str, str] | None:
        """Digests hashed while the chunks streamed in, when they arrived strictly in order."""
        position = upload.size if upload.via == "tus" else pieces
        running = self.running.get(upload.id, position)
        if running is None or (need_sha and running.sha256 is None):
            return None
        return running.digests()

    @staticmethod
    def _declared(upload: UploadSession) -> Checksum | None:
        if upload.checksum_algo in ("blake3", "sha256") and upload.checksum_hex:
            return Checksum(upload.checksum_algo, upload.checksum_hex)  # type: ignore[arg-type]
        return None

    @staticmethod
    def _ordered_chunks(upload: UploadSession, received: dict[int, ReceivedChunk]) -> list[ReceivedChunk]:
        """All pieces in order, or CONFLICT naming the missing chunks."""
        if upload.via == "tus":
            chunks = [received[i] for i in sorted(received)]
            got = sum(c.size for c in chunks)
            if got != upload.size or sorted(received) != list(range(len(received))):
                raise errors.Conflict(f"{upload.size - got} byte(s) have not been received", details={"offset": got})
            return chunks
        missing = [i for i in range(upload.total_chunks) if i not in received]
        if missing:
            raise errors.Conflict(
                f"{len(missing)} chunk(s) have not been received",
                details={"missingChunks": missing[:1000]},
            )
        return [received[i] for i in range(upload.total_chunks)]

    def _completed_file(self, txn: Txn, upload: UploadSession) -> FileRecord:
        assert upload.file_id is not None
        return files.get_file(txn, upload.user_id, upload.file_id)

    async def _whole_file_digests(self, chunks: list[ReceivedChunk], algo: str) -> dict[str, str]:
        """Re-read every chunk (verified by the store) and hash the whole content."""
        blake = new_hasher("blake3")
        extra: Hasher | None = new_hasher("sha256") if algo == "sha256" else None
        for chunk in chunks:
            try:
                async for piece in await self.node.chunks.get(ChunkId(chunk.chunk_id), expected_size=chunk.size):
                    await trio.to_thread.run_sync(_update_all, blake, extra, piece)
            except (ChunkMissing, ChunkCorrupt):
                log.error("upload chunk %s unreadable at complete", chunk.chunk_id.hex())
                raise errors.Conflict("A received chunk can no longer be read; upload it again") from None
        digests = {"blake3": blake.digest().hex()}
        if extra is not None:
            digests["sha256"] = extra.digest().hex()
        return digests

    async def _record_failure(self, upload: UploadSession, reason: str) -> None:
        if self.on_complete is None:
            return
        hook = self.on_complete
        now = self.now

        def write(txn: Txn) -> None:
            hook(txn, upload, None, reason, now)

        await self.node.meta.write(write)

    # -- abort and expiry ----------------------------------------------------------------------

    async def abort(self, user_id: str, upload_id: str) -> UploadSession:
        def write(txn: Txn) -> UploadSession:
            upload = self.load(txn, user_id, upload_id)
            if upload.status == "completed":
                raise errors.Conflict("This upload is already complete")
            if upload.status == "uploading":
                release_session(txn, upload, "aborted")
            return upload

        upload: UploadSession = await self.node.meta.write(write)
        self.running.forget(upload_id)
        return upload

    async def expire(self) -> int:
        """Expire open sessions past ``expiresAt``; forget finished ones long after they ended."""
        return await expire_sessions(
            self.node.meta, self.now, float(self.node.config.uploads.session_ttl), on_expired=self.running.forget
        )


def _update_all(blake: Hasher, extra: Hasher | None, piece: bytes) -> None:
    blake.update(piece)
    if extra is not None:
        extra.update(piece)


async def _checked(body: AsyncIterable[bytes], declared: Checksum) -> AsyncIterator[bytes]:
    """Pass the body through, failing at its end (before the store commits) on a digest mismatch."""
    hasher = new_hasher(declared.algo)
    async for piece in body:
        hasher.update(piece)
        yield piece
    if hasher.digest() != declared.digest:
        raise errors.ChecksumMismatch("chunk does not match X-Chunk-Checksum")
