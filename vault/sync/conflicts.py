"""Conflict records: a device's change the node did not apply because the file changed meanwhile.

Kept per user (key ``user NUL conflict id``) with the change as the device sent it, the remote
state at that moment and both devices, until resolved; resolved ones are kept a while so that a
resolve repeated after a lost answer is harmless. Each record or resolution bumps the user's
conflict generation, which is part of ``sync/status``'s ETag.
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

from vault.clock import rfc3339
from vault.files.records import FileEntry
from vault.ids import new_id
from vault.meta import RawTable, Table, Txn
from vault.sync.wire import ConflictView, LocalChange

Reason = Literal["modified_remotely", "deleted_remotely", "name_taken", "version_mismatch"]
_COUNT = struct.Struct(">Q")


class Conflict(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    device_id: str
    device_name: str
    file_id: str | None
    local_id: str
    reason: Reason
    change: LocalChange
    remote: FileEntry | None
    remote_device_id: str | None
    created_at: float
    resolved_at: float | None = None
    resolution: str | None = None
    result_file_id: str | None = None


CONFLICTS = Table("conflicts", Conflict)
GENERATION = RawTable("conflict_generation")  # user -> 8-byte counter


def _key(user_id: str, conflict_id: str) -> bytes:
    return f"{user_id}\x00{conflict_id}".encode()


def _bump(txn: Txn, user_id: str) -> None:
    txn.put_bytes(GENERATION, user_id.encode(), _COUNT.pack(generation(txn, user_id) + 1))


def generation(txn: Txn, user_id: str) -> int:
    raw = txn.get_bytes(GENERATION, user_id.encode())
    return 0 if raw is None else int(_COUNT.unpack(raw)[0])


def record(
    txn: Txn,
    *,
    user_id: str,
    device_id: str,
    device_name: str,
    change: LocalChange,
    file_id: str | None,
    reason: Reason,
    remote: FileEntry | None,
    remote_device_id: str | None,
    now: float,
) -> Conflict:
    conflict = Conflict(
        id=new_id("conflict"),
        user_id=user_id,
        device_id=device_id,
        device_name=device_name,
        file_id=file_id,
        local_id=change.local_id,
        reason=reason,
        change=change,
        remote=remote,
        remote_device_id=remote_device_id,
        created_at=now,
    )
    txn.put(CONFLICTS, _key(user_id, conflict.id), conflict)
    _bump(txn, user_id)
    return conflict


def get(txn: Txn, user_id: str, conflict_id: str) -> Conflict | None:
    """The user's conflict; ``None`` for unknown ids and other users' conflicts."""
    return txn.get(CONFLICTS, _key(user_id, conflict_id))


def mark_resolved(txn: Txn, conflict: Conflict, resolution: str, file_id: str | None, now: float) -> None:
    conflict.resolved_at = now
    conflict.resolution = resolution
    conflict.result_file_id = file_id
    txn.put(CONFLICTS, _key(conflict.user_id, conflict.id), conflict)
    _bump(txn, conflict.user_id)


def open_conflicts(txn: Txn, user_id: str, limit: int = 1000) -> list[Conflict]:
    found: list[Conflict] = []
    for _, conflict in txn.scan(CONFLICTS, f"{user_id}\x00".encode()):
        if conflict.resolved_at is None:
            found.append(conflict)
            if len(found) >= limit:
                break
    return sorted(found, key=lambda c: (c.created_at, c.id))


def view(conflict: Conflict) -> ConflictView:
    return ConflictView(
        conflict_id=conflict.id,
        file_id=conflict.file_id,
        local_id=conflict.local_id,
        reason=conflict.reason,
        remote=conflict.remote,
        created_at=rfc3339(conflict.created_at),
    )
