"""Earlier contents of a file, kept for ``[files] version_retention`` after a newer one replaced it.

When new content replaces a file's current one (``PutContent`` at a taken path, or a version
restored), ``keep`` moves the current content aside: a ``VersionRecord`` under ``file_id NUL
version`` with its manifest beside it, and a ``VERSIONS_BY_TIME`` entry (``replaced_at file_id NUL
version``) so expiry reads only what is due. The chunk references and the usage stay with it until
``purge`` (called by ``vault.files.reclaim``, or with the file when its trash entry is purged).
Nothing here awaits.
"""

from __future__ import annotations

import struct

from vault import errors
from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref
from vault.files.records import (
    VERSION_MANIFESTS,
    VERSIONS,
    VERSIONS_BY_TIME,
    FileRecord,
    Manifest,
    VersionRecord,
)
from vault.meta import Txn
from vault.quota import get_usage, put_usage

_NUMBER = struct.Struct(">Q")
_MICROS = struct.Struct(">Q")


def _micros(at: float) -> int:
    return max(0, round(at * 1_000_000))


def version_key(file_id: str, version: int) -> bytes:
    return file_id.encode() + b"\x00" + _NUMBER.pack(version)


def expiry_key(file_id: str, version: int, replaced_at: float) -> bytes:
    return _MICROS.pack(_micros(replaced_at)) + version_key(file_id, version)


def keep(txn: Txn, record: FileRecord, manifest: Manifest, now: float) -> VersionRecord:
    """Set the current content of ``record`` aside as an earlier version (before it is replaced)."""
    kept = VersionRecord(
        file_id=record.id,
        user_id=record.user_id,
        version=record.version,
        size=record.size,
        mime_type=record.mime_type,
        blake3=record.blake3,
        sha256=record.sha256,
        modified_at=record.modified_at,
        replaced_at=now,
        metadata=dict(record.metadata),
    )
    key = version_key(record.id, record.version)
    txn.put(VERSIONS, key, kept)
    txn.put(VERSION_MANIFESTS, key, manifest)
    txn.put_bytes(VERSIONS_BY_TIME, expiry_key(record.id, record.version, now), b"")
    return kept


def take(txn: Txn, record: FileRecord, version: int) -> tuple[VersionRecord, Manifest]:
    """Remove an earlier version of ``record`` to make it current again (its references and usage
    move with it to the file); ``NOT_FOUND`` when no such version is kept."""
    key = version_key(record.id, version)
    kept = txn.get(VERSIONS, key)
    manifest = txn.get(VERSION_MANIFESTS, key)
    if kept is None or manifest is None or kept.user_id != record.user_id:
        raise errors.NotFound("No such version")
    txn.delete(VERSIONS, key)
    txn.delete(VERSION_MANIFESTS, key)
    txn.delete_key(VERSIONS_BY_TIME, expiry_key(record.id, version, kept.replaced_at))
    return kept, manifest


def history(txn: Txn, file_id: str) -> list[VersionRecord]:
    """The kept earlier versions of a file, newest first (records only, never their manifests)."""
    return [kept for _, kept in txn.scan(VERSIONS, file_id.encode() + b"\x00", reverse=True)]


class Due:
    """A kept version whose retention has passed (from ``due``)."""

    __slots__ = ("file_id", "key", "replaced_at", "version")

    def __init__(self, key: bytes, file_id: str, version: int, replaced_at: float) -> None:
        self.key = key
        self.file_id = file_id
        self.version = version
        self.replaced_at = replaced_at


def due(txn: Txn, cutoff: float, *, limit: int) -> list[Due]:
    """Up to ``limit`` kept versions replaced at or before ``cutoff``, oldest first."""
    found: list[Due] = []
    bound = _micros(cutoff)
    for key in txn.keys(VERSIONS_BY_TIME):
        micros: int = _MICROS.unpack(key[: _MICROS.size])[0]
        if micros > bound or len(found) >= limit:
            break
        rest = key[_MICROS.size :]
        file_id, number = rest[: -_NUMBER.size - 1], rest[-_NUMBER.size :]
        found.append(Due(key, file_id.decode(), _NUMBER.unpack(number)[0], micros / 1_000_000))
    return found


def purge_due(txn: Txn, item: Due) -> tuple[list[ChunkId], int] | None:
    """Forget an expired version (no journal entry: the file's current content is unchanged);
    ``None`` when it was restored or purged meanwhile (only the stale index entry goes)."""
    txn.delete_key(VERSIONS_BY_TIME, item.key)
    kept = txn.get(VERSIONS, version_key(item.file_id, item.version))
    if kept is None or _micros(kept.replaced_at) != _micros(item.replaced_at):
        return None
    return purge(txn, kept)


def purge(txn: Txn, kept: VersionRecord) -> tuple[list[ChunkId], int]:
    """Drop a kept version's references, usage and rows; the chunks left unreferenced and the bytes."""
    key = version_key(kept.file_id, kept.version)
    manifest = txn.get(VERSION_MANIFESTS, key)
    released = decref(txn, [ChunkId(c.chunk_id) for c in manifest.chunks]) if manifest is not None else []
    txn.delete(VERSIONS, key)
    txn.delete(VERSION_MANIFESTS, key)
    txn.delete_key(VERSIONS_BY_TIME, expiry_key(kept.file_id, kept.version, kept.replaced_at))
    usage = get_usage(txn, kept.user_id)
    usage.used = max(0, usage.used - kept.size)
    put_usage(txn, kept.user_id, usage)
    return released, kept.size
