"""The per-user change journal: every change to a user's files and folders, in order.

Entries are written only by ``vault.files.changes``, in the same transaction as the change they
describe, so after any crash the journal and the files agree. Keys are ``user_id NUL seq`` (seq as
8 bytes big-endian, 1, 2, … per user), so a user's changes since a position are one range scan,
and its head is one reverse seek. Each entry holds everything a syncing client needs to apply the
change without another lookup.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Literal

import msgspec

from vault.meta import META, RawTable, Table, Txn

# File operations: "created" (a new file), "updated" (new content), "moved" (renamed and/or moved),
# "deleted" (to the trash), "restored" (back from the trash: new to a client that saw the delete).
# Folder operations (``file_id`` is ""): "folder_created", "folder_moved", "folder_deleted"; a folder
# move or delete also writes one file entry per file it carried, so a client never needs to list.
JournalOp = Literal[
    "created", "updated", "moved", "deleted", "restored", "folder_created", "folder_moved", "folder_deleted"
]
_SEQ = struct.Struct(">Q")


class JournalEntry(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    seq: int
    op: JournalOp
    file_id: str  # "" for folder operations
    version: int
    folder: str
    name: str  # "" for folder operations (``folder`` is the folder itself)
    checksum: str | None  # "blake3:<hex>" of the content, for files
    size: int
    device_id: str | None  # the device whose request made the change (None: the node itself)
    at: float
    mime_type: str = ""
    modified_at: float = 0.0  # the file's own modification time (as its entry shows it)
    previous_folder: str | None = None  # where a moved or renamed file was before
    previous_name: str | None = None


JOURNAL = Table("journal", JournalEntry)


def _prefix(user_id: str) -> bytes:
    return user_id.encode() + b"\x00"


def entry_key(user_id: str, seq: int) -> bytes:
    return _prefix(user_id) + _SEQ.pack(seq)


def head(txn: Txn, user_id: str) -> int:
    """The sequence number of the user's latest change (0: none yet). Pruning never lowers it:
    with every entry pruned, the floor is the head, so numbers are never given out twice."""
    for key, _ in txn.scan_bytes(JOURNAL, _prefix(user_id), reverse=True):
        seq: int = _SEQ.unpack(key[-8:])[0]
        return seq
    return floor(txn, user_id)


def since(txn: Txn, user_id: str, after: int, *, limit: int | None = None) -> list[JournalEntry]:
    """The user's changes with ``seq > after``, oldest first (at most ``limit``)."""
    entries: list[JournalEntry] = []
    for _, entry in txn.scan(JOURNAL, _prefix(user_id), start=entry_key(user_id, after + 1)):
        entries.append(entry)
        if limit is not None and len(entries) >= limit:
            break
    return entries


def append(txn: Txn, user_id: str, entry: JournalEntry) -> None:
    """Store ``entry`` (its ``seq`` is ``head + 1``, chosen by the caller inside this transaction)."""
    txn.put(JOURNAL, entry_key(user_id, entry.seq), entry)


JOURNAL_FLOOR = RawTable("journal_floor")  # user -> newest seq pruned (entries up to it are gone)
_IDENTITY_KEY = b"journal_id"


def floor(txn: Txn, user_id: str) -> int:
    """The newest sequence number pruned from the user's journal (0: nothing pruned yet)."""
    raw = txn.get_bytes(JOURNAL_FLOOR, user_id.encode())
    return 0 if raw is None else int(_SEQ.unpack(raw)[0])


def set_floor(txn: Txn, user_id: str, seq: int) -> None:
    txn.put_bytes(JOURNAL_FLOOR, user_id.encode(), _SEQ.pack(seq))


def identity(txn: Txn) -> bytes | None:
    """The journal's identity: made once; a rebuilt journal gets a new one, so tokens into the old
    one are recognised as such."""
    return txn.get_bytes(META, _IDENTITY_KEY)


def ensure_identity(txn: Txn, make: Callable[[], bytes]) -> bytes:
    current = identity(txn)
    if current is None:
        current = make()
        txn.put_bytes(META, _IDENTITY_KEY, current)
    return current


def entry(txn: Txn, user_id: str, seq: int) -> JournalEntry | None:
    return txn.get(JOURNAL, entry_key(user_id, seq))


def last_seq_before(txn: Txn, user_id: str, when: float) -> int:
    """The newest sequence number whose change happened at or before ``when`` (binary search over
    the retained entries: a dozen lookups whatever the journal's length)."""
    low, high = floor(txn, user_id), head(txn, user_id)  # answer within [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        found = entry(txn, user_id, middle)
        if found is not None and found.at <= when:
            low = middle
        else:
            high = middle - 1
    return low
