"""Request and answer structs of the upload endpoints (decoded at the edge, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from vault.checksums import CHECKSUM_PATTERN
from vault.files.paths import FileName, FolderPath, MimeType
from vault.files.records import FileEntry
from vault.uploads.chunk_ranges import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from vault.wire import TimestampOrEmpty, WireAnswer, WireQuery, WireRequest

Priority = Literal["high", "normal", "low"]
NonNegative = Annotated[int, Meta(ge=0)]
MAX_FILE_SIZE = 1 << 44  # 16 TiB: beyond any phone, and keeps chunk indexes in 32 bits


class FileFields(WireRequest):
    """A file to upload as the client describes it: the fields ``upload/init``'s entries and the
    one-request upload's query parameters share, checked by ``UploadService.check_file``."""

    name: FileName
    mime_type: MimeType = "application/octet-stream"
    folder: FolderPath = "/"
    checksum: Annotated[str, Meta(extra_json_schema={"pattern": f"^(?:{CHECKSUM_PATTERN})?$"})] | None = None
    priority: Priority = "normal"
    last_modified: TimestampOrEmpty | None = None


class InitFile(FileFields, kw_only=True):
    local_id: Annotated[str, Meta(min_length=1, max_length=256)]
    size: Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]


class FileUploadQuery(FileFields, kw_only=True):
    """Query parameters of ``POST /upload/file`` (the body is the file's bytes; its size is
    ``Content-Length``). ``checksum`` is required: the whole file's, checked before anything is
    kept. Without ``mimeType`` (or with ``application/octet-stream``) the type is guessed from the
    name's extension, as ``sync/files`` does."""

    checksum: Annotated[str, Meta(extra_json_schema={"pattern": f"^{CHECKSUM_PATTERN}$"})]
    local_id: Annotated[str, Meta(max_length=256)] | None = None


class UploadOptions(WireRequest):
    wifi_only: bool = False
    chunk_size: Annotated[int, Meta(ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE)] | None = None
    max_retries: Annotated[int, Meta(ge=0, le=1000)] = 3


class InitRequest(WireRequest):
    files: Annotated[list[InitFile], Meta(min_length=1, max_length=1000)]
    upload_options: UploadOptions = msgspec.field(default_factory=UploadOptions)


class PlannedChunk(WireAnswer):
    index: int
    start: int
    end: int
    upload_url: str


class PlannedFile(WireAnswer):
    local_id: str
    status: Literal["pending", "exists"]
    upload_id: str | None = None
    # PUT a chunk here with ``Content-Range: bytes START-END/SIZE`` (the chunk's own range)
    # instead of to the chunk's own URL: one URL for a whole file, as some upload libraries want.
    upload_url: str | None = None
    # The first chunks (at most 1,000); ``chunksListed`` < ``totalChunks`` when there are more.
    chunks: list[PlannedChunk] = msgspec.field(default_factory=list)
    chunks_listed: int = 0
    # Chunk ``i`` spans bytes ``i*chunkSize`` to ``min(size, (i+1)*chunkSize) - 1`` and goes to
    # this URL with ``{index}`` replaced by ``i``.
    chunk_url_template: str | None = None
    total_chunks: int = 0
    chunk_size: int = 0
    priority: Priority = "normal"
    file_id: str | None = None
    file: FileEntry | None = None


class EchoedOptions(WireAnswer):
    wifi_only: bool
    chunk_size: int
    max_retries: int
    # Files up to this size may go in one request instead (``POST /upload/file``).
    max_single_request_size: int = 0


class InitResponse(WireAnswer):
    upload_session: str
    files: list[PlannedFile]
    expires_at: str
    upload_options: EchoedOptions


class ChunkQuery(WireQuery):
    """Query of a chunk ``PUT``. ``complete=true``: once this chunk makes the upload whole, complete
    it as ``upload/complete`` would, against the checksum given at ``upload/init`` (which it then
    needs), and answer the file in the receipt: a small file planned by a batch ``init`` costs one
    request instead of two."""

    complete: bool = False


class ChunkReceipt(WireAnswer, omit_defaults=True):
    """A stored chunk. ``file``: the file the upload became, when the ``PUT`` asked to complete and
    this chunk was the last one missing (absent while others are)."""

    upload_id: str
    index: int
    received: int
    checksum: str
    file: FileEntry | None = None


class ProgressRequest(WireRequest):
    upload_id: str
    completed_chunks: list[NonNegative] = msgspec.field(default_factory=list)
    bytes_uploaded: NonNegative = 0
    status: Annotated[str, Meta(max_length=32)] = "uploading"


class UploadState(WireAnswer, omit_defaults=True):
    upload_id: str
    local_id: str
    name: str
    folder: str
    status: str
    size: int
    chunk_size: int
    total_chunks: int
    received_chunks: list[int]  # at most the first 1,000 of each list; the counts are exact
    missing_chunks: list[int]
    received_count: int
    missing_count: int
    bytes_received: int
    priority: str
    expires_at: str
    file_id: str | None = None


class CompleteRequest(WireRequest):
    upload_id: str
    checksum: Annotated[str, Meta(extra_json_schema={"pattern": f"^{CHECKSUM_PATTERN}$"})]
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class CompleteResponse(WireAnswer):
    file: FileEntry


class FileUploadResponse(WireAnswer, omit_defaults=True):
    """``POST /upload/file``: the file as ``complete`` answers it. ``status``: ``created`` (a new
    file, 201), ``updated`` (a new version of the file at that folder and name, 201) or ``exists``
    (that file already holds exactly this content: nothing changed, 200)."""

    file: FileEntry
    status: Literal["created", "updated", "exists"]
    local_id: str | None = None


class AbortResponse(WireAnswer):
    upload_id: str
    status: str
