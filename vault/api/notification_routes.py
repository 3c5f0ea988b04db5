"""``/notifications``: push registration with preferences, the inbox, and the VAPID public key."""

from __future__ import annotations

from vault.api.routing import ApiRouter, Ctx, query_as
from vault.notifications.wire import NotificationList, NotificationQuery, RegisterAnswer, RegisterRequest, WebPushKey

router = ApiRouter("notifications")


@router.post("/notifications/register", body=RegisterRequest, response=RegisterAnswer)
async def register(ctx: Ctx, body: RegisterRequest) -> RegisterAnswer:
    """Register (or re-register, replacing the token) one of the caller's devices for push."""
    return await ctx.node.notifications.register(ctx.principal.user_id, body)


@router.get("/notifications", response=NotificationList, query=NotificationQuery)
async def inbox(ctx: Ctx) -> NotificationList:
    """The caller's notifications, newest first, with each device's delivery state."""
    return await ctx.node.notifications.inbox(ctx.principal.user_id, query_as(ctx, NotificationQuery))


@router.get("/notifications/webpush-key", response=WebPushKey)
async def webpush_key(ctx: Ctx) -> WebPushKey:
    """The node's VAPID public key, for a browser's or UnifiedPush client's subscription."""
    return ctx.node.notifications.webpush_key()
