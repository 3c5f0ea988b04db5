"""The node's wire structs and endpoints, generated from its OpenAPI document. Do not edit:
regenerate with ``make client-wire`` (``python -m vault_client.codegen``)."""

# ruff: noqa: E501
from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta


class Request(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of what the client sends (defaults left out: the node has the same ones)."""


class Answer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of what the node answers (fields a newer node adds are ignored)."""


class Query(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of an endpoint's query parameters."""


class Endpoint(NamedTuple):
    method: str
    path: str  # with ``{name}`` placeholders
    body: type | None  # the JSON request struct, if any
    answer: type | None  # the struct in ``data`` (or at top level when ``envelope`` is false)
    query: type | None
    envelope: bool  # ``{"success": true, "data": ...}`` rather than fields at the top level
    auth: bool
    status: int


class AbortResponse(Answer, kw_only=True):
    upload_id: str
    status: str


class AuthRegisterAnswer(Answer, kw_only=True):
    user: AuthUser
    tokens: AuthTokens
    device: RegisteredDevice
    sync_data: SyncData


class AuthTokens(Answer, kw_only=True):
    access_token: str
    refresh_token: str
    expires_in: str


class AuthUser(Answer, kw_only=True):
    id: str
    email: str
    name: str


class ChangeResult(Answer, kw_only=True):
    local_id: str
    status: Literal['applied', 'conflict', 'rejected', 'uploadRequired']
    file_id: str | None = None
    conflict_id: str | None = None
    upload: PlannedFile | None = None
    error: ResultError | None = None


class Changes(Answer, kw_only=True):
    created: list[FileEntry]
    updated: list[FileEntry]
    deleted: list[DeletedFile]
    folders: FolderChanges


class ChunkReceipt(Answer, kw_only=True):
    """A stored chunk. `file`: the file the upload became, when the `PUT` asked to complete and this chunk was the last one missing (absent while others are)."""
    upload_id: str
    index: int
    received: int
    checksum: str
    file: FileEntry | None = None


class CompleteRequest(Request, kw_only=True):
    upload_id: str
    checksum: Annotated[str, Meta(pattern='^\\s*(?:blake3|sha256):[0-9a-fA-F]{64}\\s*$')]
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class CompleteResponse(Answer, kw_only=True):
    file: FileEntry


class ConflictView(Answer, kw_only=True):
    conflict_id: str
    file_id: str | None
    local_id: str
    reason: str
    remote: FileEntry | None
    created_at: str


class DeleteChange(Request, kw_only=True, tag_field='action', tag='delete'):
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]


class DeletedFile(Answer, kw_only=True):
    id: str
    deleted_at: str


class DeliveryOut(Answer, kw_only=True):
    device_id: str
    status: Literal['failed', 'held', 'pending', 'sent', 'skipped', 'unregistered']
    attempts: int
    provider: str | None
    due_at: str | None
    reason: str | None


class DeviceAnswer(Answer, kw_only=True):
    device: DeviceView


class DeviceInfoBody(Request, kw_only=True):
    platform: Literal['android', 'ios', 'web']
    device_id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[\\x21-\\x7e]+$')]
    model: Annotated[str, Meta(max_length=128)] = ''
    os_version: Annotated[str, Meta(max_length=64)] = ''
    app_version: Annotated[str, Meta(max_length=64)] = ''
    push_token: Annotated[str, Meta(max_length=4096)] | None = None


class DeviceList(Answer, kw_only=True):
    devices: list[DeviceView]
    current_device: str


class DeviceRemoved(Answer, kw_only=True):
    removed: str


class DeviceSettings(Answer, kw_only=True):
    """A device's settings; stored and shown with all six keys."""
    auto_upload: bool = True
    background_sync: bool = True
    wifi_only: bool = True
    upload_quality: Literal['high', 'low', 'medium', 'original'] = 'original'
    sync_folders: list[str] | None = None
    max_cache_size: int = 1073741824


class DeviceSyncData(Answer, kw_only=True):
    last_sync_at: str | None
    pending_uploads: int


class DeviceView(Answer, kw_only=True):
    id: str
    name: str
    platform: str
    model: str
    os_version: str
    app_version: str
    registered_at: str
    last_active_at: str
    is_current: bool
    settings: DeviceSettings
    sync_data: DeviceSyncData


class EchoedOptions(Answer, kw_only=True):
    wifi_only: bool
    chunk_size: int
    max_retries: int
    max_single_request_size: int = 0


class ErrorDetail(Answer, kw_only=True):
    code: str
    message: str
    request_id: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(Answer, kw_only=True):
    success: bool
    error: ErrorDetail


class FileDeleted(Answer, kw_only=True):
    deleted: str


class FileEntry(Answer, kw_only=True):
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


class FilePatch(Request, kw_only=True):
    """Rename and/or move a file; at least one of `name` and `folder`."""
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')] | None = None
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] | None = None
    base_version: Annotated[int, Meta(ge=1)] | None = None


