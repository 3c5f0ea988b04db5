"""The one way to change a user's files and folders.

Every change (a new file, a new version, a delete, a rename or move, a new folder) is described by
one of the ``Change`` structs and applied by ``ChangeTxn.apply`` inside a metadata write
transaction. That one function writes, atomically:

- the file record and its index entries (path, content hash), and its manifest;
- the chunk references the content holds (the caller hands over one reference per chunk);
- the user's usage;
- a journal entry with everything a syncing client needs;
- whatever the subscribers registered with ``FileChanges.subscribe`` write (the push outbox, for
  example), in the same transaction, so they can never disagree with the change.

``FileChanges.write`` runs such a transaction and, once it committed, wakes everyone watching the
changed users on the ``ChangeFeed``. Nothing that reacts to a change has to scan for it.

The expected current version (``expected_version``) makes a change conditional: ``None`` applies
it whatever the current version, ``0`` requires that nothing exists yet, any other number must
equal the current version, or the change is refused with ``CONFLICT`` naming the current file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from vault import errors
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref
from vault.files import journal, queries
from vault.files.feed import ChangeFeed
from vault.files.journal import JournalEntry, JournalOp
from vault.files.paths import parent_folders
from vault.files.records import (
    CONTENT_BY_HASH,
    FILES,
    FILES_BY_PATH,
    FOLDERS,
    MANIFESTS,
    ChunkRef,
    FileRecord,
    FolderRecord,
    Manifest,
    content_key,
    file_entry,
    folder_key,
    path_key,
)
from vault.ids import new_id
from vault.meta import MetaStore, Txn
from vault.quota import check_quota, get_usage, put_usage

T = TypeVar("T")


class PutContent(msgspec.Struct, frozen=True, kw_only=True):
    """New content at ``folder``/``name``: a new file, or a new version of the live file there."""

    folder: str
    name: str
    size: int
    mime_type: str
    blake3: str  # hex of the whole content
    sha256: str | None = None
    chunks: list[ChunkRef]
    modified_at: float | None = None  # the client's own time of the content, when it said
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class DeleteFile(msgspec.Struct, frozen=True, kw_only=True):
    """Delete a file: it leaves listings, its content stays referenced (the trash holds it)."""

    file_id: str


class MoveFile(msgspec.Struct, frozen=True, kw_only=True):
    """Rename and/or move a file (``None``: keep that part)."""

    file_id: str
    folder: str | None = None
    name: str | None = None


class MakeFolder(msgspec.Struct, frozen=True, kw_only=True):
    """Create a folder and its missing parents."""

    folder: str


Change = PutContent | DeleteFile | MoveFile | MakeFolder


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    """What a change did: the file as it now is (``None`` for folders), its journal entry, and
    the chunks whose last reference it dropped (garbage once committed)."""

    file: FileRecord | None
    entry: JournalEntry
    released: list[ChunkId] = msgspec.field(default_factory=list)


# Called inside the change's transaction, after the change was written; raising undoes it all.
Subscriber = Callable[[Txn, str, JournalEntry], None]


class ChangeTxn:
    """One metadata write transaction in which files may change (from ``FileChanges.write``)."""

    def __init__(self, txn: Txn, subscribers: list[Subscriber], now: float) -> None:
        self.txn = txn
        self.now = now
        self._subscribers = subscribers
        self.changed_users: set[str] = set()

    def apply(
        self,
        change: Change,
        *,
        user_id: str,
        device_id: str | None,
        expected_version: int | None = None,
        quota: int = 0,
    ) -> Applied:
        """Apply ``change`` for ``user_id`` on behalf of ``device_id``; see the module docstring."""
        if isinstance(change, PutContent):
            applied = self._put(change, user_id, device_id, expected_version, quota)
        elif isinstance(change, DeleteFile):
            applied = self._delete(change, user_id, device_id, expected_version)
        elif isinstance(change, MoveFile):
            applied = self._move(change, user_id, device_id, expected_version)
        else:
            applied = self._mkdir(change, user_id, device_id)
        journal.append(self.txn, user_id, applied.entry)
        for subscriber in self._subscribers:
            subscriber(self.txn, user_id, applied.entry)
        self.changed_users.add(user_id)
        return applied

    # -- the changes ---------------------------------------------------------------------------

    def _put(
        self, change: PutContent, user_id: str, device_id: str | None, expected: int | None, quota: int
    ) -> Applied:
        txn, now = self.txn, self.now
        existing = queries.find_by_path(txn, user_id, change.folder, change.name)
        _check_version(existing, expected)
        usage = get_usage(txn, user_id)
        freed = existing.size if existing is not None else 0
        check_quota(usage, quota, max(0, change.size - freed), include_reserved=False)
        released: list[ChunkId] = []
        if existing is not None:
            released = decref(txn, [ChunkId(c.chunk_id) for c in queries.manifest(txn, existing).chunks])
            _unindex_content(txn, existing)
            record = existing
            record.version += 1
            op: JournalOp = "updated"
        else:
            record = FileRecord(
                id=new_id("file"),
                user_id=user_id,
                name=change.name,
                folder=change.folder,
                size=change.size,
                mime_type=change.mime_type,
                blake3=change.blake3,
                created_at=now,
                modified_at=now,
                updated_at=now,
            )
            op = "created"
        record.size = change.size
        record.mime_type = change.mime_type
        record.blake3 = change.blake3
        record.sha256 = change.sha256
        record.modified_at = change.modified_at if change.modified_at is not None else now
        record.updated_at = now
        record.metadata = dict(change.metadata)
        usage.used += change.size - freed
        put_usage(txn, user_id, usage)
        txn.put(FILES, record.id.encode(), record)
        txn.put(MANIFESTS, record.id.encode(), Manifest(list(change.chunks)))
        txn.put_bytes(FILES_BY_PATH, path_key(user_id, record.folder, record.name), record.id.encode())
        _index_content(txn, record)
        ensure_folders(txn, user_id, record.folder, now)
        return Applied(file=record, entry=self._entry(user_id, op, record, device_id), released=released)

    def _delete(self, change: DeleteFile, user_id: str, device_id: str | None, expected: int | None) -> Applied:
        txn = self.txn
        record = queries.get_file(txn, user_id, change.file_id)
        _check_version(record, expected)
        txn.delete_key(FILES_BY_PATH, path_key(user_id, record.folder, record.name))
        _unindex_content(txn, record)
        record.deleted_at = self.now
        record.updated_at = self.now
        txn.put(FILES, record.id.encode(), record)
        return Applied(file=record, entry=self._entry(user_id, "deleted", record, device_id))

    def _move(self, change: MoveFile, user_id: str, device_id: str | None, expected: int | None) -> Applied:
        txn = self.txn
        record = queries.get_file(txn, user_id, change.file_id)
        _check_version(record, expected)
        folder = change.folder if change.folder is not None else record.folder
        name = change.name if change.name is not None else record.name
        before = (record.folder, record.name)
        if (folder, name) != before:
            taken = queries.find_by_path(txn, user_id, folder, name)
            if taken is not None:
                raise errors.Conflict(
                    f"{name!r} already exists in {folder}", details={"current": msgspec.to_builtins(file_entry(taken))}
                )
            txn.delete_key(FILES_BY_PATH, path_key(user_id, *before))
            txn.put_bytes(FILES_BY_PATH, path_key(user_id, folder, name), record.id.encode())
            ensure_folders(txn, user_id, folder, self.now)
        record.folder, record.name = folder, name
        record.version += 1
        record.updated_at = self.now
        txn.put(FILES, record.id.encode(), record)
        entry = self._entry(user_id, "moved", record, device_id, previous=before)
        return Applied(file=record, entry=entry)

    def _mkdir(self, change: MakeFolder, user_id: str, device_id: str | None) -> Applied:
        ensure_folders(self.txn, user_id, change.folder, self.now)
        entry = JournalEntry(
            seq=journal.head(self.txn, user_id) + 1,
            op="folder_created",
            file_id="",
            version=0,
            folder=change.folder,
            name="",
            checksum=None,
            size=0,
            device_id=device_id,
            at=self.now,
        )
        return Applied(file=None, entry=entry)

    def _entry(
        self,
        user_id: str,
        op: JournalOp,
        record: FileRecord,
        device_id: str | None,
        previous: tuple[str, str] | None = None,
    ) -> JournalEntry:
        return JournalEntry(
            seq=journal.head(self.txn, user_id) + 1,
            op=op,
            file_id=record.id,
            version=record.version,
            folder=record.folder,
            name=record.name,
            checksum=f"blake3:{record.blake3}",
            size=record.size,
            device_id=device_id,
            at=self.now,
            previous_folder=previous[0] if previous else None,
            previous_name=previous[1] if previous else None,
            mime_type=record.mime_type,
            modified_at=record.modified_at,
        )


class FileChanges:
    """Runs file-changing transactions and wakes the change feed after each commit."""

    def __init__(self, meta: MetaStore, feed: ChangeFeed) -> None:
        self.meta = meta
        self.feed = feed
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(txn, user_id, entry)`` inside the transaction of every change."""
        self._subscribers.append(subscriber)

    async def write(self, fn: Callable[[ChangeTxn], T], *, now: float) -> T:
        """Run ``fn`` in one durable write transaction; its ``apply`` calls change files.

        Like ``MetaStore.write``: ``fn`` must not await, and an exception it raises undoes all of
        it (the changes, their journal entries and what subscribers wrote) and is re-raised here.
        """
        changed: set[str] = set()

        def run(txn: Txn) -> T:
            ctx = ChangeTxn(txn, self._subscribers, now)
            result = fn(ctx)
            changed.update(ctx.changed_users)
            return result

        result: T = await self.meta.write(run)
        for user_id in changed:
            self.feed.publish(user_id)
        return result


