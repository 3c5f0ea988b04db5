"""Upload sessions and their received chunks, as stored in metadata."""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgspec

from vault import errors
from vault.clock import rfc3339
from vault.meta import MetaStore, Table, Txn

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


class UploadOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the outcome hook (a notification) is told of an upload that made a file or failed."""

    user_id: str
    name: str
    folder: str
    upload_id: str | None = None  # None: a one-request upload, which has no session


def outcome_of(upload: UploadSession) -> UploadOutcome:
    return UploadOutcome(user_id=upload.user_id, name=upload.name, folder=upload.folder, upload_id=upload.id)


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


def load_session(txn: Txn, user_id: str, upload_id: str) -> UploadSession:
    """The caller's session; NOT_FOUND for unknown ids and other users' uploads."""
    upload = txn.get(UPLOADS, upload_id.encode())
    if upload is None or upload.user_id != user_id:
        raise errors.NotFound("No such upload")
    return upload


def require_open(upload: UploadSession, now: float) -> None:
    """Raise unless chunks may still arrive (``now`` is passed in: the writer thread has no clock)."""
    if upload.status == "aborted":
        raise errors.Conflict("This upload was aborted")
    if upload.status == "completed":
        raise errors.Conflict("This upload is already complete")
    if upload.status == "expired" or upload.expires_at <= now:
        raise errors.UploadExpired(details={"expiresAt": rfc3339(upload.expires_at)})


def received_chunks(txn: Txn, upload_id: str) -> dict[int, ReceivedChunk]:
    """The chunks (or tus pieces) received so far, by index."""
    return {index_of(k): v for k, v in txn.scan(UPLOAD_CHUNKS, chunk_prefix(upload_id))}


def read_session(meta: MetaStore, user_id: str, upload_id: str) -> tuple[UploadSession, dict[int, ReceivedChunk]]:
    """A session and what it received, read in one snapshot. A scan that grows with the number of
    chunks (a 10 GB file in 64 KiB chunks has 160,000): call it in a worker thread."""
    with meta.read() as txn:
        return load_session(txn, user_id, upload_id), received_chunks(txn, upload_id)
