"""``storage`` notifications: "Storage 90% full" and "Storage full", once per crossing.

After a user's files change (the change feed publishes after the commit), the user's usage is
compared with the plan quota, which the plan policy answers asynchronously and so cannot be asked
inside the change's transaction. The highest threshold already announced is stored per user: a
crossing is announced once, and falling back below a threshold re-arms it. A crash between a
change's commit and its check loses nothing: when the node starts, every user with stored files
or an announced threshold is checked again (a home node has tens of users: a few reads, and a
write only for a crossing), which also catches a plan's quota changed while the node was down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from vault.devices.records import DEVICES, user_devices_prefix
from vault.meta import MetaStore, RawTable, Table, Txn
from vault.notifications.records import record_notification
from vault.quota import USAGE, get_usage

log = logging.getLogger(__name__)

STORAGE_ALERTS = RawTable("storage_alerts")
THRESHOLDS = (90, 100)
TEXTS = {
    90: ("Storage 90% full", "You have used {used} of {quota}. Free some space or upgrade your plan."),
    100: ("Storage full", "You have used all of your {quota}. New uploads will be refused."),
}


def level_of(used: int, quota: int) -> int:
    """The highest threshold ``used`` has reached (0 when none, or with no quota)."""
    if quota <= 0:
        return 0
    reached = [t for t in THRESHOLDS if used * 100 >= quota * t]
    return max(reached, default=0)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


class StorageAlerts:
    """Checks users whose files changed; runs as a task in the node's nursery."""

    def __init__(self, meta: MetaStore, quota_of: Callable[[str], Awaitable[int]], now: Callable[[], float]) -> None:
        self.meta = meta
        self.quota_of = quota_of
        self.now = now
        self._pending: set[str] = set()
        self._wakeup = trio.Event()

    def changed(self, user_id: str) -> None:
        """Change-feed listener (on the event loop, after the commit)."""
        self._pending.add(user_id)
        self._wakeup.set()

    async def recheck_announced(self) -> None:
        """Check again every user with a threshold announced: space freed without a file change
        (the trash or old versions reclaimed) re-arms their warnings."""
        await self._recheck_users_in(STORAGE_ALERTS)

    async def recheck_all(self) -> None:
        """Queue a check of every user who has usage or an announced threshold (at start)."""
        await self._recheck_users_in(USAGE, STORAGE_ALERTS)

    async def _recheck_users_in(self, *tables: RawTable | Table[Any]) -> None:
        """Queue a check of every user keyed in ``tables`` (both key by user id)."""
        async with self.meta.snapshot() as txn:
            users = {key.decode() for table in tables for key in txn.keys(table)}
        for user_id in sorted(users):
            self.changed(user_id)

    async def run(self) -> None:
        await self.recheck_all()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            users, self._pending = self._pending, set()
            for user_id in users:
                try:
                    await self.check(user_id)
                except Exception:
                    log.exception("storage threshold check failed for a user")

    async def check(self, user_id: str) -> int | None:
        """Announce a newly crossed threshold for ``user_id``; answers the threshold announced."""
        quota = await self.quota_of(user_id)
        now = self.now()

        def write(txn: Txn) -> int | None:
            usage = get_usage(txn, user_id)
            level = level_of(usage.used, quota)
            raw = txn.get_bytes(STORAGE_ALERTS, user_id.encode())
            announced = int(raw) if raw else 0
            if level == announced:
                return None
            txn.put_bytes(STORAGE_ALERTS, user_id.encode(), str(level).encode())
            if level < announced:
                return None  # space was freed: the lower thresholds may be announced again
            title, body = TEXTS[level]
            devices = [d.id for _, d in txn.scan(DEVICES, user_devices_prefix(user_id))]
            record_notification(
                txn,
                user_id=user_id,
                category="storage",
                title=title,
                body=body.format(used=_size(usage.used), quota=_size(quota)),
                now=now,
                device_ids=devices,
                data={"used": usage.used, "quota": quota, "percent": level},
            )
            return level

        async with self.meta.snapshot() as txn:
            raw = txn.get_bytes(STORAGE_ALERTS, user_id.encode())
            if level_of(get_usage(txn, user_id).used, quota) == (int(raw) if raw else 0):
                return None  # nothing crossed: no write for the common case
        return await self.meta.write(write)
