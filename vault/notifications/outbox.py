"""The durable push outbox: one entry per delivery still to make, keyed by when it is due.

An entry is written in the same transaction as the change that caused it (a finished upload, a
new device, a share), so a delivery the node owes survives ``kill -9``; the delivery runner
(``vault.notifications.delivery``) scans the due end of the table. Keys are
``<due µs, zero-padded>/<id>``: ordered by due time, unique per entry.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from vault.ids import new_id
from vault.meta import Table, Txn


class OutboxEntry(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    device_id: str
    kind: Literal["notification", "sync_hint"]
    notification_key: str = ""  # where its Notification record is (empty for sync hints)
    category: str
    title: str
    body: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    silent: bool = False
    created_at: float  # when the event happened: the message's time and the start of its max age
    due: float
    attempts: int = 0
    last_error: str = ""


OUTBOX = Table("push_outbox", OutboxEntry)


def outbox_key(due: float, entry_id: str) -> bytes:
    return f"{max(0, int(due * 1_000_000)):017d}/{entry_id}".encode()


def due_of(key: bytes) -> float:
    return int(key.split(b"/", 1)[0]) / 1_000_000


def enqueue(txn: Txn, entry: OutboxEntry) -> bytes:
    key = outbox_key(entry.due, entry.id)
    txn.put(OUTBOX, key, entry)
    return key


def new_entry_id() -> str:
    return new_id("push")


def reschedule(txn: Txn, key: bytes, entry: OutboxEntry, due: float) -> bytes:
    """Move ``entry`` (stored at ``key``) to ``due``; answers its new key."""
    txn.delete(OUTBOX, key)
    entry.due = due
    return enqueue(txn, entry)
