"""Chunked upload sessions: init, chunk receipt, progress, abort and expiry (and, beside them,
the one-request upload of a small file, ``vault.uploads.single``).

Nothing is visible until verified and durable: a chunk is acknowledged only after the chunk
store committed it and its receipt is in metadata; a file exists only after ``vault.uploads.
completion`` checked every chunk and the whole content against the client's checksum.

The service is given what it uses (stores, clock, its config section, quota, a spawner for
background work, the offload limiters, metrics); it knows nothing of the node or of HTTP.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from vault import errors
from vault.background import Spawner
from vault.checksums import Checksum, new_hasher, parse_checksum
from vault.chunks import ChunkCorrupt, ChunkMismatch, ChunkMissing, ChunkStore, ChunkTooLarge
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref, incref
from vault.chunks.store import PutResult
from vault.clock import Clock, parse_rfc3339, rfc3339
from vault.config import UploadsConfig
from vault.files import queries
from vault.files.changes import FileChanges
from vault.files.paths import normalize_folder, normalize_mime, normalize_name
from vault.files.records import FileRecord, file_entry
from vault.ids import new_id
from vault.meta import MetaStore, Txn
from vault.metrics import Metrics
from vault.offload import Hasher, Offload
from vault.quota import check_quota, get_usage, put_usage
from vault.uploads import by_device
from vault.uploads.chunk_ranges import ChunkRange, chunk_range, total_chunks
from vault.uploads.completion import Completion, OutcomeHook, declared_checksum
from vault.uploads.expiry import expire_sessions, release_session
from vault.uploads.intake import PieceIntake
from vault.uploads.records import (
    UPLOAD_CHUNKS,
    UPLOADS,
    ReceivedChunk,
    UploadSession,
    chunk_key,
    load_session,
    read_session,
    require_open,
)
from vault.uploads.running import KnownDigest, RunningDigests
from vault.uploads.single import OneRequestUploads, Status
from vault.uploads.wire import (
    ChunkReceipt,
    EchoedOptions,
    FileFields,
    FileUploadQuery,
    InitRequest,
    InitResponse,
    PlannedChunk,
    PlannedFile,
    UploadState,
)

log = logging.getLogger(__name__)

QuotaOf = Callable[[str], Awaitable[int]]
MAX_LISTED_CHUNKS = 1000


def chunk_url(origin: str, upload_id: str, index: int) -> str:
    return f"{origin}/api/mobile/upload/{upload_id}/chunks/{index}"


def file_upload_url(origin: str, upload_id: str) -> str:
    """One URL for a whole file's chunks (each PUT names its range with ``Content-Range``)."""
    return f"{origin}/api/mobile/upload/{upload_id}/chunks"


