"""``PUT /api/mobile/upload/{uploadId}/chunks/{index}``: a raw route that streams the chunk body."""

from __future__ import annotations

from vault import errors
from vault.api.raw import RawRequest, RawResponse, RawRoute, json_raw
from vault.api.routing import RouteDoc
from vault.checksums import parse_checksum
from vault.uploads.api_types import ChunkReceipt

CHUNK_PATH = "/api/mobile/upload/{upload_id}/chunks/{index}"


async def put_chunk(req: RawRequest) -> RawResponse:
    principal = await req.node.authenticate(req.header("authorization"))
    raw_index = req.params["index"]
    if not raw_index.isdigit() or len(raw_index) > 9:
        raise errors.ValidationError("chunk index must be a non-negative integer")
    declared_text = req.header("x-chunk-checksum")
    declared = parse_checksum(declared_text, "X-Chunk-Checksum") if declared_text else None
    receipt = await req.node.uploads.receive_chunk(
        principal.user_id,
        req.params["upload_id"],
        int(raw_index),
        req.body(),
        content_length=req.content_length,
        declared=declared,
    )
    return json_raw(200, {"success": True, "data": receipt})


def routes() -> list[RawRoute]:
    return [RawRoute(["PUT"], CHUNK_PATH, put_chunk, "upload_chunk")]


def docs() -> list[RouteDoc]:
    """OpenAPI entries for the raw routes (their bodies are bytes, their answers structs)."""
    return [
        RouteDoc(
            method="PUT",
            path="/api/mobile/upload/{upload_id}/chunks/{index}",
            summary="Upload one chunk's raw bytes (application/octet-stream); "
            "optional X-Chunk-Checksum: blake3:<hex> or sha256:<hex>",
            body=None,
            response=ChunkReceipt,
            auth=True,
            status=200,
            envelope=True,
            tags=["uploads"],
        )
    ]