class FileResponse(Answer, kw_only=True):
    file: FileEntry


class FileUploadResponse(Answer, kw_only=True):
    """`POST /upload/file`: the file as `complete` answers it. `status`: `created` (a new file, 201), `updated` (a new version of the file at that folder and name, 201) or `exists` (that file already holds exactly this content: nothing changed, 200)."""
    file: FileEntry
    status: Literal['created', 'exists', 'updated']
    local_id: str | None = None


class FolderAnswer(Answer, kw_only=True):
    folder: str


class FolderChanges(Answer, kw_only=True):
    created: list[str]
    deleted: list[str]
    moved: list[MovedFolder]


class FolderDeleted(Answer, kw_only=True):
    deleted: str
    files: int


class FolderListing(Answer, kw_only=True):
    folder: str
    files: list[FileEntry]
    folders: list[str]
    has_more: bool = False
    next_cursor: str | None = None


class FolderPatch(Request, kw_only=True):
    """Rename the folder's last segment (`name`) and/or move it under another `parent`."""
    folder: Annotated[str, Meta(min_length=2, max_length=4096, pattern='^(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*$(?!\\n)')]
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')] | None = None
    parent: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] | None = None


class Health(Answer, kw_only=True):
    status: str
    version: str
    reason: str | None = None


class InitFile(Request, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')]
    mime_type: Annotated[str, Meta(max_length=255, pattern='^(?:[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}( *;[ -~]{0,200})?)?$(?!\\n)')] = 'application/octet-stream'
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] = '/'
    checksum: Annotated[str, Meta(pattern='^(?:\\s*(?:blake3|sha256):[0-9a-fA-F]{64}\\s*)?$')] | None = None
    priority: Literal['high', 'low', 'normal'] = 'normal'
    last_modified: Any | None = None
    local_id: Annotated[str, Meta(min_length=1, max_length=256)]
    size: Annotated[int, Meta(ge=0, le=17592186044416)]


class InitRequest(Request, kw_only=True):
    files: Annotated[list[InitFile], Meta(min_length=1, max_length=1000)]
    upload_options: UploadOptions | None = None


class InitResponse(Answer, kw_only=True):
    upload_session: str
    files: list[PlannedFile]
    expires_at: str
    upload_options: EchoedOptions


class LogoutAnswer(Answer, kw_only=True):
    logged_out: bool
    device_id: str


class MkdirChange(Request, kw_only=True, tag_field='action', tag='mkdir'):
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]


class MoveChange(Request, kw_only=True, tag_field='action', tag='move'):
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]


class MovedFolder(Answer, kw_only=True):
    previous_folder: str
    folder: str


class NewFolder(Request, kw_only=True):
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]


class NotificationList(Answer, kw_only=True):
    notifications: list[NotificationOut]
    has_more: bool
    next_cursor: str | None


class NotificationOut(Answer, kw_only=True):
    id: str
    category: Literal['security', 'shares', 'storage', 'uploads']
    title: str
    body: str
    created_at: str
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class NotificationsRegisterAnswer(Answer, kw_only=True):
    device_id: str
    platform: str
    provider: str
    preferences: PreferencesOut


class PlannedChunk(Answer, kw_only=True):
    index: int
    start: int
    end: int
    upload_url: str


