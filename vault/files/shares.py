"""Read-only shares: who may read a file besides its owner (records; ``vault.shares`` runs them).

A recipient sees a shared file in one virtual folder, ``/Shared with me``, wherever its entry
appears (reads and sync), so the owner's folder names stay the owner's. The file itself stays
the owner's record, charged to the owner's quota; only reads go through a share.
"""

from __future__ import annotations

import msgspec

from vault.meta import RawTable, Table, Txn

SHARED_FOLDER = "/Shared with me"


class Share(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    file_id: str
    owner_id: str
    recipient_id: str
    created_at: float


SHARES = Table("shares", Share)
SHARES_BY_USER = RawTable("shares_by_user")  # user_id/share_id -> b"" (owned or received)
SHARES_BY_FILE = RawTable("shares_by_file")  # file_id/recipient_id -> share_id


def by_file_key(file_id: str, recipient_id: str) -> bytes:
    return f"{file_id}/{recipient_id}".encode()


def share_for(txn: Txn, file_id: str, recipient_id: str) -> Share | None:
    """The share through which ``recipient_id`` may read ``file_id``, if any."""
    raw = txn.get_bytes(SHARES_BY_FILE, by_file_key(file_id, recipient_id))
    return None if raw is None else txn.get(SHARES, raw)


def recipients(txn: Txn, file_id: str) -> list[str]:
    prefix = f"{file_id}/".encode()
    return [key[len(prefix) :].decode() for key in txn.keys(SHARES_BY_FILE, prefix)]


def put_share(txn: Txn, share: Share) -> None:
    txn.put(SHARES, share.id.encode(), share)
    txn.put_bytes(SHARES_BY_USER, f"{share.owner_id}/{share.id}".encode(), b"")
    txn.put_bytes(SHARES_BY_USER, f"{share.recipient_id}/{share.id}".encode(), b"")
    txn.put_bytes(SHARES_BY_FILE, by_file_key(share.file_id, share.recipient_id), share.id.encode())


def delete_share(txn: Txn, share: Share) -> None:
    txn.delete(SHARES, share.id.encode())
    txn.delete_key(SHARES_BY_USER, f"{share.owner_id}/{share.id}".encode())
    txn.delete_key(SHARES_BY_USER, f"{share.recipient_id}/{share.id}".encode())
    txn.delete_key(SHARES_BY_FILE, by_file_key(share.file_id, share.recipient_id))


def forget_file(txn: Txn, file_id: str) -> None:
    """Drop every share of a file that is gone for good (purged from the trash). A trashed file
    keeps its shares: restored, it is shared again."""
    for recipient_id in recipients(txn, file_id):
        share = share_for(txn, file_id, recipient_id)
        if share is not None:
            delete_share(txn, share)


def user_shares(txn: Txn, user_id: str) -> list[Share]:
    """Every share ``user_id`` owns or receives."""
    prefix = f"{user_id}/".encode()
    found = []
    for key in txn.keys(SHARES_BY_USER, prefix):
        share = txn.get(SHARES, key[len(prefix) :])
        if share is not None:
            found.append(share)
    return found


def get_share(txn: Txn, share_id: str) -> Share | None:
    return txn.get(SHARES, share_id.encode())
