"""The offline queue as stored: operations, and the indexes that make each question a lookup.

An operation is keyed ``user NUL device NUL id``: ``id`` is the client's idempotency key, so each
device's ids are a namespace of their own. Every change of state goes through ``_leave`` and
``_enter`` inside one metadata write, which keep these beside the record:

- ``queue_by_device``: a device's operations, newest first (the listing);
- ``queue_runnable``: queued operations in the order they run: priority, then ``createdAt``, then
  the order they were added (a node-wide sequence number);
- ``queue_waiting``: upload operations by the path they wait for (one lookup per file change);
- ``queue_timers``: each operation's one deadline, if any (a retry, an upload wait running out, a
  finished operation to forget), by time: what is due, and when the runner wakes next, is the
  front of the table;
- ``queue_counts``: a device's open (queued + waiting) and waiting operations (the cap, and
  ``pendingUploads``).
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

from vault.meta import META, RawTable, Table, Txn

OpType = Literal["upload", "delete", "move", "rename", "mkdir"]
OpStatus = Literal["queued", "waiting", "done", "failed"]
Priority = Literal["high", "normal", "low"]
_RANK: dict[str, int] = {"high": 0, "normal": 1, "low": 2}
_U64 = struct.Struct(">Q")
_SEQ_KEY = b"queue_seq"


class QueuedOp(msgspec.Struct, kw_only=True):
    id: str  # the client's idempotency key
    user_id: str
    device_id: str
    seq: int  # node-wide, in the order operations were added
    type: OpType
    priority: Priority
    created_at: float  # the app's createdAt (or, without one, when the node received it)
    created_given: bool = True  # whether the app sent createdAt (a retry without one is the same)
    added_at: float
    base: int  # journal position the operation was made on (conflict checks)
    file_id: str | None = None  # the file a delete, move or rename is about
    folder: str | None = None  # a move's target, a mkdir's folder, an upload's remote folder
    name: str | None = None  # a rename's new name, an upload's remote name
    local_path: str = ""  # an upload's path on the device (kept for the app, never used)
    status: OpStatus
    result_file_id: str | None = None  # the file an upload made (or the one a change applied to)
    error_code: str | None = None
    error_message: str | None = None
    conflict_id: str | None = None
    attempts: int = 0  # tries that failed for a passing reason
    timer_at: float | None = None  # the deadline in queue_timers (None: none)
    finished_at: float | None = None

    def same_operation(self, other: QueuedOp) -> bool:
        """Whether ``other`` (just received) is this operation again (an idempotent retry)."""
        return _what(self) == _what(other)

    @property
    def is_open(self) -> bool:
        return self.status in ("queued", "waiting")


def _what(op: QueuedOp) -> tuple[object, ...]:
    created = op.created_at if op.created_given else None
    return (op.type, op.priority, created, op.file_id, op.folder, op.name, op.local_path)


class QueueCounts(msgspec.Struct, array_like=True):
    open: int = 0
    waiting: int = 0


QUEUE_OPS = Table("queue_ops", QueuedOp)
QUEUE_BY_DEVICE = RawTable("queue_by_device")
QUEUE_RUNNABLE = RawTable("queue_runnable")
QUEUE_WAITING = RawTable("queue_waiting")
QUEUE_TIMERS = RawTable("queue_timers")
QUEUE_COUNTS = Table("queue_counts", QueueCounts)


# -- keys --------------------------------------------------------------------------------------


def device_prefix(user_id: str, device_id: str) -> bytes:
    return user_id.encode() + b"\x00" + device_id.encode() + b"\x00"


def op_key(user_id: str, device_id: str, op_id: str) -> bytes:
    return device_prefix(user_id, device_id) + op_id.encode()


def _key_of(op: QueuedOp) -> bytes:
    return op_key(op.user_id, op.device_id, op.id)


def _ms(seconds: float) -> bytes:
    return _U64.pack(min(max(0, int(seconds * 1000)), 2**64 - 1))


def listing_key(user_id: str, device_id: str, seq: int) -> bytes:
    """Newest first in ascending key order (the sequence number inverted)."""
    return device_prefix(user_id, device_id) + _U64.pack(2**64 - 1 - seq)


def seq_of_listing_key(key: bytes) -> int:
    inverted: int = _U64.unpack(key[-8:])[0]
    return 2**64 - 1 - inverted


def _runnable_key(op: QueuedOp) -> bytes:
    return bytes([_RANK[op.priority]]) + _ms(op.created_at) + _U64.pack(op.seq)


def waiting_prefix(user_id: str, folder: str, name: str) -> bytes:
    return user_id.encode() + b"\x00" + folder.encode() + b"\x00" + name.encode() + b"\x00"


def _waiting_key(op: QueuedOp) -> bytes:
    assert op.folder is not None and op.name is not None
    return waiting_prefix(op.user_id, op.folder, op.name) + op.device_id.encode() + b"\x00" + op.id.encode()


def _timer_key(at: float, seq: int) -> bytes:
    return _ms(at) + _U64.pack(seq)


def _counts_key(user_id: str, device_id: str) -> bytes:
    return user_id.encode() + b"\x00" + device_id.encode()


# -- reads -------------------------------------------------------------------------------------


def load(txn: Txn, key: bytes) -> QueuedOp | None:
    return txn.get(QUEUE_OPS, key)


def counts(txn: Txn, user_id: str, device_id: str) -> QueueCounts:
    return txn.get(QUEUE_COUNTS, _counts_key(user_id, device_id)) or QueueCounts()


def first_runnable(txn: Txn) -> tuple[bytes, bytes] | None:
    """(index key, operation key) of the operation to run next."""
    for key, value in txn.scan_bytes(QUEUE_RUNNABLE):
        return key, value
    return None


def drop_runnable(txn: Txn, key: bytes) -> None:
    txn.delete_key(QUEUE_RUNNABLE, key)


def due_timers(txn: Txn, now: float, limit: int) -> list[tuple[bytes, bytes]]:
    """(timer key, operation key) of deadlines at or before ``now``, oldest first."""
    upto = _ms(now)
    due: list[tuple[bytes, bytes]] = []
    for key, value in txn.scan_bytes(QUEUE_TIMERS):
        if key[:8] > upto or len(due) >= limit:
            break
        due.append((key, value))
    return due


def next_deadline(txn: Txn) -> float | None:
    for key, _ in txn.scan_bytes(QUEUE_TIMERS):
        at: int = _U64.unpack(key[:8])[0]
        return at / 1000
    return None


def timer_matches(op: QueuedOp, key: bytes) -> bool:
    return op.timer_at is not None and _timer_key(op.timer_at, op.seq) == key


def drop_timer(txn: Txn, key: bytes) -> None:
    txn.delete_key(QUEUE_TIMERS, key)


def waiting_for(txn: Txn, user_id: str, folder: str, name: str) -> list[QueuedOp]:
    """The user's upload operations (any device) waiting for a file at ``folder``/``name``."""
    found: list[QueuedOp] = []
    for _, key in txn.scan_bytes(QUEUE_WAITING, waiting_prefix(user_id, folder, name)):
        op = load(txn, key)
        if op is not None and op.status == "waiting":
            found.append(op)
    return found


