"""File records as stored in metadata, and how they appear in the API."""

from __future__ import annotations

from typing import Any

import msgspec

from vault.clock import rfc3339
from vault.meta import RawTable, Table
from vault.wire import WireAnswer


class ChunkRef(msgspec.Struct, array_like=True, frozen=True):
    """One piece of a file's content: the chunk id and its length."""

    chunk_id: bytes
    size: int


class FileRecord(msgspec.Struct, kw_only=True):
    """What a file is, as listings and sync show it; its content is the ``Manifest`` beside it,
    kept in a table of its own so that listing thousands of files never decodes their chunks."""

    id: str
    user_id: str
    name: str
    folder: str
    size: int
    mime_type: str
    blake3: str  # hex of the whole-file BLAKE3
    sha256: str | None = None  # hex, when the client declared one
    version: int = 1
    created_at: float
    modified_at: float  # the client's lastModified / capturedAt when given, else server time
    updated_at: float  # server time of the last change
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    deleted_at: float | None = None


class Manifest(msgspec.Struct, array_like=True):
    """A file's content: its chunks in order (only readers of content decode this)."""

    chunks: list[ChunkRef]


class FolderRecord(msgspec.Struct, kw_only=True):
    created_at: float


class VersionRecord(msgspec.Struct, kw_only=True):
    """An earlier content of a file, kept for ``[files] version_retention`` after a newer one
    replaced it (its chunks are the ``Manifest`` in ``VERSION_MANIFESTS`` beside it)."""

    file_id: str
    user_id: str
    version: int  # the file's version while this was its content
    size: int
    mime_type: str
    blake3: str
    sha256: str | None = None
    modified_at: float
    replaced_at: float  # when a newer content replaced it: its retention counts from here
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class FileEntry(WireAnswer):
    """A file as every endpoint shows it."""

    id: str
    name: str
    folder: str
    size: int
    mime_type: str
    modified_at: str
    checksum: str
    version: int
    sha256: str | None = None


FILES = Table("files", FileRecord)
MANIFESTS = Table("manifests", Manifest)
FOLDERS = Table("folders", FolderRecord)
FILES_BY_PATH = RawTable("files_by_path")  # user/folder/name -> file id
# user/algo:hex/file id -> b"" (dedup is per user). One key per file, not one per content: two
# files may hold the same content, and deleting one must not hide the other from dedup.
CONTENT_BY_HASH = RawTable("content_by_hash")
VERSIONS = Table("versions", VersionRecord)  # file id/version -> an earlier content
VERSION_MANIFESTS = Table("version_manifests", Manifest)  # file id/version -> its chunks
VERSIONS_BY_TIME = RawTable("versions_by_time")  # replaced_at/file id/version -> b"" (what expires first)
TRASH = RawTable("trash")  # user/inverted deleted_at/file id -> b"" (a user's trash, newest first)
TRASH_BY_TIME = RawTable("trash_by_time")  # deleted_at/user/file id -> b"" (what expires first)


def file_entry(record: FileRecord) -> FileEntry:
    return FileEntry(
        id=record.id,
        name=record.name,
        folder=record.folder,
        size=record.size,
        mime_type=record.mime_type,
        modified_at=rfc3339(record.modified_at),
        checksum=f"blake3:{record.blake3}",
        version=record.version,
        sha256=f"sha256:{record.sha256}" if record.sha256 else None,
    )


def path_key(user_id: str, folder: str, name: str) -> bytes:
    return f"{user_id}\x00{folder}\x00{name}".encode()


def folder_key(user_id: str, folder: str) -> bytes:
    return f"{user_id}\x00{folder}".encode()


def content_key(user_id: str, algo: str, hex_digest: str) -> bytes:
    """The prefix of every file of ``user_id`` whose content has this digest."""
    return f"{user_id}\x00{algo}:{hex_digest}\x00".encode()


def content_entry_key(user_id: str, algo: str, hex_digest: str, file_id: str) -> bytes:
    return content_key(user_id, algo, hex_digest) + file_id.encode()
