"""The metadata schema: every named LMDB sub-database the node uses, and the schema version.

A change to a record layout that old data cannot decode bumps ``SCHEMA_VERSION`` and adds a step
to ``vault.meta_upgrades.UPGRADES``; ``MetaStore.open`` runs the steps in order inside one write
transaction.

2: file manifests moved out of file records into ``manifests``; journal entries carry what a
   syncing client needs (version, path, checksum, size, device).
"""

from __future__ import annotations

SCHEMA_VERSION = 2

TABLE_NAMES: tuple[str, ...] = (
    "meta",  # node-wide facts: schema version, node id
    "users",  # user_id -> User
    "users_by_email",  # normalised email -> user_id
    "devices",  # user_id/device_id -> Device
    "device_by_client_id",  # user_id/client device id -> device_id
    "refresh_tokens",  # token hash -> RefreshToken
    "notifications",  # user_id/ts/id -> Notification
    "inbox_sizes",  # user_id -> how many notifications the user's inbox holds (vault.notifications.records)
    "files",  # file_id -> FileRecord
    "manifests",  # file_id -> Manifest (the file's chunks; read only to serve or check content)
    "files_by_path",  # user_id/folder/name -> file_id
    "folders",  # user_id/folder -> Folder
    "content_by_hash",  # user_id/blake3 -> file_id (dedup per user)
    "chunk_refs",  # chunk id -> reference count
    "gc_candidates",  # chunk id -> when gc first found it unreferenced (vault.gc)
    "uploads",  # upload_id -> UploadSession
    "upload_chunks",  # upload_id/index -> received chunk
    "uploads_open_by_device",  # user_id/device_id/expiry/upload_id -> b"" (open sessions: vault.uploads.by_device)
    "journal",  # user_id/seq -> JournalEntry
    "journal_floor",  # user_id -> the newest seq pruned from the user's journal (vault.sync.retention)
    "conflicts",  # user_id/conflict_id -> Conflict (vault.sync.conflicts)
    "conflict_generation",  # user_id -> counter bumped by every conflict recorded or resolved
    "usage",  # user_id -> Usage
    "trash",  # user_id/newest-first time/file_id -> b"" (a user's trash, newest first: vault.files.trash)
    "trash_by_time",  # deleted_at/user_id/file_id -> b"" (every trashed file, oldest first: what expires)
    "versions",  # file_id/version -> VersionRecord (the kept earlier contents of a file)
    "version_manifests",  # file_id/version -> Manifest (an earlier content's chunks)
    "versions_by_time",  # replaced_at/file_id/version -> b"" (every kept version, oldest first)
    "queue_ops",  # user_id/device_id/operation id -> QueuedOp (the offline queue: vault.queue.records)
    "queue_by_device",  # user_id/device_id/seq -> operation id (a device's operations in the order added)
    "queue_runnable",  # priority/createdAt/seq -> operation key (queued operations, in the order they run)
    "queue_waiting",  # user_id/folder/name/device_id/operation id -> operation key (uploads awaited by path)
    "queue_timers",  # due time/seq -> operation key (retries, upload waits that run out, finished ones to forget)
    "queue_counts",  # user_id/device_id -> QueueCounts (open and waiting operations of a device)
    "push_registrations",  # user_id/device_id -> Registration (vault.notifications.registrations)
    "push_outbox",  # due time/entry id -> OutboxEntry (deliveries still to make: vault.notifications.outbox)
    "push_sync_hints",  # user_id/device_id -> HintState (the waiting silent hint, collapsed)
    "storage_alerts",  # user_id -> the highest quota threshold already announced (vault.notifications.storage_alerts)
    "shares",  # share_id -> Share (vault.shares)
    "shares_by_user",  # user_id/share_id -> b"" (shares a user owns or receives)
    "shares_by_file",  # file_id/recipient user_id -> share_id (who may read a file besides its owner)
)
