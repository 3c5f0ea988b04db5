"""Request and response structs of the upload endpoints (decoded at the edge, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from vault.files.records import FileEntry
from vault.uploads.plan import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

Priority = Literal["high", "normal", "low"]
NonNegative = Annotated[int, Meta(ge=0)]
MAX_FILE_SIZE = 1 << 44  # 16 TiB: beyond any phone, and keeps chunk indexes in 32 bits


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class InitFile(_Strict):
    localId: Annotated[str, Meta(min_length=1, max_length=256)]
    name: Annotated[str, Meta(min_length=1, max_length=1024)]
    size: Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]
    mimeType: Annotated[str, Meta(max_length=255)] = "application/octet-stream"
    folder: Annotated[str, Meta(max_length=4096)] = "/"
    checksum: str | None = None
    priority: Priority = "normal"
    lastModified: str | None = None


class UploadOptions(_Strict):
    wifiOnly: bool = False
    chunkSize: Annotated[int, Meta(ge=MIN_CHUNK_SIZE, le=MAX_CHUNK_SIZE)] | None = None
    maxRetries: Annotated[int, Meta(ge=0, le=1000)] = 3


class InitRequest(_Strict):
    files: Annotated[list[InitFile], Meta(min_length=1, max_length=1000)]
    uploadOptions: UploadOptions = msgspec.field(default_factory=UploadOptions)


class PlannedChunk(msgspec.Struct):
    index: int
    start: int
    end: int
    uploadUrl: str


class PlannedFile(msgspec.Struct, kw_only=True):
    localId: str
    status: Literal["pending", "exists"]
    uploadId: str | None = None
    uploadUrl: str | None = None
    chunks: list[PlannedChunk] = msgspec.field(default_factory=list)
    totalChunks: int = 0
    chunkSize: int = 0
    priority: Priority = "normal"
    fileId: str | None = None
    file: FileEntry | None = None


class EchoedOptions(msgspec.Struct):
    wifiOnly: bool
    chunkSize: int
    maxRetries: int


class InitResponse(msgspec.Struct):
    uploadSession: str
    files: list[PlannedFile]
    expiresAt: str
    uploadOptions: EchoedOptions


class ChunkReceipt(msgspec.Struct):
    uploadId: str
    index: int
    received: int
    checksum: str


class ProgressRequest(_Strict):
    uploadId: str
    completedChunks: list[NonNegative] = msgspec.field(default_factory=list)
    bytesUploaded: NonNegative = 0
    status: Annotated[str, Meta(max_length=32)] = "uploading"


class UploadState(msgspec.Struct, kw_only=True, omit_defaults=True):
    uploadId: str
    localId: str
    name: str
    folder: str
    status: str
    size: int
    chunkSize: int
    totalChunks: int
    receivedChunks: list[int]
    missingChunks: list[int]
    bytesReceived: int
    priority: str
    expiresAt: str
    fileId: str | None = None


class CompleteRequest(_Strict):
    uploadId: str
    checksum: str
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class CompleteResponse(msgspec.Struct):
    file: FileEntry


class AbortResponse(msgspec.Struct):
    uploadId: str
    status: str
