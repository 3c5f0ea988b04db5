"""A data directory written by schema 1 opens under schema 2: manifests move out of file records
and journal entries gain what a syncing client needs; without the upgrades it refuses to open."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from vault.files import journal, queries
from vault.files.records import ChunkRef
from vault.meta import META, SCHEMA_VERSION, MetaStore, MetaStoreError, RawTable
from vault.meta_upgrades import metadata_store

RAW_FILES = RawTable("files")
RAW_JOURNAL = RawTable("journal")
RAW_INDEX = RawTable("content_by_hash")


class _V1File(msgspec.Struct, kw_only=True):
    """A file record as schema 1 stored it, manifest inside."""

    id: str
    user_id: str
    name: str
    folder: str
    size: int
    mime_type: str
    blake3: str
    chunks: list[ChunkRef]
    version: int
    created_at: float
    modified_at: float
    updated_at: float


async def _write_v1(path: Path) -> None:
    store = MetaStore(path / "meta")
    await store.open()
    old = _V1File(
        id="file_1",
        user_id="user_a",
        name="a.jpg",
        folder="/photos",
        size=20,
        mime_type="image/jpeg",
        blake3="ab" * 32,
        chunks=[ChunkRef(b"\x01" * 32, 12), ChunkRef(b"\x02" * 32, 8)],
        version=3,
        created_at=1.0,
        modified_at=2.0,
        updated_at=3.0,
    )

    def write(txn: object) -> None:
        txn.put_bytes(RAW_FILES, b"file_1", msgspec.msgpack.encode(old))  # type: ignore[attr-defined]
        key = b"user_a\x00" + (1).to_bytes(8, "big")
        txn.put_bytes(RAW_JOURNAL, key, msgspec.msgpack.encode(["file_1", "created", 5.0]))  # type: ignore[attr-defined]
        txn.put_bytes(META, b"schema_version", b"1")  # type: ignore[attr-defined]
        # Schema 1's dedup index: one file id per content.
        txn.put_bytes(RAW_INDEX, b"user_a\x00blake3:" + b"ab" * 32, b"file_1")  # type: ignore[attr-defined]

    await store.write(write)  # type: ignore[arg-type]
    await store.close()


async def test_a_schema_1_directory_is_upgraded_when_it_opens(tmp_path: Path) -> None:
    await _write_v1(tmp_path)
    store = metadata_store(tmp_path)
    await store.open()
    try:
        assert store.schema_version() == SCHEMA_VERSION == 2
        with store.read() as txn:
            record = queries.get_file(txn, "user_a", "file_1")
            assert (record.name, record.size, record.version) == ("a.jpg", 20, 3)
            assert [(c.chunk_id, c.size) for c in queries.manifest(txn, record).chunks] == [
                (b"\x01" * 32, 12),
                (b"\x02" * 32, 8),
            ]
            (entry,) = journal.since(txn, "user_a", 0)
            deduped = queries.find_by_content(txn, "user_a", "blake3", "ab" * 32)
            assert deduped is not None and deduped.id == "file_1"
            assert [k for k in txn.keys(RAW_INDEX)] == [b"user_a\x00blake3:" + b"ab" * 32 + b"\x00file_1"]
        assert (entry.seq, entry.op, entry.file_id, entry.at) == (1, "created", "file_1", 5.0)
        assert (entry.folder, entry.name, entry.size, entry.checksum) == ("/photos", "a.jpg", 20, "blake3:" + "ab" * 32)
    finally:
        await store.close()


async def test_an_old_schema_without_its_upgrades_refuses_to_open(tmp_path: Path) -> None:
    await _write_v1(tmp_path)
    store = MetaStore(tmp_path / "meta")
    with pytest.raises(MetaStoreError, match="needs upgrading"):
        await store.open()
