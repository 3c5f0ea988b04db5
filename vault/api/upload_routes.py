"""Upload endpoints: init, progress, state, complete, abort (chunk PUTs are a raw route)."""

from __future__ import annotations

from vault.api.routing import ApiRouter, Ctx, link
from vault.files.records import file_entry
from vault.uploads.wire import (
    AbortResponse,
    CompleteRequest,
    CompleteResponse,
    InitRequest,
    InitResponse,
    ProgressRequest,
    UploadState,
)

router = ApiRouter("uploads")


_PLANNED = "$response.body#/data/files/0/uploadId"  # the first file's upload
_UPLOAD = "/api/mobile/upload/{upload_id}"


@router.post(
    "/upload/init",
    body=InitRequest,
    response=InitResponse,
    links={
        "UploadState": link("GET", _UPLOAD, "What the node holds of the first file's upload", upload_id=_PLANNED),
        "FirstChunk": link(
            "PUT", _UPLOAD + "/chunks/{index}", "Send the first file's first chunk", upload_id=_PLANNED, index="0"
        ),
        "AbortUpload": link("DELETE", _UPLOAD, "Abort the first file's upload", upload_id=_PLANNED),
    },
)
async def init(ctx: Ctx, body: InitRequest) -> InitResponse:
    """Plan chunked uploads for one or more files."""
    p = ctx.principal
    return await ctx.node.uploads.init(p.user_id, p.device_id, body, ctx.origin)


@router.post("/upload/progress", body=ProgressRequest, response=UploadState)
async def progress(ctx: Ctx, body: ProgressRequest) -> UploadState:
    """The node's own view of an upload: which chunks it holds and which are missing."""
    return await ctx.node.uploads.state(ctx.principal.user_id, body.upload_id)


@router.get("/upload/<session:upload_id>", response=UploadState)
async def state(ctx: Ctx, upload_id: str) -> UploadState:
    """Resume after a crash: the chunks the node holds."""
    return await ctx.node.uploads.state(ctx.principal.user_id, upload_id)


@router.post("/upload/complete", body=CompleteRequest, response=CompleteResponse)
async def complete(ctx: Ctx, body: CompleteRequest) -> CompleteResponse:
    """Verify every chunk and the whole-file checksum, then create the file."""
    record = await ctx.node.uploads.complete(ctx.principal.user_id, body.upload_id, body.checksum, body.metadata)
    return CompleteResponse(file=file_entry(record))


@router.delete("/upload/<session:upload_id>", response=AbortResponse)
async def abort(ctx: Ctx, upload_id: str) -> AbortResponse:
    """Abort an upload and release what it holds."""
    upload = await ctx.node.uploads.abort(ctx.principal.user_id, upload_id)
    return AbortResponse(upload_id=upload.id, status=upload.status)
