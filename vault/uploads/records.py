"""Upload sessions and their received chunks, as stored in metadata."""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgspec

from vault.meta import Table

UploadStatus = Literal["uploading", "completed", "aborted", "expired"]


class UploadSession(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    device_id: str
    session: str  # the init call's uploadSession id
    local_id: str
    name: str
    folder: str
    size: int
    mime_type: str
    chunk_size: int
    total_chunks: int
    checksum_algo: str | None = None
    checksum_hex: str | None = None
    priority: str = "normal"
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float
    expires_at: float
    status: UploadStatus = "uploading"
    file_id: str | None = None
    modified_at: float | None = None
    via: Literal["chunks", "tus"] = "chunks"


class ReceivedChunk(msgspec.Struct, array_like=True, frozen=True):
    chunk_id: bytes
    size: int
    received_at: float


UPLOADS = Table("uploads", UploadSession)
UPLOAD_CHUNKS = Table("upload_chunks", ReceivedChunk)


def chunk_key(upload_id: str, index: int) -> bytes:
    return upload_id.encode() + b"\x00" + struct.pack(">I", index)


def chunk_prefix(upload_id: str) -> bytes:
    return upload_id.encode() + b"\x00"


def index_of(key: bytes) -> int:
    index: int = struct.unpack(">I", key[-4:])[0]
    return index
