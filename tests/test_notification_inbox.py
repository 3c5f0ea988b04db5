"""The notification inbox keeps a user's newest ``KEEP_PER_USER`` notifications, whatever the
order of writes, and counts an inbox written before its size was kept exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vault.meta import MetaStore, Txn
from vault.notifications.records import INBOX_SIZES, KEEP_PER_USER, NOTIFICATIONS, record_notification


def _recording(user_id: str, numbers: range) -> Callable[[Txn], None]:
    """A write recording notification ``n`` (titled ``n{n}``, made at second ``n``) for each number."""

    def write(txn: Txn) -> None:
        for n in numbers:
            record_notification(
                txn, user_id=user_id, category="uploads", title=f"n{n}", body="", now=1_000_000.0 + n, device_ids=[]
            )

    return write


def _titles(store: MetaStore, user_id: str) -> list[str]:
    with store.read() as txn:
        return [n.title for _, n in txn.scan(NOTIFICATIONS, f"{user_id}/".encode())]


async def test_the_inbox_keeps_the_newest_and_other_users_are_untouched(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta")
    await store.open()
    try:
        extra = 7
        for start in range(0, KEEP_PER_USER + extra, 100):
            await store.write(_recording("alice", range(start, min(start + 100, KEEP_PER_USER + extra))))
        await store.write(_recording("bob", range(1)))
        assert _titles(store, "alice") == [f"n{n}" for n in range(extra, KEEP_PER_USER + extra)]
        assert _titles(store, "bob") == ["n0"]
        with store.read() as txn:
            assert txn.get(INBOX_SIZES, b"alice") == KEEP_PER_USER
            assert txn.get(INBOX_SIZES, b"bob") == 1
    finally:
        await store.close()


async def test_an_inbox_from_before_its_size_was_kept_is_counted_once_then_trimmed(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta")
    await store.open()
    try:
        await store.write(_recording("alice", range(KEEP_PER_USER)))
        # As a node of the previous release left it: the notifications, no size beside them.
        await store.write(lambda txn: txn.delete(INBOX_SIZES, b"alice"))
        await store.write(_recording("alice", range(KEEP_PER_USER, KEEP_PER_USER + 3)))
        assert _titles(store, "alice") == [f"n{n}" for n in range(3, KEEP_PER_USER + 3)]
        with store.read() as txn:
            assert txn.get(INBOX_SIZES, b"alice") == KEEP_PER_USER
    finally:
        await store.close()