def page(txn: Txn, user_id: str, device_id: str, after_seq: int | None, limit: int) -> tuple[list[QueuedOp], bool]:
    """A device's operations, newest first, older than ``after_seq``; and whether more follow."""
    prefix = device_prefix(user_id, device_id)
    start = listing_key(user_id, device_id, after_seq) + b"\x00" if after_seq is not None else None
    ops: list[QueuedOp] = []
    for _, raw_id in txn.scan_bytes(QUEUE_BY_DEVICE, prefix, start=start):
        if len(ops) >= limit:
            return ops, True
        op = load(txn, prefix + raw_id)
        if op is not None:
            ops.append(op)
    return ops, False


def next_seq(txn: Txn) -> int:
    raw = txn.get_bytes(META, _SEQ_KEY)
    seq = (_U64.unpack(raw)[0] if raw else 0) + 1
    txn.put_bytes(META, _SEQ_KEY, _U64.pack(seq))
    return int(seq)


# -- changes of state (inside one write) --------------------------------------------------------


def _leave(txn: Txn, op: QueuedOp) -> None:
    """Take ``op`` out of the indexes its current state puts it in."""
    if op.status == "queued" and op.timer_at is None:
        txn.delete_key(QUEUE_RUNNABLE, _runnable_key(op))
    if op.status == "waiting":
        txn.delete_key(QUEUE_WAITING, _waiting_key(op))
    if op.timer_at is not None:
        txn.delete_key(QUEUE_TIMERS, _timer_key(op.timer_at, op.seq))
    _count(txn, op, -1)


