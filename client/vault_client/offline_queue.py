"""Handing changes made offline to the node's own queue (``POST /queue/add``).

A delete, move, rename or mkdir made while the node could not be reached is given to the node's
queue with the time it was made (``createdAt``) and the sync token it was made on, under the
pending change's id, which the node keeps as an idempotency key: adding it again answers its
current status without running it twice, so that is also how the client asks how it went. The
node runs it in the background with the conflict rules of ``sync/files``. Content changes still
go through ``sync/files`` (the node must say which bytes to send), and so does a change that
needs its base version checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vault_client import wire
from vault_client.reconcile import wire_change
from vault_client.state import PendingRow

QUEUE_ACTIONS = ("delete", "move", "rename", "mkdir")


def for_queue(row: PendingRow) -> bool:
    change = row.change
    return bool(change.get("_offline")) and change.get("action") in QUEUE_ACTIONS and change.get("baseVersion") is None


def queue_op(row: PendingRow) -> Any:
    change = wire_change(row.change)
    made = datetime.fromtimestamp(row.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(change, wire.DeleteChange):
        return wire.QueueDelete(id=row.id, created_at=made, file_id=change.file_id)
    if isinstance(change, wire.MoveChange):
        return wire.QueueMove(id=row.id, created_at=made, file_id=change.file_id, folder=change.folder)
    if isinstance(change, wire.RenameChange):
        return wire.QueueRename(id=row.id, created_at=made, file_id=change.file_id, name=change.name)
    if isinstance(change, wire.MkdirChange):
        return wire.QueueMkdir(id=row.id, created_at=made, folder=change.folder)
    raise ValueError(f"a {row.change.get('action')} change does not go through the queue")  # for_queue decides


def as_result(row: PendingRow, outcome: wire.QueueResult) -> wire.ChangeResult | None:
    """What became of a queued operation, as ``sync/files`` would have said; ``None`` while the
    node has not run it yet."""
    file_id = outcome.file_id or getattr(wire_change(row.change), "file_id", None)
    if outcome.status == "done":
        return wire.ChangeResult(local_id=row.id, status="applied", file_id=file_id)
    if outcome.status == "failed":
        error = outcome.error
        if error is not None and error.code == "CONFLICT" and error.conflict_id:
            return wire.ChangeResult(local_id=row.id, status="conflict", file_id=file_id, conflict_id=error.conflict_id)
        code, message = (error.code, error.message) if error is not None else ("FAILED", "")
        return wire.ChangeResult(local_id=row.id, status="rejected", error=wire.ResultError(code=code, message=message))
    return None
