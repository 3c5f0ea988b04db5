"""Reading a user's files and folders inside a metadata transaction (lookups and listings).

Nothing here writes: every change goes through ``vault.files.changes``. Functions take a ``Txn``
and never await; listings decode file records only, never their chunk manifests.
"""

from __future__ import annotations

import msgspec

from vault import errors
from vault.files import shares
from vault.files.records import (
    CONTENT_BY_HASH,
    FILES,
    FILES_BY_PATH,
    FOLDERS,
    MANIFESTS,
    FileRecord,
    Manifest,
    content_key,
    folder_key,
    path_key,
)
from vault.meta import Txn


def get_file(txn: Txn, user_id: str, file_id: str) -> FileRecord:
    """The caller's live file; ``NOT_FOUND`` for unknown, deleted or another user's ids."""
    record = txn.get(FILES, file_id.encode())
    if record is None or record.user_id != user_id or record.deleted_at is not None:
        raise errors.NotFound("No such file")
    return record


def readable_file(txn: Txn, user_id: str, file_id: str) -> FileRecord:
    """A file the caller may read: their own, or one shared with them (shown in
    ``/Shared with me``); ``NOT_FOUND`` for everything else, the same as an unknown id."""
    record = txn.get(FILES, file_id.encode())
    if record is None or record.deleted_at is not None:
        raise errors.NotFound("No such file")
    if record.user_id == user_id:
        return record
    if shares.share_for(txn, file_id, user_id) is None:
        raise errors.NotFound("No such file")
    return as_shared(record)


def as_shared(record: FileRecord) -> FileRecord:
    """``record`` as a recipient sees it: in the shared folder, the owner's folders hidden."""
    return msgspec.structs.replace(record, folder=shares.SHARED_FOLDER)


def received_files(txn: Txn, user_id: str) -> list[FileRecord]:
    """The live files shared with ``user_id``, as the recipient sees them."""
    found = []
    for share in shares.user_shares(txn, user_id):
        if share.recipient_id != user_id:
            continue
        record = txn.get(FILES, share.file_id.encode())
        if record is not None and record.deleted_at is None:
            found.append(as_shared(record))
    return found


def manifest(txn: Txn, record: FileRecord) -> Manifest:
    """The chunks of ``record``'s content (a live file always has one)."""
    found = txn.get(MANIFESTS, record.id.encode())
    if found is None:  # pragma: no cover - written in the same transaction as the record
        raise errors.InternalError()
    return found


def find_by_path(txn: Txn, user_id: str, folder: str, name: str) -> FileRecord | None:
    raw = txn.get_bytes(FILES_BY_PATH, path_key(user_id, folder, name))
    if raw is None:
        return None
    record = txn.get(FILES, raw)
    return record if record is not None and record.deleted_at is None else None


def find_by_content(txn: Txn, user_id: str, algo: str, hex_digest: str) -> FileRecord | None:
    """A live file of this user with this whole-file checksum (dedup is per user)."""
    prefix = content_key(user_id, algo, hex_digest)
    for key in txn.keys(CONTENT_BY_HASH, prefix):
        record = txn.get(FILES, key[len(prefix) :])
        if record is not None and record.deleted_at is None and record.user_id == user_id:
            return record
    return None


def folder_exists(txn: Txn, user_id: str, folder: str) -> bool:
    return folder == "/" or txn.get(FOLDERS, folder_key(user_id, folder)) is not None


def list_folder(
    txn: Txn, user_id: str, folder: str, *, after: str | None = None, limit: int | None = None
) -> tuple[list[FileRecord], list[str], str | None]:
    """Live files directly in ``folder`` (by name, after ``after``, at most ``limit``), the names
    of its direct subfolders, and the name to continue after when ``limit`` cut the page."""
    files: list[FileRecord] = []
    start = path_key(user_id, folder, after) + b"\x00" if after is not None else None
    more: str | None = None
    for _, raw_id in txn.scan_bytes(FILES_BY_PATH, path_key(user_id, folder, ""), start=start):
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
        found = next(txn.keys(FOLDERS, prefix, start=start), None)
        if found is None:
            return names
        rest = found[len(prefix) :]
        child, slash, _ = rest.partition(b"/")
        if slash:
            start = prefix + child + b"0"  # "/" is 0x2f: skip every "child/..." key at once
        else:
            names.append(child.decode())
            start = prefix + child + b"\x00"  # the next key after "child" itself


def files_below(txn: Txn, user_id: str, folder: str) -> list[FileRecord]:
    """Every live file in ``folder`` and the folders below it (path keys: ``folder NUL name`` for
    its own files, ``folder/…`` for its subtree; ``/a b`` is not below ``/a``)."""
    base = folder.rstrip("/")
    prefixes = [path_key(user_id, folder, ""), folder_key(user_id, base + "/")]
    if folder == "/":
        prefixes = [folder_key(user_id, "/")]  # every path of the user
    found: list[FileRecord] = []
    for prefix in prefixes:
        for _, raw_id in txn.scan_bytes(FILES_BY_PATH, prefix):
            record = txn.get(FILES, raw_id)
            if record is not None and record.deleted_at is None:
                found.append(record)
    return found


def folders_below(txn: Txn, user_id: str, folder: str) -> list[str]:
    """``folder`` itself (when it has a record) and every folder below it, depth-first."""
    found = [folder] if txn.get(FOLDERS, folder_key(user_id, folder)) is not None else []
    for key in txn.keys(FOLDERS, folder_key(user_id, folder.rstrip("/") + "/")):
        found.append(key.decode().partition("\x00")[2])
    return found
