"""The one way to change a user's files and folders.

Every change (a new file, a new version, a delete, a rename or move, a new folder, a folder moved
or deleted with everything below it, a file restored from the trash or an earlier version made
current) is described by one of the ``Change`` structs and applied by ``ChangeTxn.apply`` inside a
metadata write transaction. That one function writes, atomically:

- the file record and its index entries (path, content hash), and its manifest;
- the chunk references the content holds (the caller hands over one reference per chunk);
- the user's usage;
- a journal entry with everything a syncing client needs: exactly one per file the change touched
  (a folder move or delete writes one per file it carried, then the folder's own entry);
- whatever the subscribers registered with ``FileChanges.subscribe`` write (the push outbox, for
  example), in the same transaction, so they can never disagree with the change.

``FileChanges.write`` runs such a transaction and, once it committed, wakes everyone watching the
changed users on the ``ChangeFeed``. Nothing that reacts to a change has to scan for it.

A new version keeps the content it replaces (``vault.files.versions``) and a delete keeps the file
(``vault.files.trash``): their references and usage stay until ``vault.files.reclaim`` purges them
once their retention has passed (not a change a client sees: no journal entry).

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
from vault.files import journal, queries, shares, trash, versions
from vault.files.feed import ChangeFeed
from vault.files.journal import JournalEntry, JournalOp
from vault.files.paths import MAX_FOLDER_BYTES, parent_folders
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
    content_entry_key,
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


class MoveFolder(msgspec.Struct, frozen=True, kw_only=True):
    """Move (and/or rename) ``folder`` to the path ``to``, with every folder and file below it."""

    folder: str
    to: str


class DeleteFolder(msgspec.Struct, frozen=True, kw_only=True):
    """Delete ``folder`` and everything below it: every file goes to the trash."""

    folder: str


class RestoreFile(msgspec.Struct, frozen=True, kw_only=True):
    """Bring a file back from the trash to its folder (recreated when missing), under a name like
    ``a (restored 1).jpg`` when its own name was taken meanwhile."""

    file_id: str


class RestoreVersion(msgspec.Struct, frozen=True, kw_only=True):
    """Make a kept earlier content the file's newest version (the current one is kept in turn)."""

    file_id: str
    version: int


Change = PutContent | DeleteFile | MoveFile | MakeFolder | MoveFolder | DeleteFolder | RestoreFile | RestoreVersion


