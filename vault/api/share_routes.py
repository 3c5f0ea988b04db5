"""``/shares``: share a file read-only with another user, list shares, revoke one."""

from __future__ import annotations

from vault.api.routing import ApiRouter, Ctx
from vault.shares.wire import ShareAnswer, ShareList, ShareRequest, ShareRevoked

router = ApiRouter("shares")


@router.post("/shares", body=ShareRequest, response=ShareAnswer)
async def create_share(ctx: Ctx, body: ShareRequest) -> ShareAnswer:
    """Share one of the caller's files with another user of this node (read access)."""
    return await ctx.node.shares.create(ctx.principal.user_id, body)


@router.get("/shares", response=ShareList)
async def list_shares(ctx: Ctx) -> ShareList:
    """Every share the caller owns or receives, newest first."""
    return await ctx.node.shares.listing(ctx.principal.user_id)


@router.delete("/shares/<share_id>", response=ShareRevoked)
async def revoke_share(ctx: Ctx, share_id: str) -> ShareRevoked:
    """Revoke a share (its owner) or leave it (its recipient); it stops working at once."""
    return await ctx.node.shares.revoke(ctx.principal.user_id, share_id)
