"""Notification records: what happened, for whom, and how far each device's delivery got.

``record_notification`` runs inside a metadata write transaction, so a notification and its
outbox entries are stored atomically with the change that caused it (a new device, a finished
upload, a share). For each target device it looks at the device's push registration: no
registration or the category turned off is ``skipped``; inside the device's quiet hours a
non-security notification is ``held`` until they end; otherwise it is ``pending`` now. Keys are
``user_id/<microseconds, zero-padded>/id`` so a user's notifications scan in time order.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import msgspec

from vault.devices.push_registrations import get_registration
from vault.ids import new_id
from vault.meta import Table, Txn
from vault.notifications.outbox import OutboxEntry, enqueue, new_entry_id
from vault.notifications.quiet_hours import held_until

Category = Literal["uploads", "shares", "storage", "security"]
DeliveryStatus = Literal["pending", "held", "sent", "failed", "skipped", "unregistered"]


class Delivery(msgspec.Struct, kw_only=True, rename="camel"):
    """One target device of a notification and how far its delivery got."""

    device_id: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    provider: str | None = None
    due_at: float | None = None  # when a held or retried delivery is next tried
    reason: str | None = None  # why it was skipped or failed


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
INBOX_SIZES = Table("inbox_sizes", int)
# The inbox keeps each user's newest notifications, this many; older ones (long delivered or given
# up) are dropped as new ones arrive, so a chatty account's inbox cannot grow without bound.
KEEP_PER_USER = 500


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
    """Store a notification for ``device_ids`` (minus ``exclude_device_id``) and queue its deliveries."""
    notification = Notification(
        id=new_id("notif"),
        user_id=user_id,
        category=category,
        title=title,
        body=body,
        created_at=now,
        data=dict(data or {}),
        exclude_device_id=exclude_device_id,
    )
    key = notification_key(user_id, now, notification.id)
    for device_id in dict.fromkeys(device_ids):
        if device_id == exclude_device_id:
            continue
        notification.deliveries.append(_queue_delivery(txn, notification, key, device_id, now))
    txn.put(NOTIFICATIONS, key, notification)
    _trim_inbox(txn, user_id)
    return notification


def _trim_inbox(txn: Txn, user_id: str) -> None:
    """Keep the newest ``KEEP_PER_USER`` (called once the new one is in). The inbox's size is kept
    beside it, so a notification costs a read and a write here, not a walk over up to 500 keys
    (4% of the metadata writer's time when small files arrive); an inbox from before the count
    existed is counted once."""
    prefix = f"{user_id}/".encode()
    size = txn.get(INBOX_SIZES, user_id.encode())
    size = txn.count(NOTIFICATIONS, prefix) if size is None else size + 1
    if size > KEEP_PER_USER:
        oldest = list(itertools.islice(txn.keys(NOTIFICATIONS, prefix), size - KEEP_PER_USER))
        for old in oldest:
            txn.delete(NOTIFICATIONS, old)
        size -= len(oldest)
    txn.put(INBOX_SIZES, user_id.encode(), size)


def _queue_delivery(txn: Txn, notification: Notification, key: bytes, device_id: str, now: float) -> Delivery:
    registration = get_registration(txn, notification.user_id, device_id)
    if registration is None:
        return Delivery(device_id=device_id, status="skipped", reason="no push registration")
    prefs = registration.preferences
    if not prefs.wants(notification.category):
        return Delivery(device_id=device_id, status="skipped", provider=registration.provider, reason="category off")
    # Security alerts are never held: a stranger's sign-in at 3 a.m. is news at 3 a.m.
    held = None if notification.category == "security" else held_until(prefs.quiet_hours, now)
    due = now if held is None else held
    enqueue(
        txn,
        OutboxEntry(
            id=new_entry_id(),
            user_id=notification.user_id,
            device_id=device_id,
            kind="notification",
            notification_key=key.decode(),
            category=notification.category,
            title=notification.title,
            body=notification.body,
            data=notification.data,
            created_at=now,
            due=due,
        ),
    )
    return Delivery(
        device_id=device_id,
        status="pending" if held is None else "held",
        provider=registration.provider,
        due_at=held,
    )


def update_delivery(txn: Txn, key: str, device_id: str, **changes: Any) -> None:
    """Record how a delivery went on its notification (gone with it when the inbox was pruned)."""
    notification = txn.get(NOTIFICATIONS, key.encode())
    if notification is None:
        return
    for delivery in notification.deliveries:
        if delivery.device_id == device_id:
            for name, value in changes.items():
                setattr(delivery, name, value)
    txn.put(NOTIFICATIONS, key.encode(), notification)
