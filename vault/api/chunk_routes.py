"""Chunk PUTs, raw routes that stream the body: ``PUT /api/mobile/upload/{uploadId}/chunks/{index}``,
or the file's own ``uploadUrl`` (``…/chunks``) with ``Content-Range`` naming the chunk's bytes."""

from __future__ import annotations

import re

from vault import errors
from vault.api.raw import RawRequest, RawResponse, RawRoute, json_raw
from vault.api.routing import HeaderDoc, RouteDoc
from vault.checksums import parse_checksum
from vault.numbers import ascii_int
from vault.principal import Principal
from vault.uploads.wire import ChunkReceipt

CHUNK_PATH = "/api/mobile/upload/{upload_id}/chunks/{index}"
FILE_PATH = "/api/mobile/upload/{upload_id}/chunks"
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
    with req.node.transfers.slot(principal.user_id):
        receipt = await req.node.uploads.receive_chunk(
            principal.user_id,
            req.params["upload_id"],
            index,
            req.body(),
            content_length=req.content_length,
            declared=declared,
        )
    return json_raw(200, {"success": True, "data": receipt})


def routes() -> list[RawRoute]:
    return [
        RawRoute(["PUT"], CHUNK_PATH, put_chunk, "upload_chunk"),
        RawRoute(["PUT"], FILE_PATH, put_ranged_chunk, "upload_chunk_by_range"),
    ]


_CHECKSUM_HEADER: HeaderDoc = (
    {"type": "string", "pattern": r"^\s*(blake3|sha256):[0-9a-fA-F]{64}\s*$"},
    False,
    "blake3:<64 hex> or sha256:<64 hex> of this chunk's bytes (the node checks it)",
)


def docs() -> list[RouteDoc]:
    """OpenAPI entries for the raw routes (their bodies are bytes, their answers structs)."""
    checksum = "optional X-Chunk-Checksum: blake3:<hex> or sha256:<hex>"
    return [
        RouteDoc(
            "PUT",
            CHUNK_PATH,
            f"Upload one chunk's raw bytes (application/octet-stream); {checksum}",
            response=ChunkReceipt,
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
