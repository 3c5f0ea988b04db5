"""Request and answer structs of ``sync/status``, ``sync/files`` and ``conflicts/resolve``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from vault.files.paths import FOLDER_PATTERN, MAX_FOLDER_BYTES, FileName, MimeType
from vault.files.records import FileEntry
from vault.sync.coalesce import Changes
from vault.uploads.wire import MAX_FILE_SIZE, PlannedFile
from vault.wire import TimestampOrEmpty, WireAnswer, WireQuery, WireRequest

LocalId = Annotated[str, Meta(max_length=256)]
FileId = Annotated[str, Meta(min_length=1, max_length=128)]
Name = FileName
# Enforced when the request is decoded (a folder that is not absolute fails the whole request, as
# before), unlike FolderPath's pattern elsewhere, which the handlers check with their own message.
Folder = Annotated[str, Meta(min_length=1, max_length=MAX_FOLDER_BYTES, pattern=FOLDER_PATTERN)]
Checksum = Annotated[str, Meta(pattern="^(blake3|sha256):[0-9a-fA-F]{64}$")]
Version = Annotated[int, Meta(ge=1)]


class _Change(WireRequest, tag_field="action", kw_only=True):
    local_id: LocalId = ""
    # The file's version this change was made on (instead of, or besides, the request's syncToken).
    base_version: Version | None = None


class UploadChange(_Change, tag="upload", kw_only=True):
    """A new file the device has: created at once when the account already holds its content."""

    name: Name
    folder: Folder = "/"
    size: Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]
    checksum: Checksum
    last_modified: TimestampOrEmpty | None = None
    mime_type: MimeType = "application/octet-stream"


class UpdateChange(_Change, tag="update", kw_only=True):
    """New content for an existing file."""

    file_id: FileId
    size: Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]
    checksum: Checksum
    last_modified: TimestampOrEmpty | None = None


class DeleteChange(_Change, tag="delete", kw_only=True):
    file_id: FileId


class MoveChange(_Change, tag="move", kw_only=True):
    file_id: FileId
    folder: Folder


class RenameChange(_Change, tag="rename", kw_only=True):
    file_id: FileId
    name: Name


class MkdirChange(_Change, tag="mkdir", kw_only=True):
    folder: Folder


LocalChange = UploadChange | UpdateChange | DeleteChange | MoveChange | RenameChange | MkdirChange


class SyncFilesRequest(WireRequest):
    local_changes: Annotated[list[LocalChange], Meta(min_length=1, max_length=1000)]
    sync_token: str | None = None


class ResultError(WireAnswer):
    code: str
    message: str


class ChangeResult(WireAnswer, omit_defaults=True):
    local_id: str
    status: Literal["applied", "uploadRequired", "conflict", "rejected"]
    file_id: str | None = None
    conflict_id: str | None = None
    upload: PlannedFile | None = None
    error: ResultError | None = None


class SyncFilesAnswer(WireAnswer):
    results: list[ChangeResult]
    next_sync_token: str


class ConflictView(WireAnswer):
    conflict_id: str
    file_id: str | None
    local_id: str
    reason: str
    remote: FileEntry | None
    created_at: str


class SyncStatus(WireAnswer, omit_defaults=True):
    last_sync_at: str
    has_changes: bool
    changes: Changes
    conflicts: list[ConflictView]
    next_sync_token: str
    has_more: bool = False
    reset_required: bool = False


LONGEST_WAIT = 300  # seconds a sync/status long poll may be held


class StatusQuery(WireQuery):
    """Query parameters of ``GET /sync/status``."""

    sync_token: str | None = None
    last_sync: Annotated[TimestampOrEmpty, Meta(description="RFC 3339 time; changes after it")] | None = None
    limit: Annotated[int, Meta(ge=1, le=5000)] = 1000
    wait: Annotated[int, Meta(ge=0, le=LONGEST_WAIT, description="seconds to hold the request until a change")] = 0


class Resolution(WireRequest):
    conflict_id: Annotated[str, Meta(min_length=1, max_length=128)]
    resolution: Literal["keep_remote", "keep_local", "keep_both"]
    file_id: FileId | None = None
    local_data: dict[str, Any] | None = None


class ResolveRequest(WireRequest):
    conflicts: Annotated[list[Resolution], Meta(min_length=1, max_length=1000)]


class ResolveResult(WireAnswer, omit_defaults=True):
    conflict_id: str
    status: Literal["resolved", "uploadRequired", "rejected"]
    file: FileEntry | None = None
    upload: PlannedFile | None = None
    error: ResultError | None = None


class ResolveAnswer(WireAnswer):
    results: list[ResolveResult]
