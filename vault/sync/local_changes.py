"""Applying a device's local changes (``sync/files``, and the offline queue) with conflict rules.

A change is based on what the device last saw: the request's sync token (its journal position),
or the change's own ``baseVersion``. If its target changed on the server after that point, by
another device (new content, a rename or move, a delete), the change is not applied and becomes a
conflict recording the local change, the remote state and both devices. Identical content is
never a conflict (checksums are compared, not times). A new file at a path where another device
put different content is a conflict, with the same content it is not; re-uploading a file another
device deleted after the token is a conflict too, so a stale phone does not bring it back.

What changed remotely is read once per request from the journal (entries after the base, by
other devices; in a worker thread), then topped up inside each change's own write transaction with
whatever landed meanwhile, so no interleaving of requests slips past the check.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field

import msgspec

from vault import errors
from vault.checksums import parse_checksum
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref
from vault.clock import parse_rfc3339
from vault.files import journal, queries
from vault.files.changes import ChangeTxn, DeleteFile, MakeFolder, MoveFile, PutContent, RestoreFile
from vault.files.journal import JournalEntry
from vault.files.paths import normalize_folder, normalize_name
from vault.files.records import FILES, FileRecord, file_entry
from vault.meta import MetaStore, Txn
from vault.sync import conflicts
from vault.sync.conflicts import Reason
from vault.sync.wire import (
    ChangeResult,
    DeleteChange,
    LocalChange,
    MkdirChange,
    MoveChange,
    RenameChange,
    ResultError,
    UpdateChange,
    UploadChange,
)


@dataclass
class RemoteChanges:
    """Other devices' latest changes after a base position, by file and by deleted path."""

    through: int  # journal position these cover up to
    by_file: dict[str, JournalEntry] = field(default_factory=dict)
    deleted_paths: dict[tuple[str, str], JournalEntry] = field(default_factory=dict)

    def add(self, entries: list[JournalEntry], device_id: str) -> None:
        for entry in entries:
            self.through = max(self.through, entry.seq)
            if not entry.file_id or entry.device_id == device_id:
                continue
            self.by_file[entry.file_id] = entry
            if entry.op == "deleted":
                self.deleted_paths[(entry.folder, entry.name)] = entry
            elif entry.op == "moved" and entry.previous_folder is not None and entry.previous_name is not None:
                self.deleted_paths.pop((entry.folder, entry.name), None)

    def top_up(self, txn: Txn, user_id: str, device_id: str) -> None:
        """Add what landed after ``through`` (inside a write: usually nothing, or a few)."""
        self.add(journal.since(txn, user_id, self.through), device_id)


def read_remote(meta: MetaStore, user_id: str, device_id: str, base: int) -> RemoteChanges:
    """Other devices' changes after ``base`` (blocking: a scan, for a worker thread)."""
    remote = RemoteChanges(through=base)
    with meta.read() as txn:
        remote.add(journal.since(txn, user_id, base), device_id)
    return remote


class UploadNeeded(msgspec.Struct, frozen=True, kw_only=True):
    """Content the node does not hold yet, for a file at ``folder``/``name``."""

    folder: str
    name: str
    size: int
    checksum: str
    last_modified: str | None
    mime_type: str


class Outcome(msgspec.Struct, kw_only=True):
    """What became of one change inside its transaction; ``upload_for``: content still to send
    (the caller plans that upload, outside the transaction)."""

    result: ChangeResult
    upload_for: UploadNeeded | None = None


