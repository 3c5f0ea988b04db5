"""Notification records: what happened, for whom, and to which devices it is still to be delivered.

``record_notification`` runs inside a metadata write transaction, so a notification is stored
atomically with the change that caused it (a new device, a finished upload). Keys are
``user_id/<microseconds, zero-padded>/id`` so a user's notifications scan in time order.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from vault.ids import new_id
from vault.meta import Table, Txn

Category = Literal["uploads", "shares", "storage", "security"]


class Delivery(msgspec.Struct, kw_only=True, rename="camel"):
    """One target device of a notification and how far its delivery got."""

    device_id: str
    status: Literal["pending", "sent", "failed", "skipped"] = "pending"
    attempts: int = 0


class Notification(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    user_id: str
    category: Category
    title: str
    body: str
    created_at: float
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    deliveries: list[Delivery] = msgspec.field(default_factory=list)
    exclude_device_id: str | None = None  # the device that caused it is not told about itself


NOTIFICATIONS = Table("notifications", Notification)


def notification_key(user_id: str, created_at: float, notification_id: str) -> bytes:
    return f"{user_id}/{int(created_at * 1_000_000):017d}/{notification_id}".encode()


def record_notification(
    txn: Txn,
    *,
    user_id: str,
    category: Category,
    title: str,
    body: str,
    now: float,
    device_ids: list[str],
    data: dict[str, Any] | None = None,
    exclude_device_id: str | None = None,
) -> Notification:
    """Store a notification pending delivery to ``device_ids`` (minus ``exclude_device_id``)."""
    notification = Notification(
        id=new_id("notif"),
        user_id=user_id,
        category=category,
        title=title,
        body=body,
        created_at=now,
        data=dict(data or {}),
        deliveries=[Delivery(device_id=d) for d in device_ids if d != exclude_device_id],
        exclude_device_id=exclude_device_id,
    )
    txn.put(NOTIFICATIONS, notification_key(user_id, now, notification.id), notification)
    return notification
