"""The metadata schema: every named LMDB sub-database the node uses, and the schema version.

A change to a record layout that old data cannot decode bumps ``SCHEMA_VERSION`` and adds a step
to ``MIGRATIONS``; ``MetaStore.open`` runs the steps in order inside one write transaction.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb

SCHEMA_VERSION = 1

TABLE_NAMES: tuple[str, ...] = (
    "meta",  # node-wide facts: schema version, node id
    "users",  # user_id -> User
    "users_by_email",  # normalised email -> user_id
    "devices",  # user_id/device_id -> Device
    "device_by_client_id",  # user_id/client device id -> device_id
    "refresh_tokens",  # token hash -> RefreshToken
    "notifications",  # user_id/ts/id -> Notification
    "files",  # file_id -> FileRecord
    "files_by_path",  # user_id/folder/name -> file_id
    "folders",  # user_id/folder -> Folder
    "content_by_hash",  # user_id/blake3 -> file_id (dedup per user)
    "chunk_refs",  # chunk id -> reference count
    "gc_candidates",  # chunk id -> when gc first found it unreferenced (vault.gc)
    "uploads",  # upload_id -> UploadSession
    "upload_chunks",  # upload_id/index -> received chunk
    "journal",  # user_id/seq -> JournalEntry
    "usage",  # user_id -> Usage
)

# version -> step that upgrades the database from that version to the next one.
MIGRATIONS: dict[int, Callable[[lmdb.Transaction], None]] = {}
