"""Forgetting old journal entries: changes older than ``[sync] journal_retention`` are pruned.

Each user's floor records the newest pruned sequence number, so a token from before it answers
``resetRequired`` (the client resyncs fully instead of silently missing a delete). Pruning walks
the journal in key order, a bounded batch per write, and skips straight past a user's remaining
entries once it reaches one that is young enough, so a pass costs the entries pruned plus a seek
per user.
"""

from __future__ import annotations

from functools import partial

from vault.files.journal import JOURNAL, set_floor
from vault.meta import MetaStore, Txn

BATCH = 1000


def _next_user(key: bytes) -> bytes:
    """The first key after every entry of the user that ``key`` belongs to."""
    user = key[: key.index(b"\x00")]
    return user + b"\x01"


def prune_batch(txn: Txn, cutoff: float, start: bytes, budget: int = BATCH) -> tuple[int, bytes | None]:
    """Prune up to ``budget`` entries older than ``cutoff`` from ``start`` on; (pruned, where to
    go on, or None when the walk is done)."""
    pruned = 0
    key = start
    while pruned < budget:
        found = next(txn.scan(JOURNAL, start=key), None)
        if found is None:
            return pruned, None
        found_key, entry = found
        if entry.at < cutoff:
            txn.delete(JOURNAL, found_key)
            user = found_key[: found_key.index(b"\x00")].decode()
            set_floor(txn, user, entry.seq)
            pruned += 1
            key = found_key + b"\x00"
        else:
            key = _next_user(found_key)
    return pruned, key


async def prune(meta: MetaStore, cutoff: float) -> int:
    """Prune every user's entries older than ``cutoff``; returns how many went."""
    total = 0
    start: bytes | None = b""
    while start is not None:
        pruned, start = await meta.write(partial(prune_batch, cutoff=cutoff, start=start))
        total += pruned
    return total
