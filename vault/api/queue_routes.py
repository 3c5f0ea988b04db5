"""``/queue/add`` and ``/queue``: the offline operation queue of the calling device."""

from __future__ import annotations

from vault.api.routing import ApiRouter, Ctx, query_as
from vault.queue.wire import QueueAddAnswer, QueueAddRequest, QueueList, QueueQuery

router = ApiRouter("queue")


@router.post("/queue/add", body=QueueAddRequest, response=QueueAddAnswer)
async def add_to_queue(ctx: Ctx, body: QueueAddRequest) -> QueueAddAnswer:
    """Queue operations the device made offline; each answers queued, waiting, done or failed."""
    p = ctx.principal
    return await ctx.node.queue.add(p.user_id, p.device_id, body)


@router.get("/queue", response=QueueList, query=QueueQuery)
async def list_queue(ctx: Ctx) -> QueueList:
    """The calling device's operations with their status, newest first, a page at a time."""
    p = ctx.principal
    return await ctx.node.queue.listing(p.user_id, p.device_id, query_as(ctx, QueueQuery))
