"""The per-user change journal: every create/update/delete of a file, in order.

Sync tokens point at a position in this journal; replaying from a position yields exactly the
changes after it.
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

from vault.meta import Table, Txn

JournalOp = Literal["created", "updated", "deleted"]


class JournalEntry(msgspec.Struct, array_like=True, frozen=True):
    file_id: str
    op: JournalOp
    at: float


JOURNAL = Table("journal", JournalEntry)


def _prefix(user_id: str) -> bytes:
    return user_id.encode() + b"\x00"


def last_seq(txn: Txn, user_id: str) -> int:
    for key, _ in txn.scan_bytes("journal", _prefix(user_id), reverse=True):
        seq: int = struct.unpack(">Q", key[-8:])[0]
        return seq
    return 0


def append(txn: Txn, user_id: str, file_id: str, op: JournalOp, at: float) -> int:
    """Record a change; returns its sequence number (1, 2, … per user)."""
    seq = last_seq(txn, user_id) + 1
    txn.put(JOURNAL, _prefix(user_id) + struct.pack(">Q", seq), JournalEntry(file_id, op, at))
    return seq
