"""Opening a data directory's metadata store, and the upgrades of its schema (``vault.meta.schema``).

Each step runs inside the write transaction that opens the store, so an interrupted upgrade leaves
the old layout intact.

They live above ``vault.meta`` because they know the records of the layers that own them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from vault.files.journal import JOURNAL, JournalEntry
from vault.files.records import (
    CONTENT_BY_HASH,
    FILES,
    MANIFESTS,
    ChunkRef,
    FileRecord,
    Manifest,
    content_entry_key,
)
from vault.meta import MetaStore, Txn, Upgrades


class _FileRecordV1(msgspec.Struct, kw_only=True):
    id: str
    chunks: list[ChunkRef] = msgspec.field(default_factory=list)


class _JournalEntryV1(msgspec.Struct, array_like=True, frozen=True):
    file_id: str
    op: Literal["created", "updated", "deleted"]
    at: float


_file_v1 = msgspec.msgpack.Decoder(_FileRecordV1)
_journal_v1 = msgspec.msgpack.Decoder(_JournalEntryV1)


def _v1_to_v2(txn: Txn) -> None:
    """Manifests move out of file records; journal entries gain what a syncing client needs
    (taken from the file as it is now: version 1 recorded no more than id, operation and time)."""
    records: dict[str, FileRecord] = {}
    # The dedup index becomes one key per file (schema 1 kept one file per content).
    for key in list(txn.keys(CONTENT_BY_HASH)):
        txn.delete_key(CONTENT_BY_HASH, key)
    for key, raw in list(txn.scan_bytes(FILES)):
        old = _file_v1.decode(raw)
        current = FILES.decode(raw)  # unknown fields (the old ``chunks``) are skipped
        txn.put(MANIFESTS, key, Manifest(old.chunks))
        txn.put(FILES, key, current)
        records[current.id] = current
        if current.deleted_at is None:
            for algo, digest in (("blake3", current.blake3), ("sha256", current.sha256)):
                if digest:
                    key = content_entry_key(current.user_id, algo, digest, current.id)
                    txn.put_bytes(CONTENT_BY_HASH, key, b"")
    for key, raw in list(txn.scan_bytes(JOURNAL)):
        entry = _journal_v1.decode(raw)
        record = records.get(entry.file_id)
        fields: dict[str, Any] = {"folder": "", "name": "", "checksum": None, "size": 0, "version": 0}
        if record is not None:
            fields = {
                "folder": record.folder,
                "name": record.name,
                "checksum": f"blake3:{record.blake3}",
                "size": record.size,
                "version": record.version,
                "mime_type": record.mime_type,
                "modified_at": record.modified_at,
            }
        seq = int.from_bytes(key[-8:], "big")
        txn.put(
            JOURNAL,
            key,
            JournalEntry(seq=seq, op=entry.op, file_id=entry.file_id, device_id=None, at=entry.at, **fields),
        )


UPGRADES: Upgrades = {1: _v1_to_v2}


def metadata_store(data_dir: Path) -> MetaStore:
    """The metadata store of a data directory (node and command line alike), able to upgrade an
    older schema when it opens."""
    return MetaStore(Path(data_dir) / "meta", upgrades=UPGRADES)