class PlannedFile(Answer, kw_only=True):
    local_id: str
    status: Literal['exists', 'pending']
    upload_id: str | None = None
    upload_url: str | None = None
    chunks: list[PlannedChunk] = msgspec.field(default_factory=list)
    chunks_listed: int = 0
    chunk_url_template: str | None = None
    total_chunks: int = 0
    chunk_size: int = 0
    priority: Literal['high', 'low', 'normal'] = 'normal'
    file_id: str | None = None
    file: FileEntry | None = None


class PreferencesIn(Request, kw_only=True):
    uploads: bool = True
    shares: bool = True
    storage: bool = True
    security: bool = True
    quiet_hours: QuietHoursIn | None = None


class PreferencesOut(Answer, kw_only=True):
    uploads: bool
    shares: bool
    storage: bool
    security: bool
    quiet_hours: QuietHoursOut


class ProgressRequest(Request, kw_only=True):
    upload_id: str
    completed_chunks: list[Annotated[int, Meta(ge=0)]] = msgspec.field(default_factory=list)
    bytes_uploaded: Annotated[int, Meta(ge=0)] = 0
    status: Annotated[str, Meta(max_length=32)] = 'uploading'


class QueueAddAnswer(Answer, kw_only=True):
    operations: list[QueueResult]


class QueueAddRequest(Request, kw_only=True):
    operations: Annotated[list[QueueUpload | QueueDelete | QueueMove | QueueRename | QueueMkdir], Meta(min_length=1, max_length=1000)]
    sync_token: str | None = None


class QueueDelete(Request, kw_only=True, tag_field='type', tag='delete'):
    id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[^\\x00-\\x1f\\x7f]+$')]
    priority: Literal['high', 'low', 'normal'] = 'normal'
    created_at: Annotated[str, Meta(max_length=64)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]


class QueueEntry(Answer, kw_only=True):
    id: str
    type: Literal['delete', 'mkdir', 'move', 'rename', 'upload']
    status: Literal['done', 'failed', 'queued', 'waiting']
    priority: Literal['high', 'low', 'normal']
    created_at: str
    added_at: str
    error: QueueError | None = None
    file_id: str | None = None
    remote_path: str | None = None
    local_path: str | None = None
    folder: str | None = None
    name: str | None = None
    finished_at: str | None = None


class QueueError(Answer, kw_only=True):
    code: str
    message: str
    conflict_id: str | None = None


class QueueList(Answer, kw_only=True):
    operations: list[QueueEntry]
    has_more: bool
    next_cursor: str | None


class QueueMkdir(Request, kw_only=True, tag_field='type', tag='mkdir'):
    id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[^\\x00-\\x1f\\x7f]+$')]
    priority: Literal['high', 'low', 'normal'] = 'normal'
    created_at: Annotated[str, Meta(max_length=64)] | None = None
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]


class QueueMove(Request, kw_only=True, tag_field='type', tag='move'):
    id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[^\\x00-\\x1f\\x7f]+$')]
    priority: Literal['high', 'low', 'normal'] = 'normal'
    created_at: Annotated[str, Meta(max_length=64)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]


