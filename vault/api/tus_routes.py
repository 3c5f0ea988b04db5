"""tus 1.0.0 at ``/api/mobile/tus/``: creation, creation-with-upload, expiration, checksum,
termination; bearer auth; served as raw routes so PATCH bodies stream with backpressure.

Only HTTP lives here (headers in, status and headers out); storing pieces is ``vault.tus.service``.
Errors are answered through the node's one error mapping, with tus's own status codes where tus
1.0 defines them (460 checksum mismatch, 409 offset mismatch, 412 version) and tus headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from vault import errors
from vault.api.raw import ClientDisconnected, RawRequest, RawResponse, RawRoute, error_raw
from vault.api.routing import HeaderDoc, RouteDoc
from vault.files.paths import normalize_folder, normalize_mime, normalize_name
from vault.numbers import ascii_int
from vault.tus.protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    http_date,
    parse_metadata,
    parse_upload_checksum,
)
from vault.tus.service import ChecksumFailed, TusService, UploadChecksum
from vault.uploads.records import UploadSession
from vault.uploads.wire import MAX_FILE_SIZE

BASE = "/api/mobile/tus"
CHECKSUM_MISMATCH = 460
_CREATE_METHODS = "OPTIONS, POST"
_UPLOAD_METHODS = "OPTIONS, HEAD, PATCH, DELETE"


def _tus_headers(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [("tus-resumable", TUS_VERSION), ("cache-control", "no-store"), *(extra or [])]


def _empty(status: int, headers: list[tuple[str, str]]) -> RawResponse:
    return RawResponse(status, _tus_headers(headers))


class _KeptBody:
    """The PATCH body as the tus service wants it: a dropped connection or a stalled body ends
    it quietly (tus keeps what arrived) and sets ``interrupted``."""

    def __init__(self, req: RawRequest) -> None:
        self._req = req
        self.disconnected = False
        self.stalled = False

    @property
    def interrupted(self) -> bool:
        return self.disconnected or self.stalled

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._req.body():
                yield piece
                del piece  # not held while the next one is awaited (a client may stall)
        except ClientDisconnected:
            self.disconnected = True
        except errors.BodyStalled:
            self.stalled = True


async def handle(req: RawRequest) -> RawResponse:
    try:
        return await _dispatch(req)
    except ChecksumFailed:
        error = errors.ChecksumMismatch("Upload-Checksum does not match the body")
        return error_raw(error, req.request_id, status=CHECKSUM_MISMATCH, headers=_tus_headers())
    except errors.VaultError as exc:
        return error_raw(exc, req.request_id, headers=_tus_headers())


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
    tus: TusService = req.node.tus
    upload_id = req.params.get("upload_id")
    if method == "POST":
        if upload_id:
            raise errors.MethodNotAllowed(headers={"Allow": _UPLOAD_METHODS})
        return await _create(req, tus, principal.user_id, principal.device_id)
    if not upload_id:
        raise errors.MethodNotAllowed(headers={"Allow": _CREATE_METHODS})
    if method == "HEAD":
        upload, offset = await tus.status(principal.user_id, upload_id)
        if upload.status == "uploading" and offset == upload.size:
            # Every byte is in but the file was not made (e.g. quota at the last PATCH): try
            # again now, and answer the error rather than an offset that reads as "done".
            await tus.uploads.finalize(principal.user_id, upload_id, None, {})
        return _empty(
            200,
            [
                ("upload-offset", str(offset)),
                ("upload-length", str(upload.size)),
                ("upload-expires", http_date(upload.expires_at)),
            ],
        )
    if method == "DELETE":
        await tus.status(principal.user_id, upload_id)
        await tus.uploads.abort(principal.user_id, upload_id)
        return _empty(204, [])
    if method == "PATCH":
        return await _patch(req, tus, principal.user_id, upload_id)
    raise errors.MethodNotAllowed(headers={"Allow": _UPLOAD_METHODS})


def _upload_checksum(req: RawRequest) -> UploadChecksum | None:
    header = req.header("upload-checksum")
    if not header:
        return None
    hasher, expected = parse_upload_checksum(header)
    return UploadChecksum(hasher, expected)


async def _receive(req: RawRequest, tus: TusService, user_id: str, upload: UploadSession, offset: int) -> int:
    """Store the body at ``offset``; the new offset (also when the body stalled: a client still
    there learns how far it got), or ``ClientDisconnected`` once what arrived is kept (and the
    file made, if that was the last byte)."""
    declared = req.content_length
    if declared is not None and offset + declared > upload.size:
        raise errors.PayloadTooLarge("PATCH body goes past Upload-Length")
    body = _KeptBody(req)
    with req.node.transfers.slot(user_id):
        new_offset = await tus.receive(user_id, upload, offset, body, _upload_checksum(req))
    if body.disconnected:
        if new_offset == upload.size:
            await tus.uploads.finalize(user_id, upload.id, None, {})
        raise ClientDisconnected()
    return new_offset


async def _patch(req: RawRequest, tus: TusService, user_id: str, upload_id: str) -> RawResponse:
    if (req.header("content-type") or "").split(";")[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise errors.UnsupportedMediaType(f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    raw_offset = req.header("upload-offset")
    wanted_offset = ascii_int(raw_offset or "")
    if wanted_offset is None:
        raise errors.ValidationError("Upload-Offset must be a non-negative integer")
    async with tus.exclusive(upload_id):
        upload, offset = await tus.status(user_id, upload_id)
        if upload.status == "completed" or wanted_offset != offset:
            error = errors.Conflict("Upload-Offset does not match the upload's offset")
            return error_raw(error, req.request_id, headers=_tus_headers([("upload-offset", str(offset))]))
        new_offset = await _receive(req, tus, user_id, upload, offset)
    if new_offset == upload.size:
        await tus.uploads.finalize(user_id, upload_id, None, {})
    return _empty(204, [("upload-offset", str(new_offset)), ("upload-expires", http_date(upload.expires_at))])


async def _create(req: RawRequest, tus: TusService, user_id: str, device_id: str) -> RawResponse:
    if req.header("upload-defer-length"):
        raise errors.ValidationError("Upload-Defer-Length is not supported; send Upload-Length")
    raw_length = req.header("upload-length")
    size = ascii_int(raw_length or "")
    if size is None:
        raise errors.ValidationError("Upload-Length must be a non-negative integer")
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
        ("location", f"{req.origin}{BASE}/{upload.id}"),
        ("upload-expires", http_date(upload.expires_at)),
    ]
    offset = 0
    has_body = (req.header("content-type") or "").split(";")[0].strip().lower() == OFFSET_CONTENT_TYPE
    if has_body and (req.content_length or 0) > 0:
        async with tus.exclusive(upload.id):
            offset = await _receive(req, tus, user_id, upload, 0)
    if offset == size:
        await tus.uploads.finalize(user_id, upload.id, None, {})
    headers.append(("upload-offset", str(offset)))
    return _empty(201, headers)


_RESUMABLE: HeaderDoc = (
    {"type": "string", "const": TUS_VERSION},
    True,
    "the tus version the client speaks (412 otherwise)",
)
_OFFSET: HeaderDoc = ({"type": "integer", "minimum": 0, "maximum": MAX_FILE_SIZE}, True, "where this PATCH's bytes go")
_CHECKSUM: HeaderDoc = (
    {"type": "string", "pattern": r"^ *(?i:sha1|sha256|blake3) +[A-Za-z0-9+/]*={0,2} *$"},
    False,
    f"ALGORITHM BASE64-DIGEST of this PATCH's bytes ({CHECKSUM_ALGORITHMS}); 460 when they differ",
)
_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"  # not empty
_METADATA: HeaderDoc = (
    {
        "type": "string",
        "pattern": r"(?:^|,) *filename " + _BASE64 + r" *(?:,|$)",
    },
    True,
    "KEY BASE64,KEY BASE64 ...: filename (required), folder (absolute, default /) and filetype, "
    "each base64 of UTF-8 text that is a valid file name, folder and media type",
)
_HEADERS: dict[str, dict[str, HeaderDoc]] = {
    "POST": {
        "Tus-Resumable": _RESUMABLE,
        "Upload-Length": (
            {"type": "integer", "minimum": 0, "maximum": MAX_FILE_SIZE},
            True,
            "the file's size in bytes (413 beyond Tus-Max-Size)",
        ),
        "Upload-Metadata": _METADATA,
        "Upload-Checksum": _CHECKSUM,
    },
    "HEAD": {"Tus-Resumable": _RESUMABLE},
    "PATCH": {"Tus-Resumable": _RESUMABLE, "Upload-Offset": _OFFSET, "Upload-Checksum": _CHECKSUM},
    "DELETE": {"Tus-Resumable": _RESUMABLE},
}
_VERSION_REFUSED = {
    "412": {
        "description": "Tus-Resumable missing or not 1.0.0 (no body)",
        "headers": {"Tus-Version": {"schema": {"type": "string", "const": TUS_VERSION}}},
    }
}


def docs() -> list[RouteDoc]:
    """OpenAPI entries for tus 1.0 (headers in and out, no JSON bodies but for errors)."""
    capabilities = "tus capabilities: Tus-Version, Tus-Extension, Tus-Checksum-Algorithm, Tus-Max-Size"
    summaries = {
        ("OPTIONS", BASE + "/"): capabilities,
        ("OPTIONS", BASE + "/{upload_id}"): capabilities,
        ("POST", BASE + "/"): "Create an upload (Upload-Length, Upload-Metadata: filename, folder, filetype); "
        "with a body of Content-Type application/offset+octet-stream, creation-with-upload",
        ("HEAD", BASE + "/{upload_id}"): "Upload-Offset and Upload-Length of an upload",
        ("PATCH", BASE + "/{upload_id}"): "Append bytes at Upload-Offset (optional Upload-Checksum; 460 on mismatch)",
        ("DELETE", BASE + "/{upload_id}"): "Terminate an upload",
    }
    statuses = {"OPTIONS": 204, "POST": 201, "HEAD": 200, "PATCH": 204, "DELETE": 204}
    bodies = {"POST": False, "PATCH": True}  # creation-with-upload: POST may carry the first bytes
    return [
        RouteDoc(
            method,
            path,
            summary,
            auth=method != "OPTIONS",
            status=statuses[method],
            envelope=False,
            tags=["tus"],
            headers=_HEADERS.get(method, {}),
            raw_body=OFFSET_CONTENT_TYPE if method in bodies else None,
            raw_body_required=bodies.get(method, False),
            responses=_VERSION_REFUSED if method != "OPTIONS" else {},
        )
        for (method, path), summary in summaries.items()
    ]


def routes() -> list[RawRoute]:
    # Any other method on these paths is answered 405 with these in Allow (VaultApp.__call__).
    create = [m.strip() for m in _CREATE_METHODS.split(",")]
    upload = [m.strip() for m in _UPLOAD_METHODS.split(",")]
    return [
        RawRoute(create, BASE, handle, "tus"),
        RawRoute(create, BASE + "/", handle, "tus"),
        RawRoute(upload, BASE + "/{upload_id}", handle, "tus_upload"),
    ]
