"""Raw routes that stream an upload's body: chunk PUTs (``PUT /api/mobile/upload/{uploadId}/chunks/{index}``,
or the file's own ``uploadUrl``, ``…/chunks``, with ``Content-Range`` naming the chunk's bytes) and
the one-request upload of a small file (``POST /api/mobile/upload/file``)."""

from __future__ import annotations

import re

from vault import errors
from vault.api.raw import RawRequest, RawResponse, RawRoute, json_raw
from vault.api.routing import HeaderDoc, RouteDoc
from vault.checksums import parse_checksum
from vault.config import Config
from vault.files.records import file_entry
from vault.numbers import ascii_int
from vault.principal import Principal
from vault.uploads.wire import ChunkQuery, ChunkReceipt, FileUploadQuery, FileUploadResponse

CHUNK_PATH = "/api/mobile/upload/{upload_id}/chunks/{index}"
FILE_PATH = "/api/mobile/upload/{upload_id}/chunks"
ONE_REQUEST_PATH = "/api/mobile/upload/file"
MAX_CHUNK_INDEX = 999_999_999  # nine digits: more than any file's chunk count
_CONTENT_RANGE = re.compile(r"^bytes ([0-9]{1,20})-([0-9]{1,20})/([0-9]{1,20})$")


async def put_chunk(req: RawRequest) -> RawResponse:
    principal = await req.node.authenticate(req.header("authorization"))
    raw_index = req.params["index"]
    index = ascii_int(raw_index, max_digits=len(str(MAX_CHUNK_INDEX)))
    if index is None:
        raise errors.ValidationError("chunk index must be a non-negative integer")
    return await _receive(req, principal, index)


async def put_ranged_chunk(req: RawRequest) -> RawResponse:
    principal = await req.node.authenticate(req.header("authorization"))
    match = _CONTENT_RANGE.match((req.header("content-range") or "").strip())
    if match is None:
        raise errors.ValidationError(
            "PUT to a file's uploadUrl needs Content-Range: bytes START-END/SIZE naming one planned chunk",
            details={"field": "Content-Range"},
        )
    start, end, size = (int(g) for g in match.groups())
    index = await req.node.uploads.chunk_index_of_range(principal.user_id, req.params["upload_id"], start, end, size)
    return await _receive(req, principal, index)


async def _receive(req: RawRequest, principal: Principal, index: int) -> RawResponse:
    declared_text = req.header("x-chunk-checksum")
    declared = parse_checksum(declared_text, "X-Chunk-Checksum") if declared_text else None
    query = req.query_as(ChunkQuery)
    with req.node.transfers.slot(principal.user_id):
        receipt = await req.node.uploads.receive_chunk(
            principal.user_id,
            req.params["upload_id"],
            index,
            req.body(),
            content_length=req.content_length,
            declared=declared,
            complete=query.complete,
        )
    return json_raw(200, {"success": True, "data": receipt})


async def post_file(req: RawRequest) -> RawResponse:
    """A whole small file in one request: the body its bytes, the query its description."""
    principal = await req.node.authenticate(req.header("authorization"))
    query = req.query_as(FileUploadQuery)
    with req.node.transfers.slot(principal.user_id):
        record, status = await req.node.uploads.upload_file(
            principal.user_id, principal.device_id, query, req.body(), size=req.content_length
        )
    answer = FileUploadResponse(file=file_entry(record), status=status, local_id=query.local_id)
    return json_raw(200 if status == "exists" else 201, {"success": True, "data": answer})


def routes() -> list[RawRoute]:
    return [
        RawRoute(["PUT"], CHUNK_PATH, put_chunk, "upload_chunk"),
        RawRoute(["PUT"], FILE_PATH, put_ranged_chunk, "upload_chunk_by_range"),
        RawRoute(["POST"], ONE_REQUEST_PATH, post_file, "upload_file"),
    ]


_CHECKSUM_HEADER: HeaderDoc = (
    {"type": "string", "pattern": r"^\s*(blake3|sha256):[0-9a-fA-F]{64}\s*$"},
    False,
    "blake3:<64 hex> or sha256:<64 hex> of this chunk's bytes (the node checks it)",
)


def docs(config: Config) -> list[RouteDoc]:
    """OpenAPI entries for the raw routes (their bodies are bytes, their answers structs)."""
    checksum = (
        "optional X-Chunk-Checksum: blake3:<hex> or sha256:<hex>; with ?complete=true the upload is "
        "completed as upload/complete would (against init's checksum) once this chunk makes it whole, "
        "and the receipt carries the file"
    )
    chunk_errors = (
        (400, "VALIDATION_ERROR: complete=true for an upload whose init gave no checksum (before the body is read)"),
        (409, "CONFLICT: the upload was aborted or is already complete"),
        (410, "UPLOAD_EXPIRED: the upload session has expired"),
        (422, "CHECKSUM_MISMATCH: the chunk (or, completing, the whole file) does not match its checksum"),
    )
    limit = int(config.uploads.max_single_request_size)
    return [
        RouteDoc(
            "POST",
            ONE_REQUEST_PATH,
            "Upload a whole small file in one request: the body is its bytes (Content-Length required), "
            "the query describes it as upload/init's files[] do (checksum required)",
            response=FileUploadResponse,
            query=FileUploadQuery,
            status=201,
            tags=["uploads"],
            raw_body="application/octet-stream",
            raw_body_description=(
                f"The file's bytes: at most {limit} ([uploads] max_single_request_size), Content-Length required"
            ),
            also=((200, "The file at that folder and name already holds this content: nothing changed"),),
            errors=(
                (400, "VALIDATION_ERROR: a query parameter, or no Content-Length"),
                (413, "PAYLOAD_TOO_LARGE: Content-Length above the limit (refused before the body is read)"),
                (422, "CHECKSUM_MISMATCH: the body does not match checksum; nothing was kept"),
                (503, "SERVICE_UNAVAILABLE with Retry-After: content was being reclaimed; send it again"),
                (507, "STORAGE_QUOTA_EXCEEDED (checked before the body is read) or INSUFFICIENT_STORAGE"),
            ),
        ),
        RouteDoc(
            "PUT",
            CHUNK_PATH,
            f"Upload one chunk's raw bytes (application/octet-stream); {checksum}",
            response=ChunkReceipt,
            query=ChunkQuery,
            errors=chunk_errors,
            tags=["uploads"],
            path_schemas={"index": {"type": "integer", "minimum": 0, "maximum": MAX_CHUNK_INDEX}},
            headers={"X-Chunk-Checksum": _CHECKSUM_HEADER},
            raw_body="application/octet-stream",
            raw_body_required=False,
        ),
        RouteDoc(
            "PUT",
            FILE_PATH,
            "Upload one chunk's raw bytes to the file's uploadUrl, naming the chunk with "
            f"Content-Range: bytes START-END/SIZE (its planned range); {checksum}",
            response=ChunkReceipt,
            query=ChunkQuery,
            errors=chunk_errors,
            tags=["uploads"],
            headers={
                "Content-Range": (
                    {"type": "string", "pattern": r"^\s*bytes [0-9]{1,20}-[0-9]{1,20}/[0-9]{1,20}\s*$"},
                    True,
                    "bytes START-END/SIZE: one planned chunk's range of the file",
                ),
                "X-Chunk-Checksum": _CHECKSUM_HEADER,
            },
            raw_body="application/octet-stream",
            raw_body_required=False,
        ),
    ]
