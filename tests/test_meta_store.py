"""The metadata store: durable typed writes, isolation of failing writes, growth under load."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import trio
import trio.lowlevel

from vault.meta import MetaStore, Table


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