class Applied(msgspec.Struct, frozen=True, kw_only=True):
    """What a change did: the file as it now is (``None`` for folders), its journal entry, and
    the chunks whose last reference it dropped (garbage once committed). A folder move or delete
    also lists the files it carried and their entries (written just before ``entry``)."""

    file: FileRecord | None
    entry: JournalEntry
    released: list[ChunkId] = msgspec.field(default_factory=list)
    carried: list[FileRecord] = msgspec.field(default_factory=list)
    carried_entries: list[JournalEntry] = msgspec.field(default_factory=list)


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
        elif isinstance(change, MakeFolder):
            applied = self._mkdir(change, user_id, device_id)
        elif isinstance(change, MoveFolder):
            applied = self._move_folder(change, user_id, device_id)
        elif isinstance(change, DeleteFolder):
            applied = self._delete_folder(change, user_id, device_id)
        elif isinstance(change, RestoreFile):
            applied = self._restore(change, user_id, device_id, expected_version)
        else:
            applied = self._restore_version(change, user_id, device_id, expected_version)
        self._record(user_id, applied.entry)
        self.changed_users.add(user_id)
        return applied

    def _record(self, user_id: str, entry: JournalEntry) -> None:
        """Journal ``entry`` (its ``seq`` is the head + 1) and hand it to every subscriber; a change
        to a shared file is journalled for each recipient too, as they see it."""
        journal.append(self.txn, user_id, entry)
        for subscriber in self._subscribers:
            subscriber(self.txn, user_id, entry)
        if entry.file_id:
            for recipient in shares.recipients(self.txn, entry.file_id):
                self._mirror(recipient, entry, entry.op)

    def _mirror(self, recipient: str, entry: JournalEntry, op: JournalOp) -> None:
        """``entry`` in ``recipient``'s journal: in the shared folder, made by nobody they know."""
        moved = entry.previous_folder is not None or entry.previous_name is not None
        mirrored = msgspec.structs.replace(
            entry,
            seq=journal.head(self.txn, recipient) + 1,
            op=op,
            folder=shares.SHARED_FOLDER,
            device_id=None,
            previous_folder=shares.SHARED_FOLDER if moved else None,
        )
        journal.append(self.txn, recipient, mirrored)
        for subscriber in self._subscribers:
            subscriber(self.txn, recipient, mirrored)
        self.changed_users.add(recipient)

    def share(self, share: shares.Share) -> FileRecord:
        """Let ``share.recipient_id`` read the owner's live file: it appears in their sync."""
        record = queries.get_file(self.txn, share.owner_id, share.file_id)
        shares.put_share(self.txn, share)
        self._mirror(share.recipient_id, self._entry(share.owner_id, "created", record, None), "created")
        return record

    def unshare(self, share: shares.Share) -> None:
        """Revoke ``share`` at once: the file leaves the recipient's sync (if it still exists)."""
        shares.delete_share(self.txn, share)
        record = self.txn.get(FILES, share.file_id.encode())
        if record is not None and record.deleted_at is None:
            self._mirror(share.recipient_id, self._entry(share.owner_id, "deleted", record, None), "deleted")

    def touch(self, user_id: str) -> None:
        """Wake ``user_id``'s watchers after the commit although no file changed (a conflict was
        recorded or resolved: what ``sync/status`` answers changed all the same)."""
        self.changed_users.add(user_id)

    # -- the changes ---------------------------------------------------------------------------

    def _put(
        self, change: PutContent, user_id: str, device_id: str | None, expected: int | None, quota: int
    ) -> Applied:
        txn, now = self.txn, self.now
        existing = queries.find_by_path(txn, user_id, change.folder, change.name)
        check_version(existing, expected)
        usage = get_usage(txn, user_id)
        # The replaced content is kept as an earlier version, still counted: the whole new size counts.
        check_quota(usage, quota, change.size, include_reserved=False)
        if existing is not None:
            versions.keep(txn, existing, queries.manifest(txn, existing), now)
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
        usage.used += change.size
        put_usage(txn, user_id, usage)
        txn.put(FILES, record.id.encode(), record)
        txn.put(MANIFESTS, record.id.encode(), Manifest(list(change.chunks)))
        txn.put_bytes(FILES_BY_PATH, path_key(user_id, record.folder, record.name), record.id.encode())
        _index_content(txn, record)
        ensure_folders(txn, user_id, record.folder, now)
        return Applied(file=record, entry=self._entry(user_id, op, record, device_id))

    def _delete(self, change: DeleteFile, user_id: str, device_id: str | None, expected: int | None) -> Applied:
        txn = self.txn
        record = queries.get_file(txn, user_id, change.file_id)
        check_version(record, expected)
        self._to_trash(record)
        return Applied(file=record, entry=self._entry(user_id, "deleted", record, device_id))

    def _to_trash(self, record: FileRecord) -> None:
        """Out of the path and content indexes, into the trash (content, references and usage kept)."""
        txn = self.txn
        txn.delete_key(FILES_BY_PATH, path_key(record.user_id, record.folder, record.name))
        _unindex_content(txn, record)
        record.deleted_at = self.now
        record.updated_at = self.now
        txn.put(FILES, record.id.encode(), record)
        trash.put(txn, record)

    def _move(self, change: MoveFile, user_id: str, device_id: str | None, expected: int | None) -> Applied:
        txn = self.txn
        record = queries.get_file(txn, user_id, change.file_id)
        check_version(record, expected)
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

    def _move_folder(self, change: MoveFolder, user_id: str, device_id: str | None) -> Applied:
        txn, source, target = self.txn, change.folder, change.to
        if source == "/":
            raise errors.ValidationError("the root folder cannot be moved", details={"field": "folder"})
        if not queries.folder_exists(txn, user_id, source):
            raise errors.NotFound("No such folder")
        if target == source or target.startswith(source + "/"):
            raise errors.Conflict(f"{source} cannot be moved into itself", details={"folder": source, "to": target})
        parent, _, name = target.rpartition("/")
        parent = parent or "/"
        if queries.folder_exists(txn, user_id, target) or queries.find_by_path(txn, user_id, parent, name):
            raise errors.Conflict(f"{target} already exists", details={"folder": source, "to": target})
        folders = queries.folders_below(txn, user_id, source)
        files = queries.files_below(txn, user_id, source)
        if any(len((target + path[len(source) :]).encode()) > MAX_FOLDER_BYTES for path in folders):
            raise errors.ValidationError("the moved folders' paths would be too long", details={"field": "name"})
        ensure_folders(txn, user_id, parent, self.now)
        for path in folders:
            key = folder_key(user_id, path)
            kept = txn.get(FOLDERS, key) or FolderRecord(created_at=self.now)
            txn.delete_key(FOLDERS, key)
            txn.put(FOLDERS, folder_key(user_id, target + path[len(source) :]), kept)
        entries: list[JournalEntry] = []
        for record in files:
            before = (record.folder, record.name)
            txn.delete_key(FILES_BY_PATH, path_key(user_id, *before))
            record.folder = target + record.folder[len(source) :]
            txn.put_bytes(FILES_BY_PATH, path_key(user_id, record.folder, record.name), record.id.encode())
            record.version += 1
            record.updated_at = self.now
            txn.put(FILES, record.id.encode(), record)
            entries.append(self._entry(user_id, "moved", record, device_id, previous=before))
            self._record(user_id, entries[-1])
        entry = self._folder_entry(user_id, "folder_moved", target, device_id, previous_folder=source)
        return Applied(file=None, entry=entry, carried=files, carried_entries=entries)

    def _delete_folder(self, change: DeleteFolder, user_id: str, device_id: str | None) -> Applied:
        txn, folder = self.txn, change.folder
        if folder == "/":
            raise errors.ValidationError("the root folder cannot be deleted", details={"field": "folder"})
        if not queries.folder_exists(txn, user_id, folder):
            raise errors.NotFound("No such folder")
        files = queries.files_below(txn, user_id, folder)
        entries: list[JournalEntry] = []
        for record in files:
            self._to_trash(record)
            entries.append(self._entry(user_id, "deleted", record, device_id))
            self._record(user_id, entries[-1])
        for path in queries.folders_below(txn, user_id, folder):
            txn.delete_key(FOLDERS, folder_key(user_id, path))
        entry = self._folder_entry(user_id, "folder_deleted", folder, device_id)
        return Applied(file=None, entry=entry, carried=files, carried_entries=entries)

    def _restore(self, change: RestoreFile, user_id: str, device_id: str | None, expected: int | None) -> Applied:
        txn = self.txn
        record = trash.trashed_file(txn, user_id, change.file_id)
        if record is None:
            raise errors.NotFound("No such file in the trash")
        check_version(record, expected)
        trash.remove(txn, record)
        ensure_folders(txn, user_id, record.folder, self.now)
        record.name = trash.restored_name(txn, user_id, record.folder, record.name)
        record.deleted_at = None
        record.version += 1
        record.updated_at = self.now
        txn.put(FILES, record.id.encode(), record)
        txn.put_bytes(FILES_BY_PATH, path_key(user_id, record.folder, record.name), record.id.encode())
        _index_content(txn, record)
        return Applied(file=record, entry=self._entry(user_id, "restored", record, device_id))

    def _restore_version(
        self, change: RestoreVersion, user_id: str, device_id: str | None, expected: int | None
    ) -> Applied:
        txn = self.txn
        record = queries.get_file(txn, user_id, change.file_id)
        check_version(record, expected)
        # The kept content's references and usage move back to the file, and the current content's
        # to a kept version of its own: the user's usage is unchanged.
        kept, manifest = versions.take(txn, record, change.version)
        versions.keep(txn, record, queries.manifest(txn, record), self.now)
        _unindex_content(txn, record)
        record.size = kept.size
        record.mime_type = kept.mime_type
        record.blake3 = kept.blake3
        record.sha256 = kept.sha256
        record.metadata = dict(kept.metadata)
        record.modified_at = self.now  # the newest version, made now
        record.version += 1
        record.updated_at = self.now
        txn.put(FILES, record.id.encode(), record)
        txn.put(MANIFESTS, record.id.encode(), manifest)
        _index_content(txn, record)
        return Applied(file=record, entry=self._entry(user_id, "updated", record, device_id))

    def _folder_entry(
        self, user_id: str, op: JournalOp, folder: str, device_id: str | None, previous_folder: str | None = None
    ) -> JournalEntry:
        return JournalEntry(
            seq=journal.head(self.txn, user_id) + 1,
            op=op,
            file_id="",
            version=0,
            folder=folder,
            name="",
            checksum=None,
            size=0,
            device_id=device_id,
            at=self.now,
            previous_folder=previous_folder,
        )

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


def check_version(current: FileRecord | None, expected: int | None) -> None:
    """``CONFLICT`` naming the current file unless ``expected`` is ``None`` or its version."""
    if expected is None:
        return
    version = current.version if current is not None else 0
    if version != expected:
        details: dict[str, Any] = {"expectedVersion": expected, "currentVersion": version}
        if current is not None:
            details["current"] = msgspec.to_builtins(file_entry(current))
        raise errors.Conflict("The file changed since the version this change was based on", details=details)


def _index_content(txn: Txn, record: FileRecord) -> None:
    for algo, digest in (("blake3", record.blake3), ("sha256", record.sha256)):
        if digest:
            txn.put_bytes(CONTENT_BY_HASH, content_entry_key(record.user_id, algo, digest, record.id), b"")


def _unindex_content(txn: Txn, record: FileRecord) -> None:
    for algo, digest in (("blake3", record.blake3), ("sha256", record.sha256)):
        if digest:
            txn.delete_key(CONTENT_BY_HASH, content_entry_key(record.user_id, algo, digest, record.id))