def ensure_folders(txn: Txn, user_id: str, folder: str, now: float) -> None:
    """Create ``folder`` and its missing parents (part of a change; not a change of its own)."""
    for path in parent_folders(folder):
        key = folder_key(user_id, path)
        if txn.get(FOLDERS, key) is None:
            txn.put(FOLDERS, key, FolderRecord(created_at=now))


def _check_version(current: FileRecord | None, expected: int | None) -> None:
    if expected is None:
        return
    version = current.version if current is not None else 0
    if version != expected:
        details: dict[str, Any] = {"expectedVersion": expected, "currentVersion": version}
        if current is not None:
            details["current"] = msgspec.to_builtins(file_entry(current))
        raise errors.Conflict("The file changed since the version this change was based on", details=details)


def _index_content(txn: Txn, record: FileRecord) -> None:
    txn.put_bytes(CONTENT_BY_HASH, content_key(record.user_id, "blake3", record.blake3), record.id.encode())
    if record.sha256:
        txn.put_bytes(CONTENT_BY_HASH, content_key(record.user_id, "sha256", record.sha256), record.id.encode())


def _unindex_content(txn: Txn, record: FileRecord) -> None:
    for algo, digest in (("blake3", record.blake3), ("sha256", record.sha256)):
        if not digest:
            continue
        key = content_key(record.user_id, algo, digest)
        if txn.get_bytes(CONTENT_BY_HASH, key) == record.id.encode():
            txn.delete_key(CONTENT_BY_HASH, key)
