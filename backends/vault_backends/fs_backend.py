"""The ``fs`` backend: one file per chunk in fan-out directories (``ab/cd/abcd…``).

A chunk is staged in ``tmp/`` on the same filesystem, written, fsynced, renamed into place, and
its directory fsynced; so a name under the fan-out tree always holds a complete, durable chunk.
Whatever a crash leaves in ``tmp/`` is removed at the next open. Every blocking call runs on a
few worker threads, never on the event loop; reads open, read and close a file per piece so no
descriptor outlives a paused download.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import string
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import trio

from vault.plugin_api import (
    DIGEST_SIZE,
    BackendOptions,
    BackendStats,
    ChunkBackend,
    ChunkId,
    ChunkWriter,
    options_as,
)
from vault_backends._common import BackendClosed, OwnerLock, WorkerThreads, fsync_dir, start_writeback

log = logging.getLogger(__name__)

READ_PIECE = 4 * 1024 * 1024
_HEX = frozenset(string.hexdigits.lower())
_TMP = "tmp"
_TMP_SUFFIX = ".part"


def _is_chunk_name(name: str) -> bool:
    return len(name) == 2 * DIGEST_SIZE and _HEX.issuperset(name)


def _is_fanout_name(name: str) -> bool:
    return len(name) == 2 and _HEX.issuperset(name)


class _FsWriter(ChunkWriter):
    """A temp file in ``tmp/``, created on the first write so an empty put costs one hop less."""

    def __init__(self, backend: FsBackend) -> None:
        self._backend = backend
        self.tmp = backend.path / _TMP / f"{secrets.token_hex(16)}{_TMP_SUFFIX}"
        self.fd: int | None = None
        self.size = 0
        self.finished = False

    async def write(self, data: bytes) -> None:
        if self.finished:
            raise RuntimeError("write after commit or abort")
        await self._backend.threads.run(self._write_sync, data)
        self.size += len(data)

    def _write_sync(self, data: bytes) -> None:
        if self.fd is None:
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        start_writeback(self.fd, self.size, len(data))

    async def commit(self, chunk_id: ChunkId) -> None:
        if self.finished:
            raise RuntimeError("commit after commit or abort")
        self.finished = True
        try:
            await self._backend.commit_staged(self, chunk_id)
        finally:
            # Only now: a close() racing this commit must still find the descriptor to close.
            self._backend.writers.discard(self)

    async def abort(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            # When closed, the temp file stays and the next open removes it.
            with contextlib.suppress(BackendClosed):
                await self._backend.threads.run(self.discard_sync)
        finally:
            self._backend.writers.discard(self)

    def close_sync(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard_sync(self) -> None:
        self.close_sync()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class FsOptions(BackendOptions):
    """``[storage.options]`` of the fs backend."""

    threads: int = 4  # worker threads for file I/O (at least one is used)


class FsBackend(ChunkBackend):
    """Chunks as files under ``path``; options: ``FsOptions``."""

    name = "fs"
    Options = FsOptions

    def __init__(self, path: Path, options: FsOptions | Mapping[str, Any] | None = None) -> None:
        self.options = options_as(FsOptions, options)
        self.path = Path(path)
        self.threads = WorkerThreads(self.name, max(1, self.options.threads))
        self.writers: set[_FsWriter] = set()
        self._owner = OwnerLock(self.path / ".owner.lock")
        self._chunks = 0
        self._bytes = 0
        # Commits of one id are serialised so that "exists? else rename" is atomic in this process
        # (the only writer: gc refuses to run beside a node) and the counts stay exact.
        self._committing: dict[ChunkId, trio.Lock] = {}

    def chunk_path(self, chunk_id: ChunkId) -> Path:
        """Where a chunk lives: ``path/ab/cd/abcd…`` (lowercase hex, so name order is id order)."""
        name = chunk_id.hex()
        return self.path / name[:2] / name[2:4] / name

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        self.threads.open = True
        try:
            self._chunks, self._bytes = await self.threads.run(self._open_sync)
        except BaseException:
            self.threads.open = False
            raise

    def _open_sync(self) -> tuple[int, int]:
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        if created:
            fsync_dir(self.path.parent)
        tmp = self.path / _TMP
        tmp.mkdir(exist_ok=True)
        if self._owner.try_acquire():
            for entry in os.scandir(tmp):
                # A temp file is either a crashed write or an abandoned one: never a chunk.
                log.info("removing interrupted chunk write %s", entry.name)
                os.unlink(entry.path)
        else:
            log.info("chunk store %s is in use by another process; leaving its staged writes", self.path)
        chunks = size = 0
        for first in os.scandir(self.path):
            if not (_is_fanout_name(first.name) and first.is_dir()):
                continue
            for second in os.scandir(first.path):
                if not (_is_fanout_name(second.name) and second.is_dir()):
                    continue
                for entry in os.scandir(second.path):
                    if _is_chunk_name(entry.name):
                        chunks += 1
                        size += entry.stat().st_size
        return chunks, size

    async def close(self) -> None:
        await self.threads.drain()
        # Writers neither committed nor aborted stay in tmp/ as a crash would leave them.
        for writer in list(self.writers):
            writer.close_sync()
        self.writers.clear()
        self._owner.release()

    # -- writes --------------------------------------------------------------------------------

    async def begin_put(self) -> ChunkWriter:
        if not self.threads.open:
            raise BackendClosed("the fs backend is not open")
        writer = _FsWriter(self)
        self.writers.add(writer)
        return writer

    async def commit_staged(self, writer: _FsWriter, chunk_id: ChunkId) -> None:
        lock = self._committing.setdefault(chunk_id, trio.Lock())
        try:
            async with lock:
                created = await self.threads.run(self._commit_sync, writer, self.chunk_path(chunk_id))
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._committing.pop(chunk_id, None)
        if created:
            self._chunks += 1
            self._bytes += writer.size

    def _commit_sync(self, writer: _FsWriter, final: Path) -> bool:
        if final.exists():  # stored meanwhile by another put: no need to flush our copy
            writer.discard_sync()
            return False
        try:
            if writer.fd is None:
                writer.fd = os.open(writer.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.fsync(writer.fd)
            writer.close_sync()
            created = self._make_dirs(final.parent)
            os.rename(writer.tmp, final)
        except BaseException:
            writer.discard_sync()
            raise
        fsync_dir(final.parent)
        # Parents of new fan-out directories last: on a journaling filesystem the fsync above
        # already committed their new entries, so these cost a flush, not another commit.
        for directory in created:
            fsync_dir(directory.parent)
        return True

    def _make_dirs(self, directory: Path) -> list[Path]:
        """Create the fan-out directories of a chunk; returns those that are new, deepest first."""
        if directory.is_dir():
            return []
        created = []
        for level in (directory.parent, directory):
            try:
                level.mkdir()
            except FileExistsError:
                continue
            created.append(level)
        return created[::-1]

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        unique = list(dict.fromkeys(chunk_ids))
        if not unique:
            return 0
        count, size = await self.threads.run(self._delete_sync, [self.chunk_path(c) for c in unique])
        self._chunks -= count
        self._bytes -= size
        return count

    def _delete_sync(self, paths: list[Path]) -> tuple[int, int]:
        count = size = 0
        touched: set[Path] = set()
        for path in paths:
            try:
                length = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            count += 1
            size += length
            touched.add(path.parent)
        for directory in touched:
            fsync_dir(directory)
        return count, size

    # -- reads ---------------------------------------------------------------------------------

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        path = self.chunk_path(chunk_id)
        offset = 0
        while True:
            piece = await self.threads.run(_read_piece, path, offset)
            if piece is None:
                raise KeyError(chunk_id.hex())
            if piece:
                yield piece
            if len(piece) < READ_PIECE:
                return
            offset += len(piece)

    async def read_range(self, chunk_id: ChunkId, start: int, length: int) -> bytes:
        piece = await self.threads.run(_read_piece, self.chunk_path(chunk_id), start, length)
        if piece is None:
            raise KeyError(chunk_id.hex())
        return piece

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        wanted = list(chunk_ids)
        if not wanted:
            return set()
        paths = [(c, self.chunk_path(c)) for c in wanted]
        return await self.threads.run(lambda: {c for c, p in paths if p.is_file()})

    async def stat(self, chunk_id: ChunkId) -> int | None:
        return await self.threads.run(_size_or_none, self.chunk_path(chunk_id))

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        if limit <= 0:
            return []
        return await self.threads.run(self._list_sync, after.hex() if after is not None else "", limit)

    def _list_sync(self, after: str, limit: int) -> list[ChunkId]:
        found: list[ChunkId] = []
        first_after, second_after = after[:2], after[2:4]
        for first in sorted(n for n in os.listdir(self.path) if _is_fanout_name(n) and n >= first_after):
            level = self.path / first
            seconds = sorted(n for n in os.listdir(level) if _is_fanout_name(n))
            if first == first_after:
                seconds = [n for n in seconds if n >= second_after]
            for second in seconds:
                names = sorted(n for n in os.listdir(level / second) if _is_chunk_name(n) and n > after)
                found.extend(ChunkId(bytes.fromhex(n)) for n in names[: limit - len(found)])
                if len(found) >= limit:
                    return found
        return found

    async def stats(self) -> BackendStats:
        return BackendStats(chunks=self._chunks, bytes=self._bytes)

    async def check(self) -> None:
        await self.threads.run(os.listdir, self.path)


def _read_piece(path: Path, offset: int, length: int = READ_PIECE) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
