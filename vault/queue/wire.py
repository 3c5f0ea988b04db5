"""Request and answer structs of ``POST /queue/add`` and ``GET /queue``."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from vault.files.paths import FileName, FilePath, FolderPath
from vault.wire import Timestamp, WireAnswer, WireQuery, WireRequest

# The client's idempotency key: printable, no control characters (it is part of a storage key).
OperationId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Priority = Literal["high", "normal", "low"]
Status = Literal["queued", "waiting", "done", "failed"]
FileId = Annotated[str, Meta(min_length=1, max_length=128)]
Folder = FolderPath
Name = FileName

MAX_PAGE = 5000
DEFAULT_PAGE = 1000


class _Operation(WireRequest, tag_field="type", kw_only=True):
    id: OperationId
    priority: Priority = "normal"
    # Without it: when the node received the operation.
    created_at: Timestamp | None = None


class QueueUpload(_Operation, tag="upload", kw_only=True):
    """Done once an upload of this account completes at ``remotePath`` (``/folder/name``)."""

    remote_path: FilePath
    local_path: Annotated[str, Meta(max_length=4096)] = ""


class QueueDelete(_Operation, tag="delete", kw_only=True):
    file_id: FileId


class QueueMove(_Operation, tag="move", kw_only=True):
    file_id: FileId
    folder: Folder


class QueueRename(_Operation, tag="rename", kw_only=True):
    file_id: FileId
    name: Name


class QueueMkdir(_Operation, tag="mkdir", kw_only=True):
    folder: Folder


Operation = QueueUpload | QueueDelete | QueueMove | QueueRename | QueueMkdir


class QueueAddRequest(WireRequest):
    operations: Annotated[list[Operation], Meta(min_length=1, max_length=1000)]
    # The base for conflict checks, as in sync/files; without it, each operation's createdAt.
    sync_token: str | None = None


class QueueError(WireAnswer, omit_defaults=True):
    code: str
    message: str
    conflict_id: str | None = None  # with code CONFLICT: the conflict sync/status lists


class QueueResult(WireAnswer, omit_defaults=True):
    id: str
    status: Status
    error: QueueError | None = None
    file_id: str | None = None


class QueueAddAnswer(WireAnswer):
    operations: list[QueueResult]


class QueueEntry(WireAnswer, omit_defaults=True):
    id: str
    type: Literal["upload", "delete", "move", "rename", "mkdir"]
    status: Status
    priority: Priority
    created_at: str
    added_at: str
    error: QueueError | None = None
    file_id: str | None = None
    remote_path: str | None = None
    local_path: str | None = None
    folder: str | None = None
    name: str | None = None
    finished_at: str | None = None


class QueueList(WireAnswer):
    operations: list[QueueEntry]
    has_more: bool
    next_cursor: str | None


class QueueQuery(WireQuery):
    """Query parameters of ``GET /queue``."""

    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="operations per page")] = DEFAULT_PAGE
    cursor: Annotated[str, Meta(max_length=64, description="nextCursor of the previous page")] = ""
