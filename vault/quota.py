"""Storage used per user, maintained with every change (never recomputed by scanning)."""

from __future__ import annotations

import msgspec

from vault import errors
from vault.meta import Table, Txn


class Usage(msgspec.Struct, kw_only=True):
    used: int = 0  # bytes the user's content holds: live files, the trash and kept earlier versions
    reserved: int = 0  # bytes promised to open upload sessions


USAGE = Table("usage", Usage)


def get_usage(txn: Txn, user_id: str) -> Usage:
    return txn.get(USAGE, user_id.encode()) or Usage()


def put_usage(txn: Txn, user_id: str, usage: Usage) -> None:
    txn.put(USAGE, user_id.encode(), usage)


def check_quota(usage: Usage, quota: int, requested: int, *, include_reserved: bool = True) -> None:
    """``STORAGE_QUOTA_EXCEEDED`` when ``requested`` more bytes would pass ``quota`` (0 = unlimited)."""
    if quota <= 0:
        return
    base = usage.used + (usage.reserved if include_reserved else 0)
    if base + requested > quota:
        raise errors.StorageQuotaExceeded(
            "This upload would exceed your storage quota",
            details={"used": usage.used, "quota": quota, "requested": requested},
        )
