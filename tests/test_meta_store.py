"""The metadata store: durable typed writes, isolation of failing writes, growth under load."""

from __future__ import annotations

import threading
from pathlib import Path

import lmdb
import msgspec
import pytest
import trio
import trio.lowlevel

from vault.meta import MetaStore, Table
from vault.meta.store import MAX_KEY_SIZE, META


class Note(msgspec.Struct):
    text: str


NOTES = Table("users", Note)  # any declared table will do for the store's own behaviour


async def test_a_failing_write_leaves_its_neighbours_committed(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta")
    await store.open()

    def bad(txn: object) -> None:
        store_txn = txn
        store_txn.put(NOTES, b"bad", Note("never"))  # type: ignore[attr-defined]
        raise ValueError("refused")

    async def good(i: int) -> None:
        await store.write(lambda txn: txn.put(NOTES, b"k%03d" % i, Note(str(i))))

    async def refused() -> None:
        with pytest.raises(ValueError, match="refused"):
            await store.write(bad)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(good, i)
        nursery.start_soon(refused)
    with store.read() as txn:
        assert txn.get(NOTES, b"bad") is None
        assert txn.count(NOTES) == 20
    await store.close()
    reopened = MetaStore(tmp_path / "meta")
    await reopened.open()
    with reopened.read() as txn:
        assert txn.get(NOTES, b"k007") == Note("7")
    await reopened.close()


async def test_map_grows_while_readers_keep_reading(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta", map_size=1 << 20)
    await store.open()
    done = trio.Event()
    reads = 0

    async def reader() -> None:
        nonlocal reads
        while not done.is_set():
            with store.read() as txn:
                assert all(note.text == "x" * 2000 for _, note in txn.scan(NOTES, b"n"))
            reads += 1
            await trio.lowlevel.checkpoint()

    async def writer(i: int) -> None:
        await store.write(lambda txn: txn.put(NOTES, b"n%05d" % i, Note("x" * 2000)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        async with trio.open_nursery() as writers:
            for i in range(2000):
                writers.start_soon(writer, i)
        done.set()
    with store.read() as txn:
        assert txn.count(NOTES, b"n") == 2000
    assert reads > 0
    await store.close()


async def test_the_event_loop_keeps_running_while_the_map_grows_behind_a_long_read(tmp_path: Path) -> None:
    """A scan in a worker thread holds off a map resize; a snapshot taken on the event loop
    meanwhile must wait in a thread, not block the loop (other tasks keep running)."""
    store = MetaStore(tmp_path / "meta", map_size=1 << 20)
    await store.open()
    release = threading.Event()
    scanning = threading.Event()

    def long_scan() -> None:
        with store.read():
            scanning.set()
            release.wait()

    ticks = 0
    snapshot_taken = trio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not snapshot_taken.is_set():
            ticks += 1
            await trio.sleep(0.001)

    async def grow() -> None:
        # About 2 MiB of records into a 1 MiB map: the writer must grow it, waiting for the scan.
        await store.write(lambda txn: [txn.put(NOTES, b"g%04d" % i, Note("y" * 2000)) for i in range(1000)])

    async def snapshot() -> None:
        async with store.snapshot() as txn:
            assert txn.count(NOTES, b"g") in (0, 1000)  # before or after the commit, never half
        snapshot_taken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, long_scan)
        await trio.to_thread.run_sync(scanning.wait)
        nursery.start_soon(grow)
        # The state to wait for lives in other threads: polling is the only way to see it.
        while not store._gate._resizing:  # noqa: ASYNC110 - the writer now waits for the scan to end
            await trio.sleep(0.001)
        nursery.start_soon(snapshot)
        nursery.start_soon(ticker)
        before = ticks
        while ticks < before + 5:  # noqa: ASYNC110
            await trio.sleep(0.001)  # the loop is alive while the snapshot waits
        assert not snapshot_taken.is_set()
        release.set()
    assert snapshot_taken.is_set()
    await store.close()


async def test_close_waits_for_a_read_still_open_in_a_worker_thread(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta")
    await store.open()
    await store.write(lambda txn: txn.put(NOTES, b"k", Note("kept")))
    reading = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow_reader() -> None:
        with store.read() as txn:
            reading.set()
            release.wait()
            note = txn.get(NOTES, b"k")
            order.append(f"read {note.text if note else None}")

    async def close() -> None:
        await store.close()
        order.append("closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, slow_reader)
        await trio.to_thread.run_sync(reading.wait)
        nursery.start_soon(close)
        while not store._gate._resizing:  # noqa: ASYNC110 - close stopped the writer, waits for readers
            await trio.sleep(0.001)
        assert order == []
        release.set()
    assert order == ["read kept", "closed"]


async def test_a_finished_read_gives_its_reader_slot_back_even_while_its_txn_is_still_referenced(
    tmp_path: Path,
) -> None:
    """py-lmdb frees a reader slot only with the transaction object: callers keep their ``txn``
    variable after the block (a thousand long polls did), so the store lets go of it itself."""
    store = MetaStore(tmp_path / "meta")
    await store.open()
    kept = []
    for _ in range(5000):  # more than the environment has reader slots
        async with store.snapshot() as txn:
            kept.append(txn)
    with store.read() as txn:
        assert txn.count(NOTES) == 0  # a reader slot was still free
    await store.close()


async def test_keys_lmdb_cannot_hold_are_absent_not_errors(tmp_path: Path) -> None:
    """Ids from clients reach lookups as keys: an empty one or one past LMDB's key size raised
    BadValsizeError (``POST /upload/progress`` with ``uploadId: ""`` answered 500)."""
    probe = lmdb.open(str(tmp_path / "probe"))
    assert probe.max_key_size() == MAX_KEY_SIZE
    probe.close()
    store = MetaStore(tmp_path / "meta")
    await store.open()
    try:
        await store.write(lambda txn: txn.put(NOTES, b"k" * MAX_KEY_SIZE, Note("longest")))
        with store.read() as txn:
            too_long = b"k" * (MAX_KEY_SIZE + 1)
            for key in (b"", too_long):
                assert txn.get(NOTES, key) is None
                assert txn.get_bytes(META, key) is None
            assert list(txn.scan(NOTES, too_long)) == []
            assert list(txn.keys(NOTES, too_long)) == []
            assert [k for k, _ in txn.scan(NOTES, b"k", start=too_long)] == []  # all keys sort below it
            assert [k for k, _ in txn.scan(NOTES, b"k", start=b"k" * 600)] == []
            assert txn.get(NOTES, b"k" * MAX_KEY_SIZE) == Note("longest")
        assert not await store.write(lambda txn: txn.delete(NOTES, b""))
    finally:
        await store.close()


async def test_a_reverse_scan_descends_from_start_within_its_prefix(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta")
    await store.open()
    try:
        keys = [b"a/1", b"a/2", b"a/3", b"a/5", b"b/1", b"`z"]

        def fill(txn: object) -> None:
            for key in keys:
                txn.put(NOTES, key, Note(key.decode()))  # type: ignore[attr-defined]

        await store.write(fill)
        with store.read() as txn:

            def down(start: bytes | None) -> list[bytes]:
                return [k for k, _ in txn.scan(NOTES, b"a/", start=start, reverse=True)]

            assert down(None) == [b"a/5", b"a/3", b"a/2", b"a/1"]
            assert down(b"a/3") == [b"a/3", b"a/2", b"a/1"]  # inclusive, as an ascending scan is
            assert down(b"a/4") == [b"a/3", b"a/2", b"a/1"]  # a start between keys
            assert down(b"b/0") == [b"a/5", b"a/3", b"a/2", b"a/1"]  # past the prefix: all of it
            assert down(b"a/") == []  # below every key of the prefix
            assert down(b"a") == []  # below the prefix itself
            assert down(b"a/3" + b"x" * 600) == [b"a/3", b"a/2", b"a/1"]  # too long to seek to
            assert [k for k, _ in txn.scan(NOTES, b"a/", start=b"a/3")] == [b"a/3", b"a/5"]
    finally:
        await store.close()