class UploadService:
    def __init__(
        self,
        *,
        meta: MetaStore,
        chunks: ChunkStore,
        intake: PieceIntake,
        changes: FileChanges,
        clock: Clock,
        config: UploadsConfig,
        quota_of: QuotaOf,
        spawn: Spawner,
        offload: Offload,
        metrics: Metrics,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self.meta = meta
        self.chunks = chunks
        self.intake = intake
        self.clock = clock
        self.config = config
        self.quota_of = quota_of
        self.spawn = spawn
        self.offload = offload
        self.metrics = metrics
        self.running = RunningDigests()
        self.completion = Completion(
            meta=meta,
            chunks=chunks,
            changes=changes,
            clock=clock,
            quota_of=quota_of,
            running=self.running,
            catch_up=self._catch_up,
            offload=offload,
            on_outcome=on_outcome,
        )
        self.single = OneRequestUploads(
            meta=meta,
            intake=intake,
            changes=changes,
            clock=clock,
            config=config,
            quota_of=quota_of,
            check_file=self.check_file,
            offload=offload,
            metrics=metrics,
            on_outcome=on_outcome,
        )

    @property
    def now(self) -> float:
        return float(self.clock.now())

    # -- init ----------------------------------------------------------------------------------

    async def init(self, user_id: str, device_id: str, req: InitRequest, origin: str) -> InitResponse:
        chunk_size = req.upload_options.chunk_size or int(self.config.default_chunk_size)
        ttl = float(self.config.session_ttl)
        checked = [self.check_file(f, f"files[{i}].") for i, f in enumerate(req.files)]
        quota = await self.quota_of(user_id)
        now = self.now
        session_id = new_id("session")
        cap = int(self.config.max_open_per_device)

        def write(txn: Txn) -> list[PlannedFile | UploadSession]:
            planned: list[PlannedFile | UploadSession] = []
            needed = 0
            sessions: list[UploadSession] = []
            for item, (name, folder, checksum, modified) in zip(req.files, checked, strict=True):
                if checksum is not None:
                    have = queries.find_by_content(txn, user_id, checksum.algo, checksum.hex)
                    if have is not None:
                        planned.append(
                            PlannedFile(
                                local_id=item.local_id,
                                status="exists",
                                file_id=have.id,
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
                    local_id=item.local_id,
                    name=name,
                    folder=folder,
                    size=item.size,
                    mime_type=item.mime_type or "application/octet-stream",
                    chunk_size=chunk_size,
                    total_chunks=total_chunks(item.size, chunk_size),
                    checksum_algo=checksum.algo if checksum else None,
                    checksum_hex=checksum.hex if checksum else None,
                    priority=item.priority,
                    options={
                        "wifiOnly": req.upload_options.wifi_only,
                        "maxRetries": req.upload_options.max_retries,
                    },
                    created_at=now,
                    expires_at=now + ttl,
                    modified_at=modified,
                )
                sessions.append(upload)
                needed += item.size
                planned.append(upload)  # its plan is made after the commit, off the writer thread
            by_device.require_room(txn, user_id, device_id, len(sessions), now, cap)
            usage = get_usage(txn, user_id)
            check_quota(usage, quota, needed)
            usage.reserved += needed
            put_usage(txn, user_id, usage)
            for upload in sessions:
                txn.put(UPLOADS, upload.id.encode(), upload)
                by_device.add(txn, upload)
            return planned

        written = await self.meta.write(write)
        planned = [p if isinstance(p, PlannedFile) else _planned(p, origin) for p in written]
        return InitResponse(
            upload_session=session_id,
            files=planned,
            expires_at=rfc3339(now + ttl),
            upload_options=EchoedOptions(
                wifi_only=req.upload_options.wifi_only,
                chunk_size=chunk_size,
                max_retries=req.upload_options.max_retries,
                max_single_request_size=int(self.config.max_single_request_size),
            ),
        )

    @staticmethod
    def check_file(item: FileFields, where: str) -> tuple[str, str, Checksum | None, float | None]:
        """(name, folder, checksum, lastModified) of a file's description, normalised; a
        ``VALIDATION_ERROR`` names the field after ``where`` (``files[3].``, or ``""``)."""
        normalize_mime(item.mime_type, f"{where}mimeType")
        name = normalize_name(item.name, f"{where}name")
        folder = normalize_folder(item.folder, f"{where}folder")
        checksum = parse_checksum(item.checksum, f"{where}checksum") if item.checksum else None
        modified = None
        if item.last_modified:
            try:
                modified = parse_rfc3339(item.last_modified)
            except ValueError:
                raise errors.ValidationError(
                    "lastModified must be an RFC 3339 timestamp",
                    details={"field": f"{where}lastModified"},
                ) from None
        return name, folder, checksum, modified

    # -- one request ---------------------------------------------------------------------------

    async def upload_file(
        self, user_id: str, device_id: str, query: FileUploadQuery, body: AsyncIterable[bytes], *, size: int | None
    ) -> tuple[FileRecord, Status]:
        """A whole small file in one request (``vault.uploads.single``)."""
        return await self.single.upload(user_id, device_id, query, body, size=size)

    # -- sessions ------------------------------------------------------------------------------

    async def state(self, user_id: str, upload_id: str) -> UploadState:
        upload, received = await self.offload.run(read_session, self.meta, user_id, upload_id)
        status = upload.status
        if status == "uploading" and upload.expires_at <= self.now:
            status = "expired"
        # Both lists stop at MAX_LISTED_CHUNKS (a huge upload in small chunks has millions); the
        # counts are always whole, and a client resumes from the first missing ones.
        if status == "completed":
            have = list(range(min(upload.total_chunks, MAX_LISTED_CHUNKS)))
            missing: list[int] = []
            got = upload.size
            received_count, missing_count = upload.total_chunks, 0
        else:
            have = sorted(received)[:MAX_LISTED_CHUNKS]
            missing = list(
                itertools.islice((i for i in range(upload.total_chunks) if i not in received), MAX_LISTED_CHUNKS)
            )
            got = sum(c.size for c in received.values())
            received_count = len(received)
            missing_count = max(0, upload.total_chunks - len(received))
        return UploadState(
            upload_id=upload.id,
            local_id=upload.local_id,
            name=upload.name,
            folder=upload.folder,
            status=status,
            size=upload.size,
            chunk_size=upload.chunk_size,
            total_chunks=upload.total_chunks,
            received_chunks=have,
            missing_chunks=missing,
            received_count=received_count,
            missing_count=missing_count,
            bytes_received=got,
            priority=upload.priority,
            expires_at=rfc3339(upload.expires_at),
            file_id=upload.file_id,
        )

    async def chunk_index_of_range(self, user_id: str, upload_id: str, start: int, end: int, size: int) -> int:
        """The index of the chunk whose byte range is ``start..end`` of a file of ``size`` bytes
        (``Content-Range`` on the per-file upload URL); ``VALIDATION_ERROR`` for any other range."""
        async with self.meta.snapshot() as txn:
            upload = load_session(txn, user_id, upload_id)
        if size != upload.size or upload.chunk_size <= 0 or start % upload.chunk_size:
            raise errors.ValidationError(
                "Content-Range must name exactly one planned chunk: bytes START-END/SIZE",
                details={"chunkSize": upload.chunk_size, "size": upload.size},
            )
        index = start // upload.chunk_size
        try:
            planned = chunk_range(upload.size, upload.chunk_size, index)
        except IndexError:
            planned = None
        if planned is None or planned.end != end:
            raise errors.ValidationError(
                "Content-Range must name exactly one planned chunk: bytes START-END/SIZE",
                details={"chunkSize": upload.chunk_size, "size": upload.size},
            )
        return index

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
        complete: bool = False,
    ) -> ChunkReceipt:
        """Store one chunk, verified while it streams; acknowledged only once durable. With
        ``complete``, then complete the upload if that made it whole (``ChunkQuery``)."""
        async with self.meta.snapshot() as txn:
            upload = load_session(txn, user_id, upload_id)
        require_open(upload, self.now)
        if complete and declared_checksum(upload) is None:
            # Refused before a byte is read: there would be nothing to check the whole file against.
            raise errors.ValidationError(
                "complete=true needs the file's checksum given at upload/init; send upload/complete instead",
                details={"field": "complete"},
            )
        rng = _planned_range(upload, index, content_length)
        stream = body
        expected_id = None
        if declared is not None and declared.algo == "blake3":
            expected_id = ChunkId(declared.digest)
        elif declared is not None:
            stream = _checked(body, declared, self.offload)
        with_sha256 = upload.checksum_algo == "sha256"
        trial = self.running.trial(upload_id, index, with_sha256=with_sha256)
        # Ahead of its turn (parallel streams): keep its bytes for the running digest, if there
        # is room, so that closing the gap before it does not read it back from the store.
        keeper = None
        if trial is None:
            keeper = self.running.keeper(upload_id, index, rng.length, with_sha256=with_sha256)
        # The only chunk of a file: the file's BLAKE3 is the chunk's id, so its bytes are hashed
        # once by the store, not again for the running digest (a SHA-256 asked for still is).
        sole = trial is not None and upload.total_chunks == 1
        also: list[Hasher] = []
        if trial is None:
            also = [keeper] if keeper is not None else []
        elif not sole:
            also = [*trial.hashers()]
        elif trial.sha256 is not None:
            also = [trial.sha256]
        try:
            result = await self._store(stream, index, rng, expected_id, also)
        except BaseException:
            if keeper is not None:
                self.running.drop(keeper)
            raise
        if sole and trial is not None:
            trial.blake3 = KnownDigest(result.chunk_id)
        receipt = ChunkReceipt(
            upload_id=upload_id, index=index, received=result.size, checksum=f"blake3:{result.chunk_id.hex()}"
        )
        if complete and trial is not None and upload.total_chunks == 1:
            # The whole file, hashed as it came: its receipt and its file in one commit.
            made = await self.completion.finalize_with_its_only_chunk(upload, result, trial.digests(), self.intake)
            if made is not None:
                self.metrics.received_bytes.inc(result.size)
                receipt.file = file_entry(made)
                return receipt
        if keeper is not None:
            # Before the receipt commits, so a catch-up that finds the receipt finds the bytes.
            self.running.hold(upload_id, index, result.chunk_id, keeper)
        now = self.now
        key = chunk_key(upload_id, index)

        def record(txn: Txn) -> bool:
            """Take the upload's reference; True when it replaced different content."""
            current = load_session(txn, user_id, upload_id)
            require_open(current, now)
            previous = txn.get(UPLOAD_CHUNKS, key)
            if previous is not None and previous.chunk_id == result.chunk_id:
                return False
            incref(txn, [result.chunk_id])
            if previous is not None:
                decref(txn, [ChunkId(previous.chunk_id)])
            txn.put(UPLOAD_CHUNKS, key, ReceivedChunk(result.chunk_id, result.size, now))
            return previous is not None

        def undo(txn: Txn) -> None:
            current = txn.get(UPLOAD_CHUNKS, key)
            if current is not None and current.chunk_id == result.chunk_id:
                txn.delete(UPLOAD_CHUNKS, key)
                decref(txn, [result.chunk_id])

        try:
            replaced = await self.intake.reference([result], record, undo)
        except errors.ContentReclaimed:
            self.running.forget(upload_id, stale=True)
            raise
        except BaseException:
            if keeper is not None:
                self.running.unhold(upload_id, index, result.chunk_id)
            raise
        self.running.received(upload_id, index)
        if replaced:
            # Other bytes were stored for this chunk before: whatever running digest exists may
            # describe them (two racing PUTs), so only the stored chunks may say what the file is.
            self.running.forget(upload_id, stale=True)
        elif trial is not None:
            self.running.accept(upload_id, trial, index + 1)
        # Off the response path: the client may send its next chunk while we hash the ones that
        # arrived ahead of it. Only when one did: in order, there is nothing to catch up.
        if self.running.waiting(upload.id) and not self.spawn(partial(self._catch_up, upload)):
            await self._catch_up(upload)
        self.metrics.received_bytes.inc(result.size)
        if complete and (made := await self.completion.finalize_if_whole(user_id, upload_id)) is not None:
            receipt.file = file_entry(made)
        return receipt

    async def _store(
        self, stream: AsyncIterable[bytes], index: int, rng: ChunkRange, expected_id: ChunkId | None, also: list[Hasher]
    ) -> PutResult:
        try:
            return await self.intake.store(
                stream, expected_id=expected_id, expected_size=rng.length, max_size=rng.length, also=also
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

    async def _catch_up(self, upload: UploadSession) -> None:
        """Hash chunks that arrived ahead of their turn into the running digest, in order."""
        if self.running.current(upload.id) is None:
            return
        try:
            await self._catch_up_locked(upload)
        except Exception:  # a background helper must never take the node down
            log.exception("running digest of %s dropped", upload.id)
            self.running.forget(upload.id, stale=True)

    async def _catch_up_locked(self, upload: UploadSession) -> None:
        async with self.running.catch_up_lock(upload.id):
            while (run := self.running.current(upload.id)) is not None and run.position < upload.total_chunks:
                async with self.meta.snapshot() as txn:
                    chunk = txn.get(UPLOAD_CHUNKS, chunk_key(upload.id, run.position))
                if chunk is None:
                    return
                trial = run.fork()
                kept = self.running.take(upload.id, run.position, chunk.chunk_id)
                if kept is not None:
                    # The bytes that hashed to the id this receipt names: no read back.
                    await self.offload.hash_pieces(trial.hashers(), kept)
                    del kept
                else:
                    try:
                        async for piece in await self.chunks.get(ChunkId(chunk.chunk_id), expected_size=chunk.size):
                            await trial.update(piece, self.offload)
                    except (ChunkMissing, ChunkCorrupt):
                        self.running.forget(upload.id, stale=True)  # complete re-reads, and reports it
                        return
                self.running.accept(upload.id, trial, run.position + 1)

    # -- complete ------------------------------------------------------------------------------

    async def complete(self, user_id: str, upload_id: str, checksum_text: str, metadata: dict[str, Any]) -> FileRecord:
        """Verify every chunk and the whole content against ``checksum``; then create the file."""
        return await self.completion.finalize(user_id, upload_id, parse_checksum(checksum_text), metadata)

    async def finalize(
        self, user_id: str, upload_id: str, checksum: Checksum | None, metadata: dict[str, Any]
    ) -> FileRecord:
        """Create the file from a fully received upload (see ``Completion.finalize``)."""
        return await self.completion.finalize(user_id, upload_id, checksum, metadata)

    # -- abort and expiry ----------------------------------------------------------------------

    async def abort(self, user_id: str, upload_id: str) -> UploadSession:
        def write(txn: Txn) -> UploadSession:
            upload = load_session(txn, user_id, upload_id)
            if upload.status == "completed":
                raise errors.Conflict("This upload is already complete")
            if upload.status == "uploading":
                release_session(txn, upload, "aborted")
            return upload

        upload: UploadSession = await self.meta.write(write)
        self.running.forget(upload_id)
        return upload

    async def expire(self) -> int:
        """Expire open sessions past ``expiresAt``; forget finished ones long after they ended."""
        return await expire_sessions(
            self.meta, self.now, float(self.config.session_ttl), on_expired=self.running.forget, offload=self.offload
        )


def _planned(upload: UploadSession, origin: str) -> PlannedFile:
    # A plan lists at most MAX_LISTED_CHUNKS chunks: a 16 TiB file in 64 KiB chunks would be 2^28
    # of them. Beyond that the client derives each chunk from chunkSize and chunkUrlTemplate.
    chunks = [
        PlannedChunk(index=i, start=r.start, end=r.end, upload_url=chunk_url(origin, upload.id, i))
        for i in range(min(upload.total_chunks, MAX_LISTED_CHUNKS))
        for r in (chunk_range(upload.size, upload.chunk_size, i),)
    ]
    return PlannedFile(
        local_id=upload.local_id,
        status="pending",
        upload_id=upload.id,
        upload_url=file_upload_url(origin, upload.id),
        chunks=chunks,
        chunks_listed=len(chunks),
        chunk_url_template=chunk_url(origin, upload.id, 0)[: -len("0")] + "{index}",
        total_chunks=upload.total_chunks,
        chunk_size=upload.chunk_size,
        priority=upload.priority,  # type: ignore[arg-type]
    )


def _planned_range(upload: UploadSession, index: int, content_length: int | None) -> ChunkRange:
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
    return rng


async def _checked(body: AsyncIterable[bytes], declared: Checksum, offload: Offload) -> AsyncIterator[bytes]:
    """Pass the body through, failing at its end (before the store commits) on a digest mismatch."""
    hasher = new_hasher(declared.algo)
    async for piece in body:
        await offload.hash([hasher], piece)
        yield piece
        del piece  # not held while the next one is awaited (a client may stall)
    if hasher.digest() != declared.digest:
        raise errors.ChecksumMismatch("chunk does not match X-Chunk-Checksum")
