"""The ``lmdb`` backend: chunks as 1 MiB segments in an LMDB environment (``DATA_DIR/chunks``).

Layout, one named database each::

    segments   token (16) + segment number (4, big-endian) -> up to 1 MiB of content
    staging    token -> b""            while a chunk's segments are written but not committed
    index      chunk id (32) -> token, size (8), segment count (4)   written last: visibility
    info       b"stats" -> chunk count (8), bytes (8)

A put writes its segments as they arrive (so memory stays at one piece, whatever the chunk size),
under a random staging token recorded in ``staging``; ``commit`` writes the last segment and the
index entry and drops the staging record in one durable transaction, so a chunk is visible exactly
when it is complete (a chunk of one segment is that one transaction, with nothing staged).
Tokens still in ``staging`` at open belong to writes that never committed and are removed.

All writes run on one dedicated writer thread (LMDB has one writer per environment and a write
transaction must stay on its thread). Queued writes are grouped into one transaction. The
environment syncs data pages on every commit but not the meta page (``metasync=False``: integrity
kept, only the last commit may be lost); commits that must be durable (a chunk made visible,
a delete) are followed by an explicit ``env.sync``, so staging a segment costs one flush, not two.
Reads run in short read transactions on a few worker threads, never across a ``yield``; even a
lookup of one index entry does (a thread hop costs more CPU than the lookup, but an index page
that is not in memory is read from the chunk disk, and a USB disk spinning up must not stop the
event loop for seconds).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import secrets
import struct
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import lmdb
import msgspec
import trio

from vault.plugin_api import (
    BackendOptions,
    BackendStats,
    ChunkBackend,
    ChunkId,
    ChunkWriter,
    LmdbWriter,
    Pending,
    ReadGate,
    options_as,
)
from vault_backends import lmdb_lockfile
from vault_backends._common import BackendClosed, OwnerLock, WorkerThreads

log = logging.getLogger(__name__)

T = TypeVar("T")

SEGMENT_SIZE = 1024 * 1024
TOKEN_SIZE = 16
# Segments joined into one piece per read hop: a thread hand-off per 4 MiB, not per 1 MiB.
READ_SEGMENTS = 4
INITIAL_MAP_SIZE = (1 << 30) if sys.maxsize > 2**32 else (256 << 20)
_BATCH_JOBS = 64
_BATCH_BYTES = 16 * 1024 * 1024
# Segment bytes one put may have queued before it waits for the oldest write to commit.
_STAGED_IN_FLIGHT = 4 * 1024 * 1024

INDEX_ENTRY = struct.Struct(">16sQI")
_STATS = struct.Struct(">QQ")
_STATS_KEY = b"stats"


def segment_key(token: bytes, number: int) -> bytes:
    return token + number.to_bytes(4, "big")


class Databases(NamedTuple):
    index: Any
    segments: Any
    staging: Any
    info: Any


def _add_stats(txn: lmdb.Transaction, dbs: Databases, chunks: int, size: int) -> None:
    raw = txn.get(_STATS_KEY, db=dbs.info)
    count, total = _STATS.unpack(raw) if raw is not None else (0, 0)
    txn.put(_STATS_KEY, _STATS.pack(max(0, count + chunks), max(0, total + size)), db=dbs.info)


def _delete_segments(txn: lmdb.Transaction, dbs: Databases, token: bytes) -> int:
    """Remove every segment staged under ``token``; returns how many there were."""
    cursor = txn.cursor(db=dbs.segments)
    removed = 0
    found = cursor.set_range(token)
    while found and bytes(cursor.key()[:TOKEN_SIZE]) == token:
        found = cursor.delete()
        removed += 1
    return removed


def remove_staged(txn: lmdb.Transaction, dbs: Databases) -> int:
    """Drop the segments of every write that never committed; returns how many writes."""
    tokens = [bytes(key) for key, _ in txn.cursor(db=dbs.staging)]
    for token in tokens:
        _delete_segments(txn, dbs, token)
        txn.delete(token, db=dbs.staging)
    return len(tokens)


class _LmdbWriter(ChunkWriter):
    """Buffers at most one segment; whole segments go to the writer thread as they fill, but a
    first segment that ends a write waits for the next write (or for ``commit``, which puts it in
    the publishing transaction), so a chunk of one segment costs one synced commit, not two.

    A segment write does not wait for its commit: up to ``_STAGED_IN_FLIGHT`` bytes are queued,
    so the store hashes the next piece while LMDB syncs the last one, and the writer thread
    groups the queued pieces (and often the index entry) into one transaction: a sync per few
    MiB, not per piece. ``commit`` waits for all of them.
    """

    def __init__(self, backend: LmdbBackend) -> None:
        self._backend = backend
        self.token = secrets.token_bytes(TOKEN_SIZE)
        self._pending = bytearray()
        # A whole segment that ended the last write: held back until more data comes, because
        # the last segment of a chunk goes into the publishing transaction (a chunk of one
        # segment is then one durable commit, with nothing staged).
        self._held: bytes | bytearray | memoryview | None = None
        self._in_flight: collections.deque[tuple[Pending[None], int]] = collections.deque()
        self._queued = 0
        self._segments = 0
        self._size = 0
        self._staged = False
        self._finished = False

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("write after commit or abort")
        self._size += len(data)
        view = memoryview(data)
        full: list[bytes | bytearray | memoryview] = []
        if self._held is not None:
            if not view:
                return
            full.append(self._held)  # more data came: it was not the last segment
            self._held = None
        if self._pending:
            take = SEGMENT_SIZE - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < SEGMENT_SIZE:
                return
            full.append(self._pending)
            self._pending = bytearray()
        while len(view) >= SEGMENT_SIZE:
            full.append(view[:SEGMENT_SIZE])
            view = view[SEGMENT_SIZE:]
        if not view and len(full) == 1 and not self._segments:
            # This may be the whole chunk: ``commit`` writes it. Only the first segment: a later
            # one held back would stay in memory for as long as a client stalls mid-chunk (fifty
            # stalled uploads held 50 MB so), to save a few bytes of one commit's worth of work.
            self._held = full.pop()
        if full:
            weight = len(full) * SEGMENT_SIZE
            while self._in_flight and self._queued + weight > _STAGED_IN_FLIGHT:
                await self._oldest_done()
            first, token, first_write = self._segments, self.token, not self._staged
            self._staged = True  # even if this fails part-way, abort must look for segments

            def stage(txn: lmdb.Transaction, dbs: Databases) -> None:
                if first_write:
                    txn.put(token, b"", db=dbs.staging)
                for offset, segment in enumerate(full):
                    txn.put(segment_key(token, first + offset), segment, db=dbs.segments)

            self._in_flight.append((self._backend.enqueue(stage, durable=False, weight=weight), weight))
            self._queued += weight
            self._segments += len(full)
        if view:
            self._pending += view

    async def _oldest_done(self) -> None:
        pending, weight = self._in_flight.popleft()
        self._queued -= weight
        await pending.result()

    async def _settle(self) -> None:
        """Wait for every queued segment write; raises the first that failed."""
        error: Exception | None = None
        while self._in_flight:
            try:
                await self._oldest_done()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    async def commit(self, chunk_id: ChunkId) -> None:
        await self._publish(chunk_id, if_absent=False)

    async def commit_if_absent(self, chunk_id: ChunkId) -> bool:
        return await self._publish(chunk_id, if_absent=True)

    async def _publish(self, chunk_id: ChunkId, *, if_absent: bool) -> bool:
        """Publish the staged bytes as ``chunk_id`` unless it is stored already (one lookup in
        the publishing transaction, on the writer thread: no hop of its own). Whether this call
        stored it. Already stored: ``commit`` drops the staged bytes, ``commit_if_absent`` keeps
        them (and this writer open) for the store to commit or abort."""
        if self._finished:
            raise RuntimeError("commit after commit or abort")
        tail = self._held if self._held is not None else self._pending
        token, size, first, staged = self.token, self._size, self._segments, self._staged
        count = first + (1 if tail else 0)

        def publish(txn: lmdb.Transaction, dbs: Databases) -> bool:
            if txn.get(chunk_id, db=dbs.index) is not None:
                if staged and not if_absent:
                    _delete_segments(txn, dbs, token)
                    txn.delete(token, db=dbs.staging)
                return False
            # Segment writes were queued without waiting: publish only what is really there.
            cursor = txn.cursor(db=dbs.segments)
            if not all(cursor.set_key(segment_key(token, number)) for number in range(first)):
                raise OSError("a segment of this chunk was not written")
            if tail:
                txn.put(segment_key(token, first), tail, db=dbs.segments)
            txn.put(chunk_id, INDEX_ENTRY.pack(token, size, count), db=dbs.index)
            if staged:
                txn.delete(token, db=dbs.staging)
            _add_stats(txn, dbs, 1, size)
            return True

        self._finished = True
        published = self._backend.enqueue(publish, durable=True, weight=len(tail))
        try:
            await self._settle()
            stored: bool = await published.result()
        except BaseException:
            # Queued after the publish, so it runs after it; the store will not call abort now.
            await self._discard()
            raise
        if stored or not if_absent:
            self._pending = bytearray()
            self._held = None
        else:
            self._finished = False  # still staged: the store commits (after a repair) or aborts
        return stored

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._pending = bytearray()
        self._held = None
        await self._discard()

    async def _discard(self) -> None:
        with contextlib.suppress(Exception):
            await self._settle()
        if not self._staged:
            return
        token = self.token

        def discard(txn: lmdb.Transaction, dbs: Databases) -> None:
            _delete_segments(txn, dbs, token)
            txn.delete(token, db=dbs.staging)

        # When closed, the staging record stays and the next open removes the segments.
        with contextlib.suppress(BackendClosed):
            await self._backend.enqueue(discard, durable=False, weight=0).result()


class LmdbOptions(BackendOptions):
    """``[storage.options]`` of the lmdb backend."""

    # The initial map size in bytes; the map doubles when a write does not fit.
    map_size: Annotated[int, msgspec.Meta(gt=0)] = INITIAL_MAP_SIZE
    threads: int = 4  # reader threads (at least one is used)
    # Where LMDB's lock file (its reader table) lives; "" keeps it beside the chunks. In memory, a
    # frozen or stalled chunk disk cannot block the node's threads (``lmdb_lockfile``).
    lock_dir: str = "/dev/shm"


class LmdbBackend(ChunkBackend):
    """Chunks in an LMDB environment; options: ``LmdbOptions``."""

    name = "lmdb"
    Options = LmdbOptions

    def __init__(self, path: Path, options: LmdbOptions | Mapping[str, Any] | None = None) -> None:
        self.options = options_as(LmdbOptions, options)
        self.path = Path(path)
        self._map_size = self.options.map_size
        self.threads = WorkerThreads(self.name, max(1, self.options.threads))
        self._owner = OwnerLock(self.path / "owner.lock")
        self._env: lmdb.Environment | None = None
        self._dbs: Databases | None = None
        self._gate = ReadGate()
        # Data pages sync on every commit; the meta page only when a write must be durable.
        self._writer = LmdbWriter(
            label="chunk store",
            gate=self._gate,
            map_size=self._map_size,
            sync_after_durable=True,
            fail=OSError,
            batch_jobs=_BATCH_JOBS,
            batch_weight=_BATCH_BYTES,
        )

    @property
    def blind_put_is_cheap(self) -> bool:
        # The publishing transaction looks the id up anyway (on the writer thread), so asking
        # first would only add a thread hop per chunk (8-13% of the event loop's time for 1 MiB
        # chunks and small files); a chunk already stored costs its staged bytes, written and
        # dropped, and uploads rarely send one (init answers "exists" for a whole file first).
        return True

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self.threads.open = True
        try:
            await self.threads.run(self._open_sync)
        except BaseException:
            self.threads.open = False
            raise

    def _open_sync(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        owner = self._owner.try_acquire()
        try:
            lmdb_lockfile.place_lock_file(self.path, self.options.lock_dir)
        except BaseException:
            self._owner.release()
            raise
        try:
            env = lmdb.open(
                str(self.path),
                map_size=self._map_size,
                max_dbs=8,
                subdir=True,
                sync=True,
                metasync=False,
                readahead=False,
                max_readers=126,
            )
        except BaseException:
            lmdb_lockfile.closed(self.path)
            self._owner.release()
            raise
        try:
            self._env = env
            with env.begin(write=True) as txn:
                names = (b"index", b"segments", b"staging", b"info")
                self._dbs = Databases(*(env.open_db(name, txn=txn, create=True) for name in names))
            if owner:
                dbs = self._dbs
                removed = self._writer.run_now(env, lambda txn: remove_staged(txn, dbs))
                if removed:
                    log.info("removed %d interrupted chunk writes", removed)
            else:
                log.info("chunk store %s is in use by another process; leaving its staged writes", self.path)
        except BaseException:
            self._env = self._dbs = None
            env.close()
            lmdb_lockfile.closed(self.path)
            self._owner.release()
            raise
        self._writer.start(env)

    async def close(self) -> None:
        await self.threads.drain()
        await trio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        self._writer.stop()
        if self._env is not None:
            # Staged writes still open stay in ``staging``, as after a crash: the next open removes them.
            self._env.close()
            self._env = None
            lmdb_lockfile.closed(self.path)
        self._owner.release()

    @property
    def env(self) -> lmdb.Environment:
        if self._env is None:
            raise BackendClosed("the lmdb backend is not open")
        return self._env

    @property
    def dbs(self) -> Databases:
        if self._dbs is None:
            raise BackendClosed("the lmdb backend is not open")
        return self._dbs

    # -- the writer thread ---------------------------------------------------------------------

    def enqueue(self, fn: Callable[[lmdb.Transaction, Databases], T], *, durable: bool, weight: int) -> Pending[T]:
        """Queue ``fn`` for a write transaction on the writer thread (FIFO); await its result."""
        if not self._writer.running:
            raise BackendClosed("the lmdb backend is not open")
        dbs = self.dbs
        pending: Pending[T] = self._writer.enqueue(lambda txn: fn(txn, dbs), durable=durable, weight=weight)
        return pending

    async def submit(self, fn: Callable[[lmdb.Transaction, Databases], T], *, durable: bool, weight: int) -> T:
        """Run ``fn`` in a write transaction on the writer thread; with ``durable``, after sync."""
        return await self.enqueue(fn, durable=durable, weight=weight).result()

    # -- reads ---------------------------------------------------------------------------------

    def _read(self, fn: Callable[[lmdb.Transaction, Databases], T]) -> T:
        """Run ``fn`` in a short read transaction; adopts a map grown by another process."""
        env, dbs = self.env, self.dbs
        for _attempt in range(3):
            with self._gate.shared():
                try:
                    txn = env.begin(write=False, buffers=True)
                except lmdb.MapResizedError:
                    txn = None
                if txn is not None:
                    try:
                        return fn(txn, dbs)
                    finally:
                        txn.abort()
            with self._gate.exclusive():
                env.set_mapsize(0)
        raise OSError("chunk store map keeps changing size")

    async def begin_put(self) -> ChunkWriter:
        if not self._writer.running:
            raise BackendClosed("the lmdb backend is not open")
        return _LmdbWriter(self)

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        first = await self.threads.run(self._read, lambda txn, dbs: _read_first(txn, dbs, chunk_id))
        if first is None:
            raise KeyError(chunk_id.hex())
        token, count, head = first
        del first  # a local reference would pin the first piece for the whole stream
        if head:
            yield head
        del head
        for start in range(READ_SEGMENTS, count, READ_SEGMENTS):
            stop = min(count, start + READ_SEGMENTS)
            piece = await self.threads.run(self._read_segments, token, start, stop)
            if piece is None:  # deleted while we were streaming it
                raise KeyError(chunk_id.hex())
            yield piece

    async def read_range(self, chunk_id: ChunkId, start: int, length: int) -> bytes:
        piece = await self.threads.run(self._read, lambda txn, dbs: _read_range(txn, dbs, chunk_id, start, length))
        if piece is None:
            raise KeyError(chunk_id.hex())
        return piece

    def _read_segments(self, token: bytes, start: int, stop: int) -> bytes | None:
        return self._read(lambda txn, dbs: _join_segments(txn, dbs, token, start, stop))

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        wanted = list(chunk_ids)
        if not wanted:
            return set()

        def present(txn: lmdb.Transaction, dbs: Databases) -> set[ChunkId]:
            return {c for c in wanted if txn.get(c, db=dbs.index) is not None}

        return await self.threads.run(self._read, present)

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        unique = list(dict.fromkeys(chunk_ids))
        if not unique:
            return 0

        def delete(txn: lmdb.Transaction, dbs: Databases) -> int:
            count = size = 0
            for chunk_id in unique:
                raw = txn.get(chunk_id, db=dbs.index)
                if raw is None:
                    continue
                token, length, segments = INDEX_ENTRY.unpack(raw)
                for number in range(segments):
                    txn.delete(segment_key(token, number), db=dbs.segments)
                txn.delete(chunk_id, db=dbs.index)
                count += 1
                size += length
            _add_stats(txn, dbs, -count, -size)
            return count

        return await self.submit(delete, durable=True, weight=0)

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        if limit <= 0:
            return []

        def listing(txn: lmdb.Transaction, dbs: Databases) -> list[ChunkId]:
            cursor = txn.cursor(db=dbs.index)
            if after is None:
                found = cursor.first()
            else:
                found = cursor.set_range(after)
                if found and bytes(cursor.key()) == after:
                    found = cursor.next()
            ids: list[ChunkId] = []
            while found and len(ids) < limit:
                ids.append(ChunkId(bytes(cursor.key())))
                found = cursor.next()
            return ids

        return await self.threads.run(self._read, listing)

    async def stat(self, chunk_id: ChunkId) -> int | None:
        def size(txn: lmdb.Transaction, dbs: Databases) -> int | None:
            raw = txn.get(chunk_id, db=dbs.index)
            return None if raw is None else int(INDEX_ENTRY.unpack(raw)[1])

        return await self.threads.run(self._read, size)

    async def stats(self) -> BackendStats:
        def read_stats(txn: lmdb.Transaction, dbs: Databases) -> BackendStats:
            raw = txn.get(_STATS_KEY, db=dbs.info)
            count, total = _STATS.unpack(raw) if raw is not None else (0, 0)
            return BackendStats(chunks=count, bytes=total)

        return await self.threads.run(self._read, read_stats)

    async def staged_writes(self) -> int:
        """How many writes are staged but neither committed nor aborted (diagnostics, tests)."""
        return await self.threads.run(self._read, lambda txn, dbs: int(txn.stat(dbs.staging)["entries"]))


def _read_first(txn: lmdb.Transaction, dbs: Databases, chunk_id: ChunkId) -> tuple[bytes, int, bytes] | None:
    raw = txn.get(chunk_id, db=dbs.index)
    if raw is None:
        return None
    token, _size, count = INDEX_ENTRY.unpack(raw)
    piece = _join_segments(txn, dbs, token, 0, min(count, READ_SEGMENTS))
    return None if piece is None else (token, count, piece)


def _read_range(txn: lmdb.Transaction, dbs: Databases, chunk_id: ChunkId, start: int, length: int) -> bytes | None:
    """``length`` bytes from ``start``, copied straight out of the map (the transaction has
    ``buffers=True``: only the wanted bytes are copied, not the whole segments)."""
    raw = txn.get(chunk_id, db=dbs.index)
    if raw is None:
        return None
    token, size, count = INDEX_ENTRY.unpack(raw)
    stop = min(size, start + length)
    parts: list[bytes] = []
    position = start
    while position < stop:
        number = position // SEGMENT_SIZE
        if number >= count:
            break
        segment = txn.get(segment_key(token, number), db=dbs.segments)
        if segment is None:
            return None
        offset = position - number * SEGMENT_SIZE
        take = min(len(segment) - offset, stop - position)
        if take <= 0:
            break
        parts.append(bytes(memoryview(segment)[offset : offset + take]))
        position += take
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _join_segments(txn: lmdb.Transaction, dbs: Databases, token: bytes, start: int, stop: int) -> bytes | None:
    """Segments ``start..stop`` as one bytes object: one copy straight out of the map."""
    parts: list[bytes | memoryview] = []
    for number in range(start, stop):
        part = txn.get(segment_key(token, number), db=dbs.segments)
        if part is None:
            return None
        parts.append(part)
    return b"".join(parts)