def apply_change(
    ctx: ChangeTxn,
    change: LocalChange,
    *,
    user_id: str,
    device_id: str,
    device_name: str,
    remote: RemoteChanges,
    quota: int,
    force: bool = False,
    unique: bool = False,
) -> Outcome:
    """Apply one local change in ``ctx``'s transaction, or record the conflict it makes.

    ``force`` applies it whatever changed remotely (a ``keep_local`` resolution); ``unique``
    gives a new file a free name when its own is taken (``keep_both``)."""
    remote.top_up(ctx.txn, user_id, device_id)
    if isinstance(change, MkdirChange):
        folder = normalize_folder(change.folder, "folder")
        ctx.apply(MakeFolder(folder=folder), user_id=user_id, device_id=device_id)
        return Outcome(result=ChangeResult(local_id=change.local_id, status="applied"))
    if isinstance(change, UploadChange):
        return _upload(ctx, change, user_id, device_id, device_name, remote, quota, force, unique)
    record = _target(ctx.txn, user_id, change.file_id)
    if force and record is not None and record.deleted_at is not None and not isinstance(change, DeleteChange):
        # keep_local on a file deleted elsewhere: the local edit wins, so the file comes back from
        # the trash (under a "(restored n)" name if its own was taken) and the edit applies to it.
        ctx.apply(RestoreFile(file_id=record.id), user_id=user_id, device_id=device_id)
        record = _target(ctx.txn, user_id, change.file_id)
    if record is None or (record.deleted_at is not None and not isinstance(change, DeleteChange)):
        if record is not None and not force:
            return _conflict(ctx, change, user_id, device_id, device_name, record, "deleted_remotely", remote)
        return _rejected(change, errors.NotFound("No such file"))
    if not force:
        reason = _changed_remotely(change, record, remote)
        if reason is not None:
            return _conflict(ctx, change, user_id, device_id, device_name, record, reason, remote)
    if isinstance(change, DeleteChange):
        if record.deleted_at is None:
            ctx.apply(DeleteFile(file_id=record.id), user_id=user_id, device_id=device_id)
        return _applied(change, record.id)
    if isinstance(change, MoveChange | RenameChange):
        move = (
            MoveFile(file_id=record.id, folder=normalize_folder(change.folder, "folder"))
            if isinstance(change, MoveChange)
            else MoveFile(file_id=record.id, name=normalize_name(change.name, "name"))
        )
        try:
            ctx.apply(move, user_id=user_id, device_id=device_id)
        except errors.Conflict as exc:
            return _rejected(change, exc)
        return _applied(change, record.id)
    assert isinstance(change, UpdateChange)
    checksum = parse_checksum(change.checksum, "checksum")
    if _same_content(record, checksum.algo, checksum.hex):
        return _applied(change, record.id)
    if _put_known_content(ctx, change, record.folder, record.name, record.mime_type, user_id, device_id, quota):
        return _applied(change, record.id)
    return Outcome(
        result=ChangeResult(local_id=change.local_id, status="uploadRequired", file_id=record.id),
        upload_for=UploadNeeded(
            folder=record.folder,
            name=record.name,
            size=change.size,
            checksum=change.checksum,
            last_modified=change.last_modified,
            mime_type=record.mime_type,
        ),
    )


def _upload(
    ctx: ChangeTxn,
    change: UploadChange,
    user_id: str,
    device_id: str,
    device_name: str,
    remote: RemoteChanges,
    quota: int,
    force: bool,
    unique: bool,
) -> Outcome:
    folder = normalize_folder(change.folder, "folder")
    name = normalize_name(change.name, "name")
    checksum = parse_checksum(change.checksum, "checksum")
    existing = queries.find_by_path(ctx.txn, user_id, folder, name)
    if unique and existing is not None and not _same_content(existing, checksum.algo, checksum.hex):
        name = _free_name(ctx.txn, user_id, folder, name)
        existing = None
    if existing is not None and _same_content(existing, checksum.algo, checksum.hex):
        return _applied(change, existing.id)  # the same file, made twice: nothing to do
    if not force:
        if existing is not None:
            return _conflict(ctx, change, user_id, device_id, device_name, existing, "name_taken", remote)
        gone = remote.deleted_paths.get((folder, name))
        if gone is not None:
            return _conflict(ctx, change, user_id, device_id, device_name, None, "deleted_remotely", remote, gone)
    mime = change.mime_type
    if mime == "application/octet-stream":
        mime = mimetypes.guess_type(name)[0] or mime
    if _put_known_content(ctx, change, folder, name, mime, user_id, device_id, quota):
        applied = queries.find_by_path(ctx.txn, user_id, folder, name)
        return _applied(change, applied.id if applied else None)
    return Outcome(
        result=ChangeResult(local_id=change.local_id, status="uploadRequired"),
        upload_for=UploadNeeded(
            folder=folder,
            name=name,
            size=change.size,
            checksum=change.checksum,
            last_modified=change.last_modified,
            mime_type=mime,
        ),
    )


