"""tus 1.0.0 at ``/api/mobile/tus/``: creation, creation-with-upload, expiration, checksum,
termination; bearer auth; served as raw routes so PATCH bodies stream with backpressure."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from vault import errors
from vault.api.envelope import error_body
from vault.api.raw import ClientDisconnected, RawRequest, RawResponse, RawRoute, json_raw
from vault.checksums import Hasher
from vault.chunks import ChunkMismatch, ChunkTooLarge
from vault.chunks.ids import ChunkId
from vault.files.paths import normalize_folder, normalize_mime, normalize_name
from vault.tus.protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    http_date,
    parse_metadata,
    parse_upload_checksum,
)
from vault.tus.sessions import TusUploads
from vault.uploads.api_types import MAX_FILE_SIZE
from vault.uploads.records import UploadSession

log = logging.getLogger(__name__)

BASE = "/api/mobile/tus"
CHECKSUM_MISMATCH = 460


def _tus_headers(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [("tus-resumable", TUS_VERSION), ("cache-control", "no-store"), *(extra or [])]


def _empty(status: int, headers: list[tuple[str, str]]) -> RawResponse:
    return RawResponse(status, _tus_headers(headers))


class _Pieces:
    """Cuts a PATCH body into pieces of at most ``piece_size``, hashing it for Upload-Checksum,
    and ends quietly when the client goes away (tus keeps what arrived)."""

    def __init__(self, body: AsyncIterator[bytes], limit: int, checksum: Hasher | None) -> None:
        self._body = body
        self._carry = b""
        self._limit = limit
        self.total = 0
        self.finished = False
        self.disconnected = False
        self._checksum = checksum

    async def _next(self) -> bytes:
        if self._carry:
            data, self._carry = self._carry, b""
            return data
        if self.finished:
            return b""
        try:
            data = await self._body.__anext__()
        except StopAsyncIteration:
            self.finished = True
            return b""
        except (ClientDisconnected, errors.ValidationError):
            # A dropped connection or a stalled body: keep what arrived, answer nothing.
            self.finished = self.disconnected = True
            return b""
        self.total += len(data)
        if self.total > self._limit:
            raise errors.PayloadTooLarge("PATCH body goes past Upload-Length")
        if self._checksum is not None:
            self._checksum.update(data)
        return data

    async def piece(self, size: int) -> AsyncIterator[bytes]:
        remaining = size
        while remaining > 0:
            data = await self._next()
            if not data:
                return
            if len(data) > remaining:
                data, self._carry = data[:remaining], data[remaining:]
            remaining -= len(data)
            yield data

    @property
    def exhausted(self) -> bool:
        return self.finished and not self._carry


async def _receive(req: RawRequest, tus: TusUploads, user_id: str, upload: UploadSession, offset: int) -> int | None:
    """Store a PATCH body at ``offset``; returns the new offset, or None if the client left."""
    checksum_header = req.header("upload-checksum")
    checker: tuple[Hasher, bytes] | None = parse_upload_checksum(checksum_header) if checksum_header else None
    declared = req.content_length
    if declared is not None and offset + declared > upload.size:
        raise errors.PayloadTooLarge("PATCH body goes past Upload-Length")
    running = req.node.uploads.running
    trial = running.trial(upload.id, offset, with_sha256=False)
    pieces = _Pieces(req.body(), upload.size - offset, checker[0] if checker else None)
    store = req.node.chunks
    stored: list[tuple[ChunkId, int]] = []
    new_offset = offset
    piece_size = upload.chunk_size

    async def record(batch: list[tuple[ChunkId, int]]) -> None:
        nonlocal new_offset
        before = new_offset
        new_offset = await _append(req, tus, user_id, upload.id, before, batch)
        req.node.metrics.received_bytes.inc(new_offset - before)
        if trial is not None:
            running.accept(upload.id, trial, new_offset)

    while not pieces.exhausted:
        try:
            result = await store.put(
                pieces.piece(piece_size), max_size=piece_size, also=trial.hashers() if trial is not None else ()
            )
        except (ChunkTooLarge, ChunkMismatch):  # pragma: no cover - the splitter bounds pieces
            raise errors.ValidationError("malformed PATCH body") from None
        if result.size == 0:
            break
        if checker is None:
            # Recorded as it lands: what arrived is kept (tus semantics), the offset advances
            # while a long PATCH goes on, and gc never sees a stored piece without a reference.
            await record([(result.chunk_id, result.size)])
        else:
            stored.append((result.chunk_id, result.size))
    if checker is not None:
        if pieces.disconnected:
            return None  # cannot verify a partial body: keep nothing
        if checker[0].digest() != checker[1]:
            raise _ChecksumFailed()
        if stored:
            await record(stored)
    if pieces.disconnected:
        if new_offset == upload.size:
            await req.node.uploads.finalize(user_id, upload.id, None, {})
        return None
    return new_offset


async def _append(
    req: RawRequest, tus: TusUploads, user_id: str, upload_id: str, offset: int, pieces: list[tuple[ChunkId, int]]
) -> int:
    """Reference stored pieces at ``offset``; if gc reclaimed one meanwhile, take them back."""
    async with req.node.ref_guard.taking():
        new_offset = await tus.append(user_id, upload_id, offset, pieces)
        present = await req.node.chunks.has_many([chunk_id for chunk_id, _ in pieces])
        if len(present) < len({chunk_id for chunk_id, _ in pieces}):
            await tus.truncate(user_id, upload_id, offset)
            raise errors.ServiceUnavailable("The node was reclaiming this content; resume the upload")
    return new_offset


class _ChecksumFailed(Exception):
    pass


def _base_url(req: RawRequest) -> str:
    configured = req.node.config.server.public_url.rstrip("/")
    if configured:
        return configured
    scheme = req.scope.get("scheme", "http")
    host = req.header("host") or "{}:{}".format(*req.scope.get("server", ("127.0.0.1", 80)))
    return f"{scheme}://{host}"


async def handle(req: RawRequest) -> RawResponse:
    try:
        return await _dispatch(req)
    except _ChecksumFailed:
        body = error_body(errors.ChecksumMismatch("Upload-Checksum does not match the body"), req.request_id)
        return json_raw(CHECKSUM_MISMATCH, body, _tus_headers())
    except errors.VaultError as exc:
        status = exc.status
        if isinstance(exc, errors.UploadExpired):
            status = 410
        return json_raw(status, error_body(exc, req.request_id), _tus_headers(list(exc.headers.items())))


async def _dispatch(req: RawRequest) -> RawResponse:
    method = req.method
    if method == "OPTIONS":
        return _empty(
            204,
            [
                ("tus-version", TUS_VERSION),
                ("tus-extension", EXTENSIONS),
                ("tus-checksum-algorithm", CHECKSUM_ALGORITHMS),
                ("tus-max-size", str(MAX_FILE_SIZE)),
            ],
        )
    if req.header("tus-resumable") != TUS_VERSION:
        return _empty(412, [("tus-version", TUS_VERSION)])
    principal = await req.node.authenticate(req.header("authorization"))
    tus: TusUploads = req.node.tus
    upload_id = req.params.get("upload_id")
    if method == "POST":
        if upload_id:
            raise errors.MethodNotAllowed()
        return await _create(req, tus, principal.user_id, principal.device_id)
    if not upload_id:
        raise errors.MethodNotAllowed()
    if method == "HEAD":
        upload, offset, _ = tus.status(principal.user_id, upload_id)
        if upload.status == "uploading" and offset == upload.size:
            # Every byte is in but the file was not made (e.g. quota at the last PATCH): try
            # again now, and answer the error rather than an offset that reads as "done".
            await req.node.uploads.finalize(principal.user_id, upload_id, None, {})
        return _empty(
            200,
            [
                ("upload-offset", str(offset)),
                ("upload-length", str(upload.size)),
                ("upload-expires", http_date(upload.expires_at)),
            ],
        )
    if method == "DELETE":
        tus.status(principal.user_id, upload_id)
        await req.node.uploads.abort(principal.user_id, upload_id)
        return _empty(204, [])
    if method == "PATCH":
        return await _patch(req, tus, principal.user_id, upload_id)
    raise errors.MethodNotAllowed()


async def _patch(req: RawRequest, tus: TusUploads, user_id: str, upload_id: str) -> RawResponse:
    if (req.header("content-type") or "").split(";")[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise errors.UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    raw_offset = req.header("upload-offset")
    if raw_offset is None or not raw_offset.isdigit():
        raise errors.ValidationError("Upload-Offset must be a non-negative integer")
    async with tus.exclusive(upload_id):
        upload, offset, _ = tus.status(user_id, upload_id)
        if upload.status == "completed" or int(raw_offset) != offset:
            return json_raw(
                409,
                error_body(errors.Conflict("Upload-Offset does not match the upload's offset"), req.request_id),
                _tus_headers([("upload-offset", str(offset))]),
            )
        new_offset = await _receive(req, tus, user_id, upload, offset)
    if new_offset is None:
        raise ClientDisconnected()
    if new_offset == upload.size:
        await req.node.uploads.finalize(user_id, upload_id, None, {})
    return _empty(204, [("upload-offset", str(new_offset)), ("upload-expires", http_date(upload.expires_at))])


async def _create(req: RawRequest, tus: TusUploads, user_id: str, device_id: str) -> RawResponse:
    if req.header("upload-defer-length"):
        raise errors.ValidationError("Upload-Defer-Length is not supported; send Upload-Length")
    raw_length = req.header("upload-length")
    if raw_length is None or not raw_length.isdigit():
        raise errors.ValidationError("Upload-Length must be a non-negative integer")
    size = int(raw_length)
    if size > MAX_FILE_SIZE:
        raise errors.PayloadTooLarge("Upload-Length exceeds Tus-Max-Size")
    meta = parse_metadata(req.header("upload-metadata"))
    if "filename" not in meta:
        raise errors.ValidationError("Upload-Metadata must include filename")
    name = normalize_name(meta["filename"], "filename")
    folder = normalize_folder(meta.get("folder") or "/", "folder")
    mime = normalize_mime(meta.get("filetype"), "filetype")
    upload = await tus.create(user_id, device_id, name=name, folder=folder, size=size, mime_type=mime)
    headers = [
        ("location", f"{_base_url(req)}{BASE}/{upload.id}"),
        ("upload-expires", http_date(upload.expires_at)),
    ]
    offset = 0
    has_body = (req.header("content-type") or "").split(";")[0].strip().lower() == OFFSET_CONTENT_TYPE
    if has_body and (req.content_length or 0) > 0:
        async with tus.exclusive(upload.id):
            received = await _receive(req, tus, user_id, upload, 0)
        if received is None:
            raise ClientDisconnected()
        offset = received
    if offset == size:
        await req.node.uploads.finalize(user_id, upload.id, None, {})
    headers.append(("upload-offset", str(offset)))
    return _empty(201, headers)


def routes() -> list[RawRoute]:
    methods = ["OPTIONS", "POST", "HEAD", "PATCH", "DELETE"]
    return [
        RawRoute(methods, BASE, handle, "tus"),
        RawRoute(methods, BASE + "/", handle, "tus"),
        RawRoute(methods, BASE + "/{upload_id}", handle, "tus_upload"),
    ]
