"""The trash: deleted files, kept (content, references, usage and all) until they are restored or
their ``[files] trash_retention`` has passed.

A deleted file keeps its record (``deleted_at`` set, out of every path and content index) and its
manifest. Two indexes find it without scanning files:

- ``TRASH``: ``user NUL inverted-time file_id`` — one user's trash, newest first, a page at a time;
- ``TRASH_BY_TIME``: ``deleted_at user NUL file_id`` — every user's trash, oldest first, so expiry
  reads only what is due.

Entering and leaving the trash (``put``/``remove``) happen inside ``vault.files.changes``; purging
(``purge``) is not a change a client sees and runs from ``vault.files.reclaim``. Nothing here awaits.
"""

from __future__ import annotations

import struct

from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref
from vault.files import queries, shares, versions
from vault.files.paths import MAX_NAME_BYTES
from vault.files.records import FILES, MANIFESTS, TRASH, TRASH_BY_TIME, FileRecord
from vault.meta import Txn
from vault.quota import get_usage, put_usage

_MICROS = struct.Struct(">Q")
_NEWEST = (1 << 64) - 1


def _micros(deleted_at: float) -> int:
    return max(0, min(_NEWEST, round(deleted_at * 1_000_000)))


def _prefix(user_id: str) -> bytes:
    return user_id.encode() + b"\x00"


def trash_key(user_id: str, deleted_at: float, file_id: str) -> bytes:
    """The ``TRASH`` key: ascending keys are newest first (the time is inverted)."""
    return _prefix(user_id) + _MICROS.pack(_NEWEST - _micros(deleted_at)) + file_id.encode()


def expiry_key(user_id: str, deleted_at: float, file_id: str) -> bytes:
    return _MICROS.pack(_micros(deleted_at)) + user_id.encode() + b"\x00" + file_id.encode()


def put(txn: Txn, record: FileRecord) -> None:
    """Index ``record`` (just deleted: ``deleted_at`` set) in the trash."""
    assert record.deleted_at is not None
    txn.put_bytes(TRASH, trash_key(record.user_id, record.deleted_at, record.id), b"")
    txn.put_bytes(TRASH_BY_TIME, expiry_key(record.user_id, record.deleted_at, record.id), b"")


def remove(txn: Txn, record: FileRecord) -> None:
    """Take ``record`` (still showing its ``deleted_at``) out of the trash indexes."""
    assert record.deleted_at is not None
    txn.delete_key(TRASH, trash_key(record.user_id, record.deleted_at, record.id))
    txn.delete_key(TRASH_BY_TIME, expiry_key(record.user_id, record.deleted_at, record.id))


def trashed_file(txn: Txn, user_id: str, file_id: str) -> FileRecord | None:
    """The caller's file if it is in the trash (``None`` for live, unknown or others' ids)."""
    record = txn.get(FILES, file_id.encode())
    if record is None or record.user_id != user_id or record.deleted_at is None:
        return None
    return record


def page(
    txn: Txn, user_id: str, *, after: bytes | None = None, limit: int = 1000
) -> tuple[list[FileRecord], bytes | None]:
    """The user's trashed files, newest first, after the position ``after`` (a cursor this gave
    out), at most ``limit``; and the cursor to continue from when the page was cut."""
    prefix = _prefix(user_id)
    start = prefix + after + b"\x00" if after is not None else None
    records: list[FileRecord] = []
    last = b""
    for key, _ in txn.scan_bytes(TRASH, prefix, start=start):
        if len(records) == limit:
            return records, last
        record = txn.get(FILES, key[len(prefix) + _MICROS.size :])
        if record is None or record.deleted_at is None:  # pragma: no cover - removed with the record
            continue
        records.append(record)
        last = key[len(prefix) :]
    return records, None


def restored_name(txn: Txn, user_id: str, folder: str, name: str) -> str:
    """``name`` if free in ``folder``, else ``stem (restored N).ext`` with the first free ``N``."""
    if queries.find_by_path(txn, user_id, folder, name) is None:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    n = 1
    while True:
        tail = f" (restored {n})" + (f".{suffix}" if suffix else "")
        room = MAX_NAME_BYTES - len(tail.encode())
        short = stem.encode()[: max(1, room)].decode("utf-8", "ignore") or "file"
        candidate = short + tail
        if queries.find_by_path(txn, user_id, folder, candidate) is None:
            return candidate
        n += 1


class Due:
    """A trashed file whose retention has passed (from ``due``)."""

    __slots__ = ("deleted_at", "file_id", "key", "user_id")

    def __init__(self, key: bytes, user_id: str, file_id: str, deleted_at: float) -> None:
        self.key = key
        self.user_id = user_id
        self.file_id = file_id
        self.deleted_at = deleted_at


def due(txn: Txn, cutoff: float, *, limit: int) -> list[Due]:
    """Up to ``limit`` trash entries deleted at or before ``cutoff``, oldest first."""
    found: list[Due] = []
    bound = _micros(cutoff)
    for key in txn.keys(TRASH_BY_TIME):
        micros: int = _MICROS.unpack(key[: _MICROS.size])[0]
        if micros > bound or len(found) >= limit:
            break
        user, _, file_id = key[_MICROS.size :].partition(b"\x00")
        found.append(Due(key, user.decode(), file_id.decode(), micros / 1_000_000))
    return found


def purge(txn: Txn, item: Due) -> tuple[list[ChunkId], int] | None:
    """Forget a trashed file for good: its references (and those of its kept versions), its usage,
    its record, manifest and shares. Returns the chunks left unreferenced and the bytes freed;
    ``None`` when the file was restored meanwhile (only the stale index entry goes). No journal
    entry: a client already saw the delete."""
    txn.delete_key(TRASH_BY_TIME, item.key)
    record = txn.get(FILES, item.file_id.encode())
    if (
        record is None
        or record.user_id != item.user_id
        or record.deleted_at is None
        or _micros(record.deleted_at) != _micros(item.deleted_at)
    ):
        return None
    txn.delete_key(TRASH, trash_key(record.user_id, record.deleted_at, record.id))
    manifest = txn.get(MANIFESTS, record.id.encode())  # always there; a damaged one must not stall the purge
    released = decref(txn, [ChunkId(c.chunk_id) for c in manifest.chunks]) if manifest is not None else []
    freed = record.size
    for kept in versions.history(txn, record.id):
        more, size = versions.purge(txn, kept)
        released += more
        freed += size
    txn.delete(MANIFESTS, record.id.encode())
    txn.delete(FILES, record.id.encode())
    shares.forget_file(txn, record.id)  # nothing is left to read through them
    usage = get_usage(txn, record.user_id)
    usage.used = max(0, usage.used - record.size)
    put_usage(txn, record.user_id, usage)
    return released, freed