class QueueRename(Request, kw_only=True, tag_field='type', tag='rename'):
    id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[^\\x00-\\x1f\\x7f]+$')]
    priority: Literal['high', 'low', 'normal'] = 'normal'
    created_at: Annotated[str, Meta(max_length=64)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')]


class QueueResult(Answer, kw_only=True):
    id: str
    status: Literal['done', 'failed', 'queued', 'waiting']
    error: QueueError | None = None
    file_id: str | None = None


class QueueUpload(Request, kw_only=True, tag_field='type', tag='upload'):
    """Done once an upload of this account completes at `remotePath` (`/folder/name`)."""
    id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[^\\x00-\\x1f\\x7f]+$')]
    priority: Literal['high', 'low', 'normal'] = 'normal'
    created_at: Annotated[str, Meta(max_length=64)] | None = None
    remote_path: Annotated[str, Meta(min_length=2, max_length=4352, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/+)(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')]
    local_path: Annotated[str, Meta(max_length=4096)] = ''


class QuietHoursIn(Request, kw_only=True):
    enabled: bool = False
    start: Annotated[str, Meta(pattern='^([01][0-9]|2[0-3]):[0-5][0-9]$')] = '22:00'
    end: Annotated[str, Meta(pattern='^([01][0-9]|2[0-3]):[0-5][0-9]$')] = '07:00'
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = 'UTC'


class QuietHoursOut(Answer, kw_only=True):
    enabled: bool
    start: str
    end: str
    timezone: str


class RefreshAnswer(Answer, kw_only=True):
    tokens: AuthTokens


class RefreshBody(Request, kw_only=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=512)]
    device_id: Annotated[str, Meta(min_length=1, max_length=128, pattern='^[\\x21-\\x7e]+$')]


class RegisterBody(Request, kw_only=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern='^[^@\\s\\x00-\\x1f]{1,64}@(?![^@]*\\.\\.)[^@\\s\\x00-\\x1f]+\\.[^@\\s\\x00-\\x1f.]+$(?!\\n)')]
    password: Annotated[str, Meta(min_length=8, max_length=1024)]
    device_info: DeviceInfoBody
    name: Annotated[str, Meta(max_length=100)] | None = None


class RegisterRequest(Request, kw_only=True):
    """`POST /notifications/register`; `deviceId` is the client's `deviceInfo.deviceId` or the node's `device_…` id. `provider` (beyond the spec) picks the push provider."""
    device_id: Annotated[str, Meta(min_length=1, max_length=200)]
    push_token: Annotated[str, Meta(min_length=1, max_length=8192)]
    platform: Literal['android', 'ios', 'web']
    preferences: PreferencesIn | None = None
    provider: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class RegisteredDevice(Answer, kw_only=True):
    id: str
    name: str
    registered_at: str


class RenameChange(Request, kw_only=True, tag_field='action', tag='rename'):
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')]


class Resolution(Request, kw_only=True):
    conflict_id: Annotated[str, Meta(min_length=1, max_length=128)]
    resolution: Literal['keep_both', 'keep_local', 'keep_remote']
    file_id: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    local_data: dict[str, Any] | None = None


class ResolveAnswer(Answer, kw_only=True):
    results: list[ResolveResult]


class ResolveRequest(Request, kw_only=True):
    conflicts: Annotated[list[Resolution], Meta(min_length=1, max_length=1000)]


class ResolveResult(Answer, kw_only=True):
    conflict_id: str
    status: Literal['rejected', 'resolved', 'uploadRequired']
    file: FileEntry | None = None
    upload: PlannedFile | None = None
    error: ResultError | None = None


class ResultError(Answer, kw_only=True):
    code: str
    message: str


class SettingsPatch(Request, kw_only=True):
    """`PUT /devices/{id}/settings`: any subset of the six keys; anything else is refused."""
    auto_upload: bool | None = None
    background_sync: bool | None = None
    wifi_only: bool | None = None
    upload_quality: Literal['high', 'low', 'medium', 'original'] | None = None
    sync_folders: Annotated[list[Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')]], Meta(max_length=100)] | None = None
    max_cache_size: Annotated[int, Meta(ge=0, le=9223372036854775807)] | None = None


class ShareAnswer(Answer, kw_only=True):
    share: ShareView


class ShareList(Answer, kw_only=True):
    shares: list[ShareView]


class ShareRequest(Request, kw_only=True):
    file_id: Annotated[str, Meta(min_length=1, max_length=200)]
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern='^[^@\\s\\x00-\\x1f]{1,64}@(?![^@]*\\.\\.)[^@\\s\\x00-\\x1f]+\\.[^@\\s\\x00-\\x1f.]+$(?!\\n)')]


class ShareRevoked(Answer, kw_only=True):
    revoked: str


class ShareView(Answer, kw_only=True):
    id: str
    file_id: str
    owner: str
    recipient: str
    created_at: str
    name: str | None


class SyncData(Answer, kw_only=True):
    last_sync_at: str | None
    pending_uploads: int
    cache_size: int


class SyncFilesAnswer(Answer, kw_only=True):
    results: list[ChangeResult]
    next_sync_token: str


class SyncFilesRequest(Request, kw_only=True):
    local_changes: Annotated[list[UploadChange | UpdateChange | DeleteChange | MoveChange | RenameChange | MkdirChange], Meta(min_length=1, max_length=1000)]
    sync_token: str | None = None


class SyncStatus(Answer, kw_only=True):
    last_sync_at: str
    has_changes: bool
    changes: Changes
    conflicts: list[ConflictView]
    next_sync_token: str
    has_more: bool = False
    reset_required: bool = False


class TrashListing(Answer, kw_only=True):
    files: list[TrashedFile]
    has_more: bool = False
    next_cursor: str | None = None


class TrashedFile(Answer, kw_only=True):
    """A file entry as it was when deleted, and when that was."""
    id: str
    name: str
    folder: str
    size: int
    mime_type: str
    modified_at: str
    checksum: str
    version: int
    sha256: str | None = None
    deleted_at: str = ''


class UpdateChange(Request, kw_only=True, tag_field='action', tag='update'):
    """New content for an existing file."""
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    file_id: Annotated[str, Meta(min_length=1, max_length=128)]
    size: Annotated[int, Meta(ge=0, le=17592186044416)]
    checksum: Annotated[str, Meta(pattern='^(blake3|sha256):[0-9a-fA-F]{64}$')]
    last_modified: Any | None = None


class UploadChange(Request, kw_only=True, tag_field='action', tag='upload'):
    """A new file the device has: created at once when the account already holds its content."""
    local_id: Annotated[str, Meta(max_length=256)] = ''
    base_version: Annotated[int, Meta(ge=1)] | None = None
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')]
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] = '/'
    size: Annotated[int, Meta(ge=0, le=17592186044416)]
    checksum: Annotated[str, Meta(pattern='^(blake3|sha256):[0-9a-fA-F]{64}$')]
    last_modified: Any | None = None
    mime_type: Annotated[str, Meta(max_length=255, pattern='^(?:[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}( *;[ -~]{0,200})?)?$(?!\\n)')] = 'application/octet-stream'


