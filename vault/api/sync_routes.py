"""``/sync/status``, ``/sync/files`` and ``/conflicts/resolve``: delta sync for the user's devices."""

from __future__ import annotations

from quart import Response

from vault.api.routing import ApiRouter, Ctx, query_as, respond
from vault.sync.wire import (
    ResolveAnswer,
    ResolveRequest,
    StatusQuery,
    SyncFilesAnswer,
    SyncFilesRequest,
    SyncStatus,
)

router = ApiRouter("sync")


@router.get("/sync/status", response=SyncStatus, query=StatusQuery)
async def sync_status(ctx: Ctx) -> Response:
    """What changed since ``syncToken`` (or ``lastSync``; neither: the whole tree), a page at a
    time; ``wait=N`` holds the request until a change arrives; ``If-None-Match`` answers 304."""
    query = query_as(ctx, StatusQuery)
    p = ctx.principal
    answer, etag = await ctx.node.sync.status(
        p.user_id, query, ctx.request.headers.get("If-None-Match"), device_id=p.device_id
    )
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if answer is None:
        return Response(b"", status=304, headers=headers)
    return await respond(ctx, answer, headers=headers)


@router.post("/sync/files", body=SyncFilesRequest, response=SyncFilesAnswer)
async def sync_files(ctx: Ctx, body: SyncFilesRequest) -> SyncFilesAnswer:
    """Apply the device's local changes in order; a change to a file that changed meanwhile on the
    server becomes a conflict instead."""
    p = ctx.principal
    return await ctx.node.sync.apply(p.user_id, p.device_id, body, ctx.origin)


@router.post("/conflicts/resolve", body=ResolveRequest, response=ResolveAnswer)
async def resolve_conflicts(ctx: Ctx, body: ResolveRequest) -> ResolveAnswer:
    """Resolve conflicts: keep_remote, keep_local (with localData) or keep_both."""
    p = ctx.principal
    return await ctx.node.sync.resolve(p.user_id, p.device_id, body, ctx.origin)
