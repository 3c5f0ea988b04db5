"""What a run of journal entries means to a syncing client, one answer per file (pure).

Per file, the entries in the run collapse to its latest state: a file created (or restored from
the trash) in the run is ``created``, one that existed before is ``updated``, and one whose last
entry is a delete is only ``deleted`` (created-then-deleted included: a client that never saw it
just drops nothing). Renames and moves are updates (the entry carries the new folder and name).
Folders are answered the same way: created, deleted, or moved from one path to another.
"""

from __future__ import annotations

from collections.abc import Iterable

from vault.clock import rfc3339
from vault.files.journal import JournalEntry
from vault.files.records import FileEntry
from vault.wire import WireAnswer

_NEW = ("created", "restored")


class DeletedFile(WireAnswer):
    id: str
    deleted_at: str


class MovedFolder(WireAnswer):
    previous_folder: str
    folder: str


class FolderChanges(WireAnswer):
    created: list[str]
    deleted: list[str]
    moved: list[MovedFolder]


class Changes(WireAnswer):
    created: list[FileEntry]
    updated: list[FileEntry]
    deleted: list[DeletedFile]
    folders: FolderChanges

    @property
    def empty(self) -> bool:
        folders = self.folders
        return not (self.created or self.updated or self.deleted or folders.created or folders.deleted or folders.moved)


def entry_file(entry: JournalEntry) -> FileEntry:
    """The file as it stood right after ``entry`` (as every endpoint shows a file)."""
    return FileEntry(
        id=entry.file_id,
        name=entry.name,
        folder=entry.folder,
        size=entry.size,
        mime_type=entry.mime_type or "application/octet-stream",
        modified_at=rfc3339(entry.modified_at or entry.at),
        checksum=entry.checksum or "",
        version=entry.version,
    )


def coalesce(entries: Iterable[JournalEntry]) -> Changes:
    first_op: dict[str, str] = {}
    last: dict[str, JournalEntry] = {}
    folders: dict[str, str] = {}  # path -> "created" | "deleted", in first-seen order
    moved: list[MovedFolder] = []
    for entry in entries:
        if entry.file_id:
            first_op.setdefault(entry.file_id, entry.op)
            last[entry.file_id] = entry
        elif entry.op == "folder_created":
            folders[entry.folder] = "created"
        elif entry.op == "folder_deleted":
            folders[entry.folder] = "deleted"
        elif entry.op == "folder_moved" and entry.previous_folder is not None:
            if folders.get(entry.previous_folder) == "created":
                del folders[entry.previous_folder]  # made and moved in this run: made where it is now
                folders[entry.folder] = "created"
            else:
                moved.append(MovedFolder(previous_folder=entry.previous_folder, folder=entry.folder))
    created: list[FileEntry] = []
    updated: list[FileEntry] = []
    deleted: list[DeletedFile] = []
    for file_id, entry in last.items():
        if entry.op == "deleted":
            deleted.append(DeletedFile(id=file_id, deleted_at=rfc3339(entry.at)))
        elif first_op[file_id] in _NEW:
            created.append(entry_file(entry))
        else:
            updated.append(entry_file(entry))
    return Changes(
        created=created,
        updated=updated,
        deleted=deleted,
        folders=FolderChanges(
            created=[path for path, state in folders.items() if state == "created"],
            deleted=[path for path, state in folders.items() if state == "deleted"],
            moved=moved,
        ),
    )
