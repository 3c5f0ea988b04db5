"""The one way to change a file: record, manifest, references, usage, journal entry and
subscribers in one transaction; the change feed wakes watchers only after the commit."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from vault import errors
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref, refcount
from vault.files import journal, queries
from vault.files.changes import ChangeTxn, DeleteFile, FileChanges, MakeFolder, MoveFile, PutContent
from vault.files.feed import ChangeFeed
from vault.files.journal import JournalEntry
from vault.files.records import ChunkRef
from vault.meta import MetaStore, Table, Txn
from vault.quota import get_usage

USER = "user_a"
CHUNK = ChunkId(b"\x01" * 32)
OTHER_CHUNK = ChunkId(b"\x02" * 32)


def _content(name: str = "a.jpg", folder: str = "/photos", chunk: ChunkId = CHUNK, size: int = 10) -> PutContent:
    return PutContent(
        folder=folder,
        name=name,
        size=size,
        mime_type="image/jpeg",
        blake3=chunk.hex(),
        chunks=[ChunkRef(chunk, size)],
    )


async def _put(changes: FileChanges, content: PutContent, **kw: object) -> object:
    def write(change: ChangeTxn) -> object:
        incref(change.txn, [ChunkId(c.chunk_id) for c in content.chunks])  # as an upload hands them over
        return change.apply(content, user_id=USER, device_id="device_1", **kw)  # type: ignore[arg-type]

    return await changes.write(write, now=1000.0)


def _entries(meta: MetaStore, user_id: str = USER) -> list[JournalEntry]:
    with meta.read() as txn:
        return journal.since(txn, user_id, 0)


async def test_a_new_file_and_a_new_version_are_journalled_with_what_a_client_needs(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, _content())
    await _put(changes, _content(chunk=OTHER_CHUNK, size=20))
    first, second = _entries(meta)
    assert (first.seq, first.op, first.version, first.folder, first.name) == (1, "created", 1, "/photos", "a.jpg")
    assert first.checksum == f"blake3:{CHUNK.hex()}" and first.size == 10 and first.device_id == "device_1"
    assert (second.seq, second.op, second.version, second.size) == (2, "updated", 2, 20)
    assert second.file_id == first.file_id
    with meta.read() as txn:
        record = queries.get_file(txn, USER, first.file_id)
        assert [ChunkId(c.chunk_id) for c in queries.manifest(txn, record).chunks] == [OTHER_CHUNK]
        # The replaced content is kept as an earlier version (restorable, and counted in usage
        # until its retention passes); the new content is the file's.
        assert (refcount(txn, CHUNK), refcount(txn, OTHER_CHUNK)) == (1, 1)
        assert get_usage(txn, USER).used == 10 + 20


async def test_move_rename_delete_and_mkdir_each_write_one_entry(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, _content())
    file_id = _entries(meta)[0].file_id

    def change(fn: object) -> object:
        return changes.write(lambda c: fn(c), now=2000.0)  # type: ignore[operator]

    await change(
        lambda c: c.apply(MoveFile(file_id=file_id, folder="/archive", name="b.jpg"), user_id=USER, device_id="d2")
    )
    await change(lambda c: c.apply(MakeFolder(folder="/new/deep"), user_id=USER, device_id="d2"))
    await change(lambda c: c.apply(DeleteFile(file_id=file_id), user_id=USER, device_id=None))
    moved, made, deleted = _entries(meta)[1:]
    assert (moved.op, moved.folder, moved.name, moved.version) == ("moved", "/archive", "b.jpg", 2)
    assert (moved.previous_folder, moved.previous_name) == ("/photos", "a.jpg")
    assert (made.op, made.folder) == ("folder_created", "/new/deep")
    assert (deleted.op, deleted.file_id, deleted.device_id) == ("deleted", file_id, None)
    with meta.read() as txn:
        assert queries.find_by_path(txn, USER, "/archive", "b.jpg") is None
        assert queries.subfolders(txn, USER, "/new") == ["deep"]
        assert queries.subfolders(txn, USER, "/") == ["archive", "new", "photos"]
        # A deleted file still holds its content (the trash keeps it) until it is reclaimed.
        assert refcount(txn, CHUNK) == 1


async def test_a_stale_expected_version_is_a_conflict_and_changes_nothing(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, _content())
    file_id = _entries(meta)[0].file_id
    with pytest.raises(errors.Conflict) as caught:
        await changes.write(
            lambda c: c.apply(MoveFile(file_id=file_id, name="x.jpg"), user_id=USER, device_id="d", expected_version=7),
            now=3000.0,
        )
    assert caught.value.details is not None
    assert caught.value.details["currentVersion"] == 1
    assert caught.value.details["current"]["name"] == "a.jpg"
    with pytest.raises(errors.Conflict):
        await _put(changes, _content(), expected_version=0)  # "must not exist yet"
    assert len(_entries(meta)) == 1


async def test_moving_onto_a_taken_name_is_a_conflict(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, _content("a.jpg"))
    await _put(changes, _content("b.jpg", chunk=OTHER_CHUNK))
    first = _entries(meta)[0].file_id
    with pytest.raises(errors.Conflict, match="already exists"):
        await changes.write(
            lambda c: c.apply(MoveFile(file_id=first, name="b.jpg"), user_id=USER, device_id="d"), now=1.0
        )


SEEN = Table("notifications", JournalEntry)  # any declared table will do for a subscriber's row


async def test_subscribers_write_in_the_same_transaction_and_a_failing_one_undoes_the_change(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    calls: list[tuple[str, int]] = []

    def outbox(txn: Txn, user_id: str, entry: JournalEntry) -> None:
        calls.append((user_id, entry.seq))
        txn.put(SEEN, f"{user_id}/{entry.seq}".encode(), entry)
        if entry.name == "refused.jpg":
            raise ValueError("subscriber refuses")

    changes.subscribe(outbox)
    await _put(changes, _content("kept.jpg"))
    with pytest.raises(ValueError, match="subscriber refuses"):
        await _put(changes, _content("refused.jpg", chunk=OTHER_CHUNK))
    assert calls == [(USER, 1), (USER, 2)]
    with meta.read() as txn:
        assert [key for key, _ in txn.scan(SEEN)] == [b"user_a/1"]
        assert queries.find_by_path(txn, USER, "/photos", "refused.jpg") is None
        assert refcount(txn, OTHER_CHUNK) == 0  # the references taken in the failed write are undone too
    assert [e.name for e in _entries(meta)] == ["kept.jpg"]


async def test_the_feed_wakes_a_watcher_after_the_commit_and_only_for_its_user(meta: MetaStore) -> None:
    feed = ChangeFeed()
    changes = FileChanges(meta, feed)
    woke: list[str] = []

    async def wait(user_id: str) -> None:
        with feed.watch(user_id) as watch:
            if await watch.wait(60):
                woke.append(user_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, USER)
        nursery.start_soon(wait, "user_b")
        await trio.testing.wait_all_tasks_blocked()
        assert feed.watching() == 2
        await _put(changes, _content())
        await trio.testing.wait_all_tasks_blocked()
        assert woke == [USER]  # user_b's watcher still waits
        nursery.cancel_scope.cancel()
    assert feed.watching() == 0  # nobody waits: the feed forgets the users


async def test_a_change_between_watching_and_waiting_is_not_missed(meta: MetaStore) -> None:
    feed = ChangeFeed()
    changes = FileChanges(meta, feed)
    with feed.watch(USER) as watch:
        await _put(changes, _content())  # lands after the watch began, before the wait
        assert watch.changed
        assert await watch.wait(0)


async def test_a_watcher_times_out_when_nothing_changes(autojump_clock: trio.testing.MockClock) -> None:
    feed = ChangeFeed()
    start = trio.current_time()
    with feed.watch(USER) as watch:
        assert await watch.wait(30) is False
    assert trio.current_time() - start == pytest.approx(30)


async def test_deleting_one_of_two_files_with_the_same_content_keeps_the_other_findable(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, _content("one.jpg"))
    await _put(changes, _content("two.jpg"))
    first, second = (e.file_id for e in _entries(meta))
    await changes.write(lambda c: c.apply(DeleteFile(file_id=first), user_id=USER, device_id="d"), now=5.0)
    with meta.read() as txn:
        found = queries.find_by_content(txn, USER, "blake3", CHUNK.hex())
        assert found is not None and found.id == second  # an upload of it still needs no bytes