class UploadOptions(Request, kw_only=True):
    wifi_only: bool = False
    chunk_size: Annotated[int, Meta(ge=65536, le=67108864)] | None = None
    max_retries: Annotated[int, Meta(ge=0, le=1000)] = 3


class UploadState(Answer, kw_only=True):
    upload_id: str
    local_id: str
    name: str
    folder: str
    status: str
    size: int
    chunk_size: int
    total_chunks: int
    received_chunks: list[int]
    missing_chunks: list[int]
    received_count: int
    missing_count: int
    bytes_received: int
    priority: str
    expires_at: str
    file_id: str | None = None


class VersionEntry(Answer, kw_only=True):
    version: int
    size: int
    checksum: str
    modified_at: str
    current: bool


class VersionList(Answer, kw_only=True):
    versions: list[VersionEntry]


class WebPushKey(Answer, kw_only=True):
    public_key: str


class GetFilesQuery(Query, kw_only=True):
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] | None = None
    limit: Annotated[int, Meta(ge=1, le=5000)] | None = None
    cursor: str | None = None


class GetSyncStatusQuery(Query, kw_only=True):
    sync_token: str | None = None
    last_sync: Any | None = None
    limit: Annotated[int, Meta(ge=1, le=5000)] | None = None
    wait: Annotated[int, Meta(ge=0, le=300)] | None = None


class DeleteFoldersQuery(Query, kw_only=True):
    folder: Annotated[str, Meta(min_length=2, max_length=4096, pattern='^(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*$(?!\\n)')] | None = None


class GetTrashQuery(Query, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=5000)] | None = None
    cursor: str | None = None


class GetQueueQuery(Query, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=5000)] | None = None
    cursor: Annotated[str, Meta(max_length=64)] | None = None


class GetNotificationsQuery(Query, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=100)] | None = None
    cursor: Annotated[str, Meta(max_length=128)] | None = None


