"""Completing an upload: check the whole content, then create the file through the one change path.

The checksum given at ``complete`` is what counts (the one from ``init`` only when ``complete``
gives none, as with tus): content is the truth, so an upload declared with a wrong checksum at
init can still be completed with the right one, and a mismatch is ``CHECKSUM_MISMATCH`` naming
the expected and actual digests.

The whole-file digest comes from the running digest when chunks streamed in order; otherwise, or
when it disagrees (two racing PUTs of one chunk can leave it describing the loser), the stored
chunks are re-read and have the last word.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from vault import errors
from vault.checksums import Checksum, Hasher, new_hasher
from vault.chunks import ChunkCorrupt, ChunkMissing, ChunkStore
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref
from vault.chunks.store import PutResult
from vault.clock import Clock, parse_rfc3339
from vault.files import queries
from vault.files.changes import ChangeTxn, FileChanges, PutContent
from vault.files.records import ChunkRef, FileRecord
from vault.meta import MetaStore, Txn
from vault.offload import Offload
from vault.quota import get_usage, put_usage
from vault.uploads import by_device
from vault.uploads.intake import PieceIntake
from vault.uploads.records import (
    UPLOAD_CHUNKS,
    UPLOADS,
    ReceivedChunk,
    UploadOutcome,
    UploadSession,
    chunk_prefix,
    load_session,
    outcome_of,
    read_session,
    received_chunks,
    require_open,
)
from vault.uploads.running import RunningDigests

log = logging.getLogger(__name__)

# Called with (txn, upload, file or None, error or None, now) inside the finishing transaction.
OutcomeHook = Callable[[Txn, UploadOutcome, FileRecord | None, str | None, float], None]


class Completion:
    def __init__(
        self,
        *,
        meta: MetaStore,
        chunks: ChunkStore,
        changes: FileChanges,
        clock: Clock,
        quota_of: Callable[[str], Awaitable[int]],
        running: RunningDigests,
        catch_up: Callable[[UploadSession], Awaitable[None]],
        offload: Offload,
        on_outcome: OutcomeHook | None,
    ) -> None:
        self.meta = meta
        self.chunks = chunks
        self.changes = changes
        self.clock = clock
        self.quota_of = quota_of
        self.running = running
        self.catch_up = catch_up
        self.offload = offload
        self.on_outcome = on_outcome

    async def finalize(
        self, user_id: str, upload_id: str, checksum: Checksum | None, metadata: dict[str, Any]
    ) -> FileRecord:
        """Create the file from a fully received upload; idempotent (completing twice answers the
        same file). ``checksum=None``: check against the one declared at init, if any (tus)."""
        upload, received = await self.offload.run(read_session, self.meta, user_id, upload_id)
        return await self._finalize(user_id, upload_id, upload, received, checksum, metadata)

    async def finalize_if_whole(self, user_id: str, upload_id: str) -> FileRecord | None:
        """``finalize`` against init's checksum once every chunk is in, from the same read that
        tells; ``None`` while some are missing (a chunk ``PUT`` with ``complete=true``)."""
        upload, received = await self.offload.run(read_session, self.meta, user_id, upload_id)
        if upload.status == "uploading" and len(received) < upload.total_chunks:
            return None
        return await self._finalize(user_id, upload_id, upload, received, None, {})

    async def _finalize(
        self,
        user_id: str,
        upload_id: str,
        upload: UploadSession,
        received: dict[int, ReceivedChunk],
        checksum: Checksum | None,
        metadata: dict[str, Any],
    ) -> FileRecord:
        if upload.status == "completed" and upload.file_id:
            async with self.meta.snapshot() as txn:
                return queries.get_file(txn, upload.user_id, upload.file_id)
        require_open(upload, self.clock.now())
        chunks = _ordered_chunks(upload, received)
        expected = checksum if checksum is not None else declared_checksum(upload)
        if self.running.current(upload.id) is not None:
            await self.catch_up(upload)  # joins (or finishes) a catch-up still running
        need_sha = expected is not None and expected.algo == "sha256"
        digests = self._running_digests(upload, len(chunks), need_sha)
        if digests is None or not _matches(digests, expected):
            self.running.forget(upload_id, stale=True)
            digests = await self._whole_file_digests(chunks, need_sha)
        if expected is not None and digests.get(expected.algo) != expected.hex:
            await self._record_failure(upload, "checksum mismatch")
            raise errors.ChecksumMismatch(
                "The uploaded content does not match the file checksum",
                details={"expected": str(expected), "actual": f"{expected.algo}:{digests.get(expected.algo)}"},
            )
        modified = upload.modified_at
        captured = metadata.get("capturedAt")
        if modified is None and isinstance(captured, str):
            try:
                modified = parse_rfc3339(captured)
            except ValueError:
                raise errors.ValidationError(
                    "metadata.capturedAt must be an RFC 3339 timestamp", details={"field": "metadata.capturedAt"}
                ) from None
        quota = await self.quota_of(user_id)
        now = self.clock.now()
        content = _content(upload, digests, [ChunkRef(c.chunk_id, c.size) for c in chunks], modified, metadata)

        def write(change: ChangeTxn) -> FileRecord:
            txn = change.txn
            current = load_session(txn, user_id, upload_id)
            if current.status == "completed" and current.file_id:
                return queries.get_file(txn, current.user_id, current.file_id)
            require_open(current, now)
            # The digests were computed from ``chunks`` outside this transaction; a chunk re-sent
            # since then would make the file list content it does not hold a reference on.
            if received_chunks(txn, upload_id) != received:
                raise errors.Conflict("A chunk changed while the upload was completing; complete it again")
            applied = change.apply(content, user_id=user_id, device_id=current.device_id, quota=quota)
            assert applied.file is not None
            # The upload's chunk references now belong to the file.
            for key in list(txn.keys(UPLOAD_CHUNKS, chunk_prefix(upload_id))):
                txn.delete(UPLOAD_CHUNKS, key)
            self._close_session(txn, current, applied.file, now)
            return applied.file

        record: FileRecord = await self.changes.write(write, now=now)
        self.running.forget(upload_id)
        return record

    async def finalize_with_its_only_chunk(
        self,
        upload: UploadSession,
        piece: PutResult,
        digests: dict[str, str],
        intake: PieceIntake,
    ) -> FileRecord | None:
        """Receive the only chunk of a one-chunk upload and make its file in ONE metadata commit
        (a chunk ``PUT`` with ``complete=true``), where the receipt and ``finalize`` took two.

        ``digests`` are the whole file's, hashed while the chunk streamed in. ``None`` (nothing
        written) when this is not the simple case, and the caller takes the two-commit way, which
        answers every other one as before: a checksum that does not match init's (the chunk is
        kept for a ``complete`` with the right one), or a receipt already there for the chunk.
        """
        expected = declared_checksum(upload)
        if expected is None or upload.total_chunks != 1 or not _matches(digests, expected):
            return None
        quota = await self.quota_of(upload.user_id)
        now = self.clock.now()
        content = _content(upload, digests, [ChunkRef(piece.chunk_id, piece.size)], upload.modified_at, {})

        def write(change: ChangeTxn) -> FileRecord | None:
            txn = change.txn
            current = load_session(txn, upload.user_id, upload.id)
            if current.status == "completed" and current.file_id:
                # A racing completing PUT of the same chunk made it: the one file, as ``finalize``.
                return queries.get_file(txn, current.user_id, current.file_id)
            require_open(current, now)
            if received_chunks(txn, upload.id):
                return None  # a receipt for the chunk is there (a retry): the two-commit way
            incref(txn, [piece.chunk_id])  # the file's reference (no receipt took one)
            applied = change.apply(content, user_id=upload.user_id, device_id=current.device_id, quota=quota)
            assert applied.file is not None
            self._close_session(txn, current, applied.file, now)
            return applied.file

        # Under the collector's guard, the chunk checked to be still there if it was deduplicated
        # (as a receipt's reference is); the file's journal entry is not something to take back.
        record: FileRecord | None = await intake.write_after_check([piece], lambda: self.changes.write(write, now=now))
        if record is not None:
            self.running.forget(upload.id)
        return record

    def _close_session(self, txn: Txn, current: UploadSession, file: FileRecord, now: float) -> None:
        """In the transaction that made ``file``: the upload's reservation is given back, it is
        marked completed with that file, it leaves its device's open uploads, and its outcome is
        recorded."""
        usage = get_usage(txn, current.user_id)
        usage.reserved = max(0, usage.reserved - current.size)
        put_usage(txn, current.user_id, usage)
        current.status = "completed"
        current.file_id = file.id
        txn.put(UPLOADS, current.id.encode(), current)
        by_device.remove(txn, current)
        if self.on_outcome is not None:
            self.on_outcome(txn, outcome_of(current), file, None, now)

    def _running_digests(self, upload: UploadSession, pieces: int, need_sha: bool) -> dict[str, str] | None:
        """Digests hashed while the chunks streamed in, when they arrived strictly in order."""
        position = upload.size if upload.via == "tus" else pieces
        running = self.running.get(upload.id, position)
        if running is None or (need_sha and running.sha256 is None):
            return None
        return running.digests()

    async def _whole_file_digests(self, chunks: list[ReceivedChunk], need_sha: bool) -> dict[str, str]:
        """Re-read every chunk (verified by the store) and hash the whole content."""
        hashers: list[Hasher] = [new_hasher("blake3")]
        if need_sha:
            hashers.append(new_hasher("sha256"))
        for chunk in chunks:
            try:
                async for piece in await self.chunks.get(ChunkId(chunk.chunk_id), expected_size=chunk.size):
                    await self.offload.hash(hashers, piece)
            except (ChunkMissing, ChunkCorrupt):
                log.error("upload chunk %s unreadable at complete", chunk.chunk_id.hex())
                raise errors.Conflict("A received chunk can no longer be read; upload it again") from None
        digests = {"blake3": hashers[0].digest().hex()}
        if need_sha:
            digests["sha256"] = hashers[1].digest().hex()
        return digests

    async def _record_failure(self, upload: UploadSession, reason: str) -> None:
        if self.on_outcome is None:
            return
        hook = self.on_outcome
        now = self.clock.now()

        def write(txn: Txn) -> None:
            hook(txn, outcome_of(upload), None, reason, now)

        await self.meta.write(write)


def _content(
    upload: UploadSession,
    digests: dict[str, str],
    chunks: list[ChunkRef],
    modified: float | None,
    metadata: dict[str, Any],
) -> PutContent:
    """The file an upload becomes, as the change path takes it."""
    return PutContent(
        folder=upload.folder,
        name=upload.name,
        size=upload.size,
        mime_type=upload.mime_type,
        blake3=digests["blake3"],
        sha256=digests.get("sha256"),
        chunks=chunks,
        modified_at=modified,
        metadata=metadata,
    )


def _matches(digests: dict[str, str], expected: Checksum | None) -> bool:
    return expected is None or digests.get(expected.algo) == expected.hex


def declared_checksum(upload: UploadSession) -> Checksum | None:
    if upload.checksum_algo in ("blake3", "sha256") and upload.checksum_hex:
        return Checksum(upload.checksum_algo, upload.checksum_hex)  # type: ignore[arg-type]
    return None


def _ordered_chunks(upload: UploadSession, received: dict[int, ReceivedChunk]) -> list[ReceivedChunk]:
    """All pieces in order, or CONFLICT naming the missing chunks."""
    if upload.via == "tus":
        chunks = [received[i] for i in sorted(received)]
        got = sum(c.size for c in chunks)
        if got != upload.size or sorted(received) != list(range(len(received))):
            raise errors.Conflict(f"{upload.size - got} byte(s) have not been received", details={"offset": got})
        return chunks
    if len(received) < upload.total_chunks:  # indexes are checked on arrival: 0 <= index < total
        # Name the first ones only: a huge upload in small chunks may miss millions.
        missing = list(itertools.islice((i for i in range(upload.total_chunks) if i not in received), 1000))
        raise errors.Conflict(
            f"{upload.total_chunks - len(received)} chunk(s) have not been received",
            details={"missingChunks": missing},
        )
    return [received[i] for i in range(upload.total_chunks)]