def _enter(txn: Txn, op: QueuedOp) -> None:
    """Put ``op`` (in its new state) into the indexes that state needs, and store it."""
    if op.status == "queued" and op.timer_at is None:
        txn.put_bytes(QUEUE_RUNNABLE, _runnable_key(op), _key_of(op))
    if op.status == "waiting":
        txn.put_bytes(QUEUE_WAITING, _waiting_key(op), _key_of(op))
    if op.timer_at is not None:
        txn.put_bytes(QUEUE_TIMERS, _timer_key(op.timer_at, op.seq), _key_of(op))
    _count(txn, op, +1)
    txn.put(QUEUE_OPS, _key_of(op), op)


def _count(txn: Txn, op: QueuedOp, step: int) -> None:
    if not op.is_open:
        return
    key = _counts_key(op.user_id, op.device_id)
    current = txn.get(QUEUE_COUNTS, key) or QueueCounts()
    current.open = max(0, current.open + step)
    if op.status == "waiting":
        current.waiting = max(0, current.waiting + step)
    if current.open or current.waiting:
        txn.put(QUEUE_COUNTS, key, current)
    else:
        txn.delete(QUEUE_COUNTS, key)


def insert(txn: Txn, op: QueuedOp) -> None:
    """Store a new operation (its status and ``timer_at`` already set)."""
    txn.put_bytes(QUEUE_BY_DEVICE, listing_key(op.user_id, op.device_id, op.seq), op.id.encode())
    _enter(txn, op)


def finish(
    txn: Txn,
    op: QueuedOp,
    status: Literal["done", "failed"],
    *,
    now: float,
    forget_at: float,
    file_id: str | None = None,
    error: tuple[str, str] | None = None,
    conflict_id: str | None = None,
) -> None:
    """``op`` is done (or failed with ``error`` = (code, message)); forgotten at ``forget_at``."""
    _leave(txn, op)
    op.status = status
    op.finished_at = now
    op.result_file_id = file_id
    op.error_code, op.error_message = error if error is not None else (None, None)
    op.conflict_id = conflict_id
    op.timer_at = forget_at
    _enter(txn, op)


def defer(txn: Txn, op: QueuedOp, until: float) -> None:
    """Keep ``op`` queued but out of the running order until ``until`` (a retry after a failure)."""
    _leave(txn, op)
    op.attempts += 1
    op.timer_at = until
    _enter(txn, op)


def resume(txn: Txn, op: QueuedOp) -> None:
    """A deferred operation's retry is due: back into the running order, at its old place."""
    _leave(txn, op)
    op.timer_at = None
    _enter(txn, op)


def forget(txn: Txn, op: QueuedOp) -> None:
    _leave(txn, op)
    txn.delete(QUEUE_OPS, _key_of(op))
    txn.delete_key(QUEUE_BY_DEVICE, listing_key(op.user_id, op.device_id, op.seq))