def _put_known_content(
    ctx: ChangeTxn,
    change: UploadChange | UpdateChange,
    folder: str,
    name: str,
    mime_type: str,
    user_id: str,
    device_id: str,
    quota: int,
) -> bool:
    """Create the file (or its new version) from content the account already holds; no bytes move."""
    checksum = parse_checksum(change.checksum, "checksum")
    source = queries.find_by_content(ctx.txn, user_id, checksum.algo, checksum.hex)
    if source is None or source.size != change.size:
        return False
    manifest = queries.manifest(ctx.txn, source)
    incref(ctx.txn, [ChunkId(c.chunk_id) for c in manifest.chunks])  # the new file's own references
    modified = None
    if change.last_modified:
        try:
            modified = parse_rfc3339(change.last_modified)
        except ValueError:
            raise errors.ValidationError(
                "lastModified must be an RFC 3339 timestamp", details={"field": "lastModified"}
            ) from None
    content = PutContent(
        folder=folder,
        name=name,
        size=source.size,
        mime_type=mime_type,
        blake3=source.blake3,
        sha256=source.sha256,
        chunks=list(manifest.chunks),
        modified_at=modified,
    )
    ctx.apply(content, user_id=user_id, device_id=device_id, quota=quota)
    return True


def _free_name(txn: Txn, user_id: str, folder: str, name: str) -> str:
    """``name`` with " 2", " 3", … before its extension, the first one not taken in ``folder``."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    for n in range(2, 10_000):
        candidate = f"{stem} {n}.{suffix}" if suffix else f"{stem} {n}"
        if queries.find_by_path(txn, user_id, folder, candidate) is None:
            return candidate
    raise errors.Conflict(f"no free name like {name!r} in {folder}")


def _changed_remotely(change: LocalChange, record: FileRecord, remote: RemoteChanges) -> Reason | None:
    if change.base_version is not None and change.base_version != record.version:
        if isinstance(change, UpdateChange) and _same_content(record, *_algo_hex(change.checksum)):
            return None
        return "version_mismatch"
    entry = remote.by_file.get(record.id)
    if entry is None:
        return None
    if isinstance(change, UpdateChange) and _same_content(record, *_algo_hex(change.checksum)):
        return None  # both devices made the same content: no conflict
    if isinstance(change, DeleteChange) and entry.op == "deleted":
        return None  # deleted on both sides
    return "deleted_remotely" if entry.op == "deleted" else "modified_remotely"


def _algo_hex(text: str) -> tuple[str, str]:
    checksum = parse_checksum(text, "checksum")
    return checksum.algo, checksum.hex


def _same_content(record: FileRecord, algo: str, hex_digest: str) -> bool:
    return (record.blake3 if algo == "blake3" else record.sha256) == hex_digest


def _target(txn: Txn, user_id: str, file_id: str) -> FileRecord | None:
    """The user's file, live or in the trash; ``None`` for unknown ids and other users' files."""
    record = txn.get(FILES, file_id.encode())
    return record if record is not None and record.user_id == user_id else None


def _conflict(
    ctx: ChangeTxn,
    change: LocalChange,
    user_id: str,
    device_id: str,
    device_name: str,
    record: FileRecord | None,
    reason: Reason,
    remote: RemoteChanges,
    entry: JournalEntry | None = None,
) -> Outcome:
    by = remote.by_file.get(record.id) if record is not None else entry
    conflict = conflicts.record(
        ctx.txn,
        user_id=user_id,
        device_id=device_id,
        device_name=device_name,
        change=change,
        file_id=record.id if record is not None else (entry.file_id if entry else None),
        reason=reason,
        remote=file_entry(record) if record is not None and record.deleted_at is None else None,
        remote_device_id=by.device_id if by is not None else None,
        now=ctx.now,
    )
    ctx.touch(user_id)
    return Outcome(
        result=ChangeResult(
            local_id=change.local_id, status="conflict", file_id=conflict.file_id, conflict_id=conflict.id
        )
    )


def _applied(change: LocalChange, file_id: str | None) -> Outcome:
    return Outcome(result=ChangeResult(local_id=change.local_id, status="applied", file_id=file_id))


def _rejected(change: LocalChange, error: errors.VaultError) -> Outcome:
    return Outcome(
        result=ChangeResult(
            local_id=change.local_id, status="rejected", error=ResultError(code=error.code, message=error.message)
        )
    )
