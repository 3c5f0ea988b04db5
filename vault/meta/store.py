"""A small typed API over LMDB named sub-databases.

Every table is reached through a handle declared once (``Table`` for msgpack records of one type,
``RawTable`` for bytes), and a handle can only name a table declared in ``vault.meta.schema``.

Reads on the event loop (``snapshot``) run inline: memory-mapped lookups of small records cost
microseconds, less than a thread hand-off. They never wait on a thread lock: while the map is
being grown, the wait happens in a worker thread. Scans and other long reads run in worker threads
(``read``). Writes go through ``vault.lmdb_writer``: one writer thread groups queued writes into
one durable commit, each in its own nested transaction so one failing write does not undo its
neighbours. A write returns only after LMDB synced it. ``close`` waits for reads still open.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import lmdb
import msgspec
import trio

from vault.lmdb_gate import ReadGate
from vault.lmdb_writer import LmdbWriter
from vault.meta.schema import SCHEMA_VERSION, TABLE_NAMES

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

_INITIAL_MAP_SIZE = (1 << 30) if sys.maxsize > 2**32 else (256 << 20)
# LMDB's longest key (py-lmdb's build; ``Environment.max_key_size()``). Ids reach lookups from
# clients (paths, bodies, cursors): an empty or longer key is in no table, and LMDB would raise
# BadValsizeError (a 500) for it, so lookups answer "absent" and scans seek where such a key would be.
MAX_KEY_SIZE = 511


def _storable(key: bytes) -> bool:
    return 0 < len(key) <= MAX_KEY_SIZE


class MetaStoreError(Exception):
    """The metadata store cannot be opened or is of a newer schema."""


# version -> the step that upgrades a database from that version to the next, inside the opening
# write transaction. The steps know the records of the layers above, so they are handed in
# (``vault.meta_upgrades.UPGRADES``) rather than imported here.
Upgrades = Mapping[int, Callable[["Txn"], None]]


def _declared(name: str) -> str:
    if name not in TABLE_NAMES:
        raise ValueError(f"table {name!r} is not declared in vault.meta.schema")
    return name


class RawTable:
    """A named sub-database of raw byte values (indexes, counters)."""

    def __init__(self, name: str) -> None:
        self.name = _declared(name)

    def __repr__(self) -> str:
        return f"RawTable({self.name!r})"


class Table(Generic[R]):
    """A named sub-database whose values are msgpack-encoded records of one type."""

    def __init__(self, name: str, record: type[R]) -> None:
        self.name = _declared(name)
        self.record = record
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(record)

    def encode(self, value: R) -> bytes:
        return self._encoder.encode(value)

    def decode(self, raw: bytes | memoryview) -> R:
        return self._decoder.decode(raw)


class Txn:
    """A transaction over the store's tables (read-only unless created by ``MetaStore.write``)."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self.raw = txn
        self._dbs = dbs
        # Names of the tables this transaction wrote: commit listeners (``MetaStore.on_commit``)
        # learn what changed without every writer having to know who cares (the push outbox).
        self.written: set[str] = set()

    def get(self, table: Table[R], key: bytes) -> R | None:
        if not _storable(key):
            return None
        raw = self.raw.get(key, db=self._dbs[table.name])
        return None if raw is None else table.decode(raw)

    def put(self, table: Table[R], key: bytes, value: R) -> None:
        self.written.add(table.name)
        self.raw.put(key, table.encode(value), db=self._dbs[table.name])

    def delete(self, table: Table[Any], key: bytes) -> bool:
        return _storable(key) and bool(self.raw.delete(key, db=self._dbs[table.name]))

    def get_bytes(self, table: RawTable, key: bytes) -> bytes | None:
        if not _storable(key):
            return None
        value = self.raw.get(key, db=self._dbs[table.name])
        return None if value is None else bytes(value)

    def put_bytes(self, table: RawTable, key: bytes, value: bytes) -> None:
        self.written.add(table.name)
        self.raw.put(key, value, db=self._dbs[table.name])

    def delete_key(self, table: RawTable | Table[Any], key: bytes) -> bool:
        return _storable(key) and bool(self.raw.delete(key, db=self._dbs[table.name]))

    def scan_bytes(
        self, table: RawTable | Table[Any], prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Raw pairs whose key starts with ``prefix``, ascending from ``start``, or with
        ``reverse`` descending from ``start`` (both inclusive: the keys ``>= start``, or ``<=``)."""
        if len(prefix) > MAX_KEY_SIZE:
            return
        cursor = self.raw.cursor(db=self._dbs[table.name])
        if reverse:
            # Seek just past the last key wanted: the prefix's end, or the key right after start.
            upper = _prefix_upper_bound(prefix)
            if start is not None and len(start) < MAX_KEY_SIZE and (upper is None or start + b"\x00" < upper):
                upper = start + b"\x00"
            found = cursor.set_range(upper) if upper is not None else cursor.last()
            if found and upper is not None:
                found = cursor.prev()
            elif upper is not None:
                found = cursor.last()
            while found:
                key = bytes(cursor.key())
                if not key.startswith(prefix):
                    return
                if start is None or key <= start:  # (above it only when start was too long to seek to)
                    yield key, bytes(cursor.value())
                found = cursor.prev()
            return
        first = max(prefix, start or b"")
        if not cursor.set_range(first[:MAX_KEY_SIZE]):
            return
        for raw_key, value in cursor:
            key = bytes(raw_key)
            if not key.startswith(prefix):
                return
            if key >= first:  # (below it only when ``first`` was too long to seek to)
                yield key, bytes(value)

    def scan(
        self, table: Table[R], prefix: bytes = b"", *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, R]]:
        for key, raw in self.scan_bytes(table, prefix, start=start, reverse=reverse):
            yield key, table.decode(raw)

    def keys(self, table: RawTable | Table[Any], prefix: bytes = b"", *, start: bytes | None = None) -> Iterator[bytes]:
        """Keys with ``prefix`` without reading their values (LMDB cursors skip them cheaply)."""
        if len(prefix) > MAX_KEY_SIZE:
            return
        cursor = self.raw.cursor(db=self._dbs[table.name])
        first = max(prefix, start or b"")
        if not cursor.set_range(first[:MAX_KEY_SIZE]):
            return
        for raw_key in cursor.iternext(keys=True, values=False):
            key = bytes(raw_key)
            if not key.startswith(prefix):
                return
            if key >= first:
                yield key

    def count(self, table: RawTable | Table[Any], prefix: bytes = b"") -> int:
        return sum(1 for _ in self.keys(table, prefix))


META = RawTable("meta")


def _prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key with ``prefix`` (None: no such key)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class MetaStore:
    """The node's metadata environment (``DATA_DIR/meta``)."""

    def __init__(self, path: Path, *, map_size: int = _INITIAL_MAP_SIZE, upgrades: Upgrades | None = None) -> None:
        self.path = Path(path)
        self._upgrades: Upgrades = upgrades or {}
        self._map_size = map_size
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        # LMDB forbids live read transactions in this process while the map grows.
        self._gate = ReadGate()
        # Commits sync data and meta pages themselves (metasync=True): no extra sync needed.
        self._writer = LmdbWriter(
            label="metadata store", gate=self._gate, map_size=map_size, sync_after_durable=False, fail=MetaStoreError
        )
        self._commit_listeners: list[Callable[[set[str]], None]] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Open (creating if needed), migrate, and start the writer thread. Blocking."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        env = lmdb.open(
            str(self.path),
            map_size=self._map_size,
            max_dbs=len(TABLE_NAMES) + 4,
            subdir=True,
            sync=True,
            metasync=True,
            readahead=False,
            # Readers are short, but many at once: every request's lookups and long polls' checks.
            max_readers=4096,
        )
        try:
            with env.begin(write=True) as txn:
                for name in TABLE_NAMES:
                    self._dbs[name] = env.open_db(name.encode(), txn=txn, create=True)
                self._migrate(Txn(txn, self._dbs))
        except BaseException:
            env.close()
            raise
        self._env = env
        self._writer.start(env)  # adopts a map grown earlier, or by another process

    async def open(self) -> None:
        await trio.to_thread.run_sync(self.open_sync)

    def close_sync(self) -> None:
        """Finish queued writes, wait for every open read (a scan in a worker thread), close."""
        self._writer.stop()
        with self._gate.exclusive():
            if self._env is not None:
                self._env.close()
                self._env = None

    async def close(self) -> None:
        await trio.to_thread.run_sync(self.close_sync)

    def _migrate(self, txn: Txn) -> None:
        raw = txn.get_bytes(META, b"schema_version")
        version = int(raw) if raw else 0
        if version > SCHEMA_VERSION:
            raise MetaStoreError(f"metadata schema {version} is newer than this node understands ({SCHEMA_VERSION})")
        if version == 0:
            version = SCHEMA_VERSION  # a new database starts at the current layout
        while version < SCHEMA_VERSION:
            step = self._upgrades.get(version)
            if step is None:
                raise MetaStoreError(f"metadata schema {version} needs upgrading; open it with the node's upgrades")
            log.info("upgrading metadata schema %d -> %d", version, version + 1)
            step(txn)
            version += 1
        txn.put_bytes(META, b"schema_version", str(version).encode())

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None:
            raise MetaStoreError("metadata store is not open")
        return self._env

    # -- reads ---------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read-only snapshot for worker threads and the command line: may block while the map
        grows. Never await inside it (it pins pages, and holds off a map resize, while open)."""
        with self._gate.shared(), self._begin_read() as txn:
            yield txn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Txn]:
        """A read-only snapshot for the event loop: short lookups, no awaits inside.

        Taking it never blocks the loop: when the writer is growing the map (which waits for every
        reader, a long scan in a worker thread included), the wait moves to a worker thread."""
        if not self._gate.try_shared():
            await trio.to_thread.run_sync(self._gate.reacquire_shared)
        try:
            with self._begin_read() as txn:
                yield txn
        finally:
            self._gate.release_shared()

    @contextmanager
    def _begin_read(self) -> Iterator[Txn]:
        """A read transaction; the caller holds a shared gate."""
        try:
            txn = self.env.begin(write=False)
        except lmdb.MapResizedError:
            # Another process grew the map: adopt its size (no reader may be live for that).
            self._adopt_grown_map()
            txn = self.env.begin(write=False)
        wrapper = Txn(txn, self._dbs)
        try:
            yield wrapper
        finally:
            txn.abort()
            # py-lmdb gives the reader slot back only when the transaction object is freed, not
            # at abort; a caller's ``txn`` variable outlives the block (across awaits, even), so
            # let go of it here: with a thousand long polls the slots ran out (MDB_READERS_FULL).
            wrapper.raw = None  # type: ignore[assignment]
            del txn

    def _adopt_grown_map(self) -> None:
        # Called holding a shared gate: leave it for the exclusive one, then come back.
        self._gate.release_shared()
        try:
            with self._gate.exclusive():
                self.env.set_mapsize(0)
        finally:
            self._gate.reacquire_shared()

    def schema_version(self) -> int:
        with self.read() as txn:
            raw = txn.get_bytes(META, b"schema_version")
        return int(raw) if raw else 0

    # -- writes --------------------------------------------------------------------------------

    async def write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a write transaction on the writer thread; returns once durable.

        ``fn`` must be quick and must not await; an exception it raises aborts only its own
        changes and is re-raised here. The wait is shielded from cancellation: the write may
        already be committed, and the caller must not believe otherwise.
        """
        dbs = self._dbs
        written: set[str] = set()

        def run(txn: lmdb.Transaction) -> T:
            handle = Txn(txn, dbs)
            value = fn(handle)
            written.clear()  # a retried attempt (the map grew) reports only its own writes
            written.update(handle.written)
            return value

        result: T = await self._writer.submit(run)
        if written:
            for listener in self._commit_listeners:
                listener(written)
        return result

    def on_commit(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener(table_names)`` on the event loop after each durable ``write`` that put
        into those tables (not ``write_sync``: the command line has no one to wake)."""
        self._commit_listeners.append(listener)

    def write_sync(self, fn: Callable[[Txn], T]) -> T:
        """Blocking variant for the command line and worker threads."""
        dbs = self._dbs
        result: T = self._writer.submit_blocking(lambda txn: fn(Txn(txn, dbs)))
        return result