class PostUploadFileQuery(Query, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=255, pattern='^(?!\\.\\.?$)[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+$(?!\\n)')] | None = None
    mime_type: Annotated[str, Meta(max_length=255, pattern='^(?:[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}( *;[ -~]{0,200})?)?$(?!\\n)')] | None = None
    folder: Annotated[str, Meta(min_length=1, max_length=4096, pattern='^(?:/+|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ue000-\\uf8ff\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd\\U00013430-\\U00013438\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f\\U000f0000-\\U000ffffd\\U00100000-\\U0010fffd]+)+/*)$(?!\\n)')] | None = None
    priority: Literal['high', 'low', 'normal'] | None = None
    last_modified: Any | None = None
    checksum: Annotated[str, Meta(pattern='^\\s*(?:blake3|sha256):[0-9a-fA-F]{64}\\s*$')] | None = None
    local_id: Annotated[str, Meta(max_length=256)] | None = None


class PutUploadUploadIdChunksIndexQuery(Query, kw_only=True):
    complete: bool | None = None


class PutUploadUploadIdChunksQuery(Query, kw_only=True):
    complete: bool | None = None


# Sign in (creating the account when sign-up is open) and register this device.
POST_AUTH_REGISTER = Endpoint('POST', '/api/mobile/auth/register', RegisterBody, AuthRegisterAnswer, None, envelope=False, auth=False, status=200)
# Exchange a refresh token for a new pair (the presented one stops working).
POST_AUTH_REFRESH = Endpoint('POST', '/api/mobile/auth/refresh', RefreshBody, RefreshAnswer, None, envelope=False, auth=False, status=200)
# Revoke this device's tokens; the device stays registered.
POST_AUTH_LOGOUT = Endpoint('POST', '/api/mobile/auth/logout', None, LogoutAnswer, None, envelope=True, auth=True, status=200)
# The account's registered devices; ``isCurrent`` marks the calling one.
GET_DEVICES = Endpoint('GET', '/api/mobile/devices', None, DeviceList, None, envelope=True, auth=True, status=200)
# Change some of a device's settings; the answer holds all six.
PUT_DEVICES_DEVICE_ID_SETTINGS = Endpoint('PUT', '/api/mobile/devices/{device_id}/settings', SettingsPatch, DeviceAnswer, None, envelope=True, auth=True, status=200)
# Remove a device: its tokens and push registration stop working at once.
DELETE_DEVICES_DEVICE_ID = Endpoint('DELETE', '/api/mobile/devices/{device_id}', None, DeviceRemoved, None, envelope=True, auth=True, status=200)
# Plan chunked uploads for one or more files.
POST_UPLOAD_INIT = Endpoint('POST', '/api/mobile/upload/init', InitRequest, InitResponse, None, envelope=True, auth=True, status=200)
# The node's own view of an upload: which chunks it holds and which are missing.
POST_UPLOAD_PROGRESS = Endpoint('POST', '/api/mobile/upload/progress', ProgressRequest, UploadState, None, envelope=True, auth=True, status=200)
# Resume after a crash: the chunks the node holds.
GET_UPLOAD_UPLOAD_ID = Endpoint('GET', '/api/mobile/upload/{upload_id}', None, UploadState, None, envelope=True, auth=True, status=200)
# Abort an upload and release what it holds.
DELETE_UPLOAD_UPLOAD_ID = Endpoint('DELETE', '/api/mobile/upload/{upload_id}', None, AbortResponse, None, envelope=True, auth=True, status=200)
# Verify every chunk and the whole-file checksum, then create the file.
POST_UPLOAD_COMPLETE = Endpoint('POST', '/api/mobile/upload/complete', CompleteRequest, CompleteResponse, None, envelope=True, auth=True, status=200)
# Files (by name, a page at a time) and subfolders of a folder.
GET_FILES = Endpoint('GET', '/api/mobile/files', None, FolderListing, GetFilesQuery, envelope=True, auth=True, status=200)
# One file's entry.
GET_FILES_FILE_ID = Endpoint('GET', '/api/mobile/files/{file_id}', None, FileResponse, None, envelope=True, auth=True, status=200)
# Move a file to the trash (restorable for ``[files] trash_retention``).
DELETE_FILES_FILE_ID = Endpoint('DELETE', '/api/mobile/files/{file_id}', None, FileDeleted, None, envelope=True, auth=True, status=200)
# Rename and/or move a file (409 CONFLICT when ``baseVersion`` is not current or the name is taken).
PATCH_FILES_FILE_ID = Endpoint('PATCH', '/api/mobile/files/{file_id}', FilePatch, FileResponse, None, envelope=True, auth=True, status=200)
# The file's bytes: single ranges (206/416), ETag, If-None-Match (304), HEAD.
GET_FILES_FILE_ID_CONTENT = Endpoint('GET', '/api/mobile/files/{file_id}/content', None, None, None, envelope=False, auth=True, status=200)
# The file's headers, no body
HEAD_FILES_FILE_ID_CONTENT = Endpoint('HEAD', '/api/mobile/files/{file_id}/content', None, None, None, envelope=False, auth=True, status=200)
# The file's contents, newest first: the current one (``current: true``) and those kept.
GET_FILES_FILE_ID_VERSIONS = Endpoint('GET', '/api/mobile/files/{file_id}/versions', None, VersionList, None, envelope=True, auth=True, status=200)
# Make an earlier content the newest version (the current one is kept as an earlier one).
POST_FILES_FILE_ID_VERSIONS_VERSION_RESTORE = Endpoint('POST', '/api/mobile/files/{file_id}/versions/{version}/restore', None, FileResponse, None, envelope=True, auth=True, status=200)
# What changed since ``syncToken`` (or ``lastSync``; neither: the whole tree), a page at a
GET_SYNC_STATUS = Endpoint('GET', '/api/mobile/sync/status', None, SyncStatus, GetSyncStatusQuery, envelope=True, auth=True, status=200)
# Apply the device's local changes in order; a change to a file that changed meanwhile on the
POST_SYNC_FILES = Endpoint('POST', '/api/mobile/sync/files', SyncFilesRequest, SyncFilesAnswer, None, envelope=True, auth=True, status=200)
# Resolve conflicts: keep_remote, keep_local (with localData) or keep_both.
POST_CONFLICTS_RESOLVE = Endpoint('POST', '/api/mobile/conflicts/resolve', ResolveRequest, ResolveAnswer, None, envelope=True, auth=True, status=200)
# Create a folder and its missing parents (an existing folder is answered as is).
POST_FOLDERS = Endpoint('POST', '/api/mobile/folders', NewFolder, FolderAnswer, None, envelope=True, auth=True, status=200)
# Rename and/or move a folder with everything below it (409 into itself or onto a taken name).
PATCH_FOLDERS = Endpoint('PATCH', '/api/mobile/folders', FolderPatch, FolderAnswer, None, envelope=True, auth=True, status=200)
# Delete a folder with everything below it: every file goes to the trash.
DELETE_FOLDERS = Endpoint('DELETE', '/api/mobile/folders', None, FolderDeleted, DeleteFoldersQuery, envelope=True, auth=True, status=200)
# Deleted files, newest first, a page at a time (restorable until their retention passes).
GET_TRASH = Endpoint('GET', '/api/mobile/trash', None, TrashListing, GetTrashQuery, envelope=True, auth=True, status=200)
# Bring a file back to its folder (recreated if need be; a name like ``a (restored 1).jpg``
POST_TRASH_FILE_ID_RESTORE = Endpoint('POST', '/api/mobile/trash/{file_id}/restore', None, FileResponse, None, envelope=True, auth=True, status=200)
# Queue operations the device made offline; each answers queued, waiting, done or failed.
POST_QUEUE_ADD = Endpoint('POST', '/api/mobile/queue/add', QueueAddRequest, QueueAddAnswer, None, envelope=True, auth=True, status=200)
# The calling device's operations with their status, newest first, a page at a time.
GET_QUEUE = Endpoint('GET', '/api/mobile/queue', None, QueueList, GetQueueQuery, envelope=True, auth=True, status=200)
# Register (or re-register, replacing the token) one of the caller's devices for push.
POST_NOTIFICATIONS_REGISTER = Endpoint('POST', '/api/mobile/notifications/register', RegisterRequest, NotificationsRegisterAnswer, None, envelope=True, auth=True, status=200)
# The caller's notifications, newest first, with each device's delivery state.
GET_NOTIFICATIONS = Endpoint('GET', '/api/mobile/notifications', None, NotificationList, GetNotificationsQuery, envelope=True, auth=True, status=200)
# The node's VAPID public key, for a browser's or UnifiedPush client's subscription.
GET_NOTIFICATIONS_WEBPUSH_KEY = Endpoint('GET', '/api/mobile/notifications/webpush-key', None, WebPushKey, None, envelope=True, auth=True, status=200)
# Share one of the caller's files with another user of this node (read access).
POST_SHARES = Endpoint('POST', '/api/mobile/shares', ShareRequest, ShareAnswer, None, envelope=True, auth=True, status=200)
# Every share the caller owns or receives, newest first.
GET_SHARES = Endpoint('GET', '/api/mobile/shares', None, ShareList, None, envelope=True, auth=True, status=200)
# Revoke a share (its owner) or leave it (its recipient); it stops working at once.
DELETE_SHARES_SHARE_ID = Endpoint('DELETE', '/api/mobile/shares/{share_id}', None, ShareRevoked, None, envelope=True, auth=True, status=200)
# Upload a whole small file in one request: the body is its bytes (Content-Length required), the query describes it as upload/init's files[] do (checksum required)
POST_UPLOAD_FILE = Endpoint('POST', '/api/mobile/upload/file', None, FileUploadResponse, PostUploadFileQuery, envelope=True, auth=True, status=201)
# Upload one chunk's raw bytes (application/octet-stream); optional X-Chunk-Checksum: blake3:<hex> or sha256:<hex>; with ?complete=true the upload is completed as upload/complete would (against init's checksum) once this chunk makes it whole, and the receipt carries the file
PUT_UPLOAD_UPLOAD_ID_CHUNKS_INDEX = Endpoint('PUT', '/api/mobile/upload/{upload_id}/chunks/{index}', None, ChunkReceipt, PutUploadUploadIdChunksIndexQuery, envelope=True, auth=True, status=200)
# Upload one chunk's raw bytes to the file's uploadUrl, naming the chunk with Content-Range: bytes START-END/SIZE (its planned range); optional X-Chunk-Checksum: blake3:<hex> or sha256:<hex>; with ?complete=true the upload is completed as upload/complete would (against init's checksum) once this chunk makes it whole, and the receipt carries the file
PUT_UPLOAD_UPLOAD_ID_CHUNKS = Endpoint('PUT', '/api/mobile/upload/{upload_id}/chunks', None, ChunkReceipt, PutUploadUploadIdChunksQuery, envelope=True, auth=True, status=200)
# tus capabilities: Tus-Version, Tus-Extension, Tus-Checksum-Algorithm, Tus-Max-Size
OPTIONS_TUS = Endpoint('OPTIONS', '/api/mobile/tus/', None, None, None, envelope=False, auth=False, status=204)
# Create an upload (Upload-Length, Upload-Metadata: filename, folder, filetype); with a body of Content-Type application/offset+octet-stream, creation-with-upload
POST_TUS = Endpoint('POST', '/api/mobile/tus/', None, None, None, envelope=False, auth=True, status=201)
# tus capabilities: Tus-Version, Tus-Extension, Tus-Checksum-Algorithm, Tus-Max-Size
OPTIONS_TUS_UPLOAD_ID = Endpoint('OPTIONS', '/api/mobile/tus/{upload_id}', None, None, None, envelope=False, auth=False, status=204)
# Upload-Offset and Upload-Length of an upload
HEAD_TUS_UPLOAD_ID = Endpoint('HEAD', '/api/mobile/tus/{upload_id}', None, None, None, envelope=False, auth=True, status=200)
# Append bytes at Upload-Offset (optional Upload-Checksum; 460 on mismatch)
PATCH_TUS_UPLOAD_ID = Endpoint('PATCH', '/api/mobile/tus/{upload_id}', None, None, None, envelope=False, auth=True, status=204)
# Terminate an upload
DELETE_TUS_UPLOAD_ID = Endpoint('DELETE', '/api/mobile/tus/{upload_id}', None, None, None, envelope=False, auth=True, status=204)
# Liveness and readiness: 503 with a reason when a store cannot be read
GET_HEALTH = Endpoint('GET', '/api/health', None, Health, None, envelope=False, auth=False, status=200)
