"""One-request uploads of small files (``POST /api/mobile/upload/file``): a photo in one round trip.

The body is the whole file. It is hashed while it streams and stored as chunks of
``uploads.default_chunk_size`` exactly as chunk PUTs store theirs (``PieceIntake``: verified, a
rotted stored copy replaced by these bytes rather than deduplicated onto, memory bounded by a few
pieces). Then ONE metadata transaction takes the chunks' references and creates the file through
the one change path (``ChangeTxn.apply``, as ``Completion`` does: journal entry, usage, versions,
the subscribers' outbox, the ``uploads`` notification), with no upload session at all. A small
file therefore costs the chunk store's durable put and one metadata commit, and uploads running
at once share commits: nothing here serialises them, so the writer thread groups their
transactions (``vault.lmdb_writer``).

The whole file's checksum is required and checked before the last chunk is committed: a mismatch
is ``CHECKSUM_MISMATCH`` with no file and no reference taken. A file of one chunk (up to
``default_chunk_size``, the common case) then stored nothing at all; the earlier chunks of a
larger one stay unreferenced and go with the collector's next pass after ``uploads.gc_grace``.

Content already in the file at that folder and name answers ``exists`` and changes nothing (as
``sync/files`` does for an upload of the same content); anywhere else, the new file (or new
version) is made and holds the same chunks, stored once.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Literal

from vault import errors
from vault.checksums import Checksum, Hasher, new_hasher
from vault.chunks import ChunkMismatch, ChunkTooLarge
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref
from vault.chunks.store import PutResult
from vault.clock import Clock
from vault.config import UploadsConfig
from vault.files import queries
from vault.files.changes import ChangeTxn, FileChanges, PutContent
from vault.files.paths import DEFAULT_MIME, normalize_mime
from vault.files.records import ChunkRef, FileRecord
from vault.meta import MetaStore, Txn
from vault.metrics import Metrics
from vault.offload import Offload
from vault.quota import check_quota, get_usage
from vault.uploads.chunk_ranges import chunk_range, total_chunks
from vault.uploads.completion import OutcomeHook
from vault.uploads.intake import BodyPieces, PieceIntake
from vault.uploads.records import UploadOutcome
from vault.uploads.wire import FileFields, FileUploadQuery

Status = Literal["created", "updated", "exists"]
CheckFile = Callable[[FileFields, str], tuple[str, str, Checksum | None, float | None]]


class OneRequestUploads:
    def __init__(
        self,
        *,
        meta: MetaStore,
        intake: PieceIntake,
        changes: FileChanges,
        clock: Clock,
        config: UploadsConfig,
        quota_of: Callable[[str], Awaitable[int]],
        check_file: CheckFile,
        offload: Offload,
        metrics: Metrics,
        on_outcome: OutcomeHook | None,
    ) -> None:
        self.meta = meta
        self.intake = intake
        self.changes = changes
        self.clock = clock
        self.config = config
        self.quota_of = quota_of
        self.check_file = check_file
        self.offload = offload
        self.metrics = metrics
        self.on_outcome = on_outcome

    @property
    def limit(self) -> int:
        return int(self.config.max_single_request_size)

    async def upload(
        self,
        user_id: str,
        device_id: str,
        query: FileUploadQuery,
        body: AsyncIterable[bytes],
        *,
        size: int | None,
    ) -> tuple[FileRecord, Status]:
        """Check everything that can be checked before a byte of ``body`` is read (the fields,
        ``size`` against the limit, the quota), store the body, then make the file."""
        name, folder, declared, modified = self.check_file(query, "")
        if declared is None:
            raise errors.ValidationError(
                "checksum is required: the whole file's, blake3:<hex> or sha256:<hex>", details={"field": "checksum"}
            )
        mime = normalize_mime(query.mime_type, "mimeType")
        if mime == DEFAULT_MIME:
            mime = mimetypes.guess_type(name)[0] or mime  # as ``sync/files`` guesses it
        if size is None:
            raise errors.ValidationError(
                "Content-Length is required: the body is the whole file (no chunked transfer encoding)",
                details={"field": "Content-Length"},
            )
        if size > self.limit:
            raise errors.PayloadTooLarge(
                f"at most {self.limit} bytes in one request; upload larger files with upload/init",
                details={"limit": self.limit, "size": size},
            )
        quota = await self.quota_of(user_id)
        async with self.meta.snapshot() as txn:
            there = queries.find_by_path(txn, user_id, folder, name)
            if there is None or not _holds(there, declared):
                check_quota(get_usage(txn, user_id), quota, size)
        outcome = UploadOutcome(user_id=user_id, name=name, folder=folder)
        try:
            stored, digests = await self._store(body, size, declared)
        except errors.ChecksumMismatch:
            await self._record_failure(outcome, "checksum mismatch")  # as ``complete`` does
            raise
        self.metrics.received_bytes.inc(size)
        now = self.clock.now()
        content = PutContent(
            folder=folder,
            name=name,
            size=size,
            mime_type=mime,
            blake3=digests["blake3"],
            sha256=digests.get("sha256"),
            chunks=[ChunkRef(piece.chunk_id, piece.size) for piece in stored],
            modified_at=modified,
        )
        hook = self.on_outcome

        def write(change: ChangeTxn) -> tuple[FileRecord, Status]:
            txn = change.txn
            existing = queries.find_by_path(txn, user_id, folder, name)
            if existing is not None and existing.blake3 == content.blake3:
                return existing, "exists"  # the same file, sent twice: nothing to change
            incref(txn, [piece.chunk_id for piece in stored])  # the file's own references
            applied = change.apply(content, user_id=user_id, device_id=device_id, quota=quota)
            assert applied.file is not None
            if hook is not None:
                hook(txn, outcome, applied.file, None, now)
            return applied.file, "updated" if existing is not None else "created"

        # Fresh pieces of a file of several chunks were stored over the whole request: check them
        # all are still there (a slow body may outlast the collector's grace period).
        result: tuple[FileRecord, Status] = await self.intake.write_after_check(
            stored, lambda: self.changes.write(write, now=now), check_all=len(stored) > 1
        )
        return result

    async def _record_failure(self, outcome: UploadOutcome, reason: str) -> None:
        hook = self.on_outcome
        if hook is None:
            return
        now = self.clock.now()

        def write(txn: Txn) -> None:
            hook(txn, outcome, None, reason, now)

        await self.meta.write(write)

    async def _store(
        self, body: AsyncIterable[bytes], size: int, declared: Checksum
    ) -> tuple[list[PutResult], dict[str, str]]:
        """Store the body as chunks, checked against ``declared`` before the last one commits;
        answers the chunks and the whole file's digests (``blake3``, and ``sha256`` when declared)."""
        chunk_size = int(self.config.default_chunk_size)
        count = total_chunks(size, chunk_size)
        whole: dict[str, Hasher] = {}
        if count != 1:  # one chunk: its id is the whole file's BLAKE3
            whole["blake3"] = new_hasher("blake3")
        if declared.algo == "sha256":
            whole["sha256"] = new_hasher("sha256")
        expected_id = ChunkId(declared.digest) if count == 1 and declared.algo == "blake3" else None

        def at_end() -> None:
            hasher = whole.get(declared.algo)
            if hasher is not None and hasher.digest().hex() != declared.hex:
                raise _mismatch(declared, hasher.digest().hex())

        pieces = BodyPieces(
            aiter(body),
            size,
            self.offload,
            hashers=list(whole.values()),
            at_end=at_end,
            too_long="the body is longer than Content-Length",
        )
        if count == 0:
            async for _ in pieces.piece(1):  # an empty file: runs ``at_end`` (or refuses a byte)
                pass
        stored: list[PutResult] = []
        for index in range(count):
            length = chunk_range(size, chunk_size, index).length
            last = index == count - 1
            try:
                # The last piece asks for one byte more, so that it reads the body's end (and
                # ``at_end`` checks the file) before the store commits it.
                result = await self.intake.store(
                    pieces.piece(length + 1 if last else length),
                    max_size=length,
                    expected_size=length,
                    expected_id=expected_id,
                )
            except ChunkTooLarge:  # pragma: no cover - BodyPieces stops at Content-Length first
                raise errors.PayloadTooLarge("the body is longer than Content-Length") from None
            except ChunkMismatch as exc:
                if exc.size != length:
                    raise errors.ValidationError(
                        f"the body is shorter than Content-Length ({size} bytes)", details={"field": "Content-Length"}
                    ) from None
                actual = exc.actual_id.hex() if exc.actual_id is not None else ""
                raise _mismatch(declared, actual) from None
            stored.append(result)
        digests = {name: hasher.digest().hex() for name, hasher in whole.items()}
        if count == 1:
            digests["blake3"] = stored[0].chunk_id.hex()
        return stored, digests


def _mismatch(declared: Checksum, actual: str) -> errors.ChecksumMismatch:
    return errors.ChecksumMismatch(
        "The uploaded content does not match the file checksum",
        details={"expected": str(declared), "actual": f"{declared.algo}:{actual}"},
    )


def _holds(record: FileRecord, checksum: Checksum) -> bool:
    return (record.blake3 if checksum.algo == "blake3" else record.sha256) == checksum.hex
