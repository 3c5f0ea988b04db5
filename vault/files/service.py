"""File bookkeeping inside metadata transactions: lookups, listings, versions, usage, journal.

Functions here take a ``Txn`` and never await: they run inside ``MetaStore.write`` so that a
file's manifest, its chunk references, the user's usage and the journal change atomically.
"""

from __future__ import annotations

from typing import Any

from vault import errors
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref
from vault.files.paths import parent_folders
from vault.files.records import (
    FILES,
    FOLDERS,
    ChunkRef,
    FileRecord,
    FolderRecord,
    content_key,
    folder_key,
    path_key,
)
from vault.ids import new_id
from vault.meta import Txn
from vault.sync import journal
from vault.uploads.usage import check_quota, get_usage, put_usage


def get_file(txn: Txn, user_id: str, file_id: str) -> FileRecord:
    """The caller's live file; ``NOT_FOUND`` for unknown, deleted or another user's ids."""
    record = txn.get(FILES, file_id.encode())
    if record is None or record.user_id != user_id or record.deleted_at is not None:
        raise errors.NotFound("No such file")
    return record


def find_by_path(txn: Txn, user_id: str, folder: str, name: str) -> FileRecord | None:
    raw = txn.get_bytes("files_by_path", path_key(user_id, folder, name))
    if raw is None:
        return None
    record = txn.get(FILES, raw)
    return record if record is not None and record.deleted_at is None else None


def find_by_content(txn: Txn, user_id: str, algo: str, hex_digest: str) -> FileRecord | None:
    """A live file of this user with this whole-file checksum (dedup is per user)."""
    raw = txn.get_bytes("content_by_hash", content_key(user_id, algo, hex_digest))
    if raw is None:
        return None
    record = txn.get(FILES, raw)
    if record is None or record.deleted_at is not None or record.user_id != user_id:
        return None
    return record


def list_folder(
    txn: Txn, user_id: str, folder: str, *, after: str | None = None, limit: int | None = None
) -> tuple[list[FileRecord], list[str], str | None]:
    """Live files directly in ``folder`` (by name, after ``after``, at most ``limit``), the names
    of its direct subfolders, and the name to continue after when ``limit`` cut the page."""
    files: list[FileRecord] = []
    start = path_key(user_id, folder, after) + b"\x00" if after is not None else None
    more: str | None = None
    for _, raw_id in txn.scan_bytes("files_by_path", path_key(user_id, folder, ""), start=start):
        record = txn.get(FILES, raw_id)
        if record is None or record.deleted_at is not None:
            continue
        if limit is not None and len(files) == limit:
            more = files[-1].name
            break
        files.append(record)
    return files, subfolders(txn, user_id, folder), more


def subfolders(txn: Txn, user_id: str, folder: str) -> list[str]:
    """Names of the direct subfolders of ``folder``, in byte order.

    Folder keys sort depth-first (``/a``, ``/a b``, ``/a/b``, ``/a/c``, ``/b``): on reaching a
    descendant the scan jumps past that child's whole subtree, so a deep tree costs a few seeks
    per child instead of a read of every folder below.
    """
    prefix = folder_key(user_id, folder.rstrip("/") + "/")
    names: list[str] = []
    start = prefix
    while True:
        found = next(iter(txn.scan_bytes("folders", prefix, start=start)), None)
        if found is None:
            return names
        rest = found[0][len(prefix) :]
        child, slash, _ = rest.partition(b"/")
        if slash:
            start = prefix + child + b"0"  # "/" is 0x2f: skip every "child/..." key at once
        else:
            names.append(child.decode())
            start = prefix + child + b"\x00"  # the next key after "child" itself


def ensure_folders(txn: Txn, user_id: str, folder: str, now: float) -> None:
    for path in parent_folders(folder):
        key = folder_key(user_id, path)
        if txn.get(FOLDERS, key) is None:
            txn.put(FOLDERS, key, FolderRecord(created_at=now))


def _index_content(txn: Txn, record: FileRecord) -> None:
    txn.put_bytes("content_by_hash", content_key(record.user_id, "blake3", record.blake3), record.id.encode())
    if record.sha256:
        txn.put_bytes("content_by_hash", content_key(record.user_id, "sha256", record.sha256), record.id.encode())


def _unindex_content(txn: Txn, record: FileRecord) -> None:
    for algo, digest in (("blake3", record.blake3), ("sha256", record.sha256)):
        if not digest:
            continue
        key = content_key(record.user_id, algo, digest)
        if txn.get_bytes("content_by_hash", key) == record.id.encode():
            txn.delete_key("content_by_hash", key)


def store_content(
    txn: Txn,
    *,
    user_id: str,
    folder: str,
    name: str,
    size: int,
    mime_type: str,
    blake3_hex: str,
    sha256_hex: str | None,
    chunks: list[ChunkRef],
    modified_at: float | None,
    metadata: dict[str, Any],
    now: float,
    quota: int,
) -> tuple[FileRecord, list[ChunkId]]:
    """Create a file, or a new version of the live file at the same path.

    The caller hands over one reference on every chunk in ``chunks`` (taken while uploading).
    Returns the record and the chunk ids whose count dropped to zero (now garbage).
    """
    existing = find_by_path(txn, user_id, folder, name)
    usage = get_usage(txn, user_id)
    freed = existing.size if existing is not None else 0
    check_quota(usage, quota, max(0, size - freed), include_reserved=False)
    released: list[ChunkId] = []
    if existing is not None:
        released = decref(txn, [ChunkId(c.chunk_id) for c in existing.chunks])
        _unindex_content(txn, existing)
        record = existing
        record.version += 1
        op: journal.JournalOp = "updated"
    else:
        record = FileRecord(
            id=new_id("file"),
            user_id=user_id,
            name=name,
            folder=folder,
            size=size,
            mime_type=mime_type,
            blake3=blake3_hex,
            created_at=now,
            modified_at=now,
            updated_at=now,
        )
        op = "created"
    record.size = size
    record.mime_type = mime_type
    record.blake3 = blake3_hex
    record.sha256 = sha256_hex
    record.chunks = chunks
    record.modified_at = modified_at if modified_at is not None else now
    record.updated_at = now
    record.metadata = metadata
    usage.used += size - freed
    put_usage(txn, user_id, usage)
    txn.put(FILES, record.id.encode(), record)
    txn.put_bytes("files_by_path", path_key(user_id, folder, name), record.id.encode())
    _index_content(txn, record)
    ensure_folders(txn, user_id, folder, now)
    journal.append(txn, user_id, record.id, op, now)
    return record, released


def readable_file(txn: Txn, user_id: str, file_id: str) -> FileRecord:
    """A file the caller may read: their own (shared files join here when shares land)."""
    return get_file(txn, user_id, file_id)
