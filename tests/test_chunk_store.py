"""ChunkStore over real backends: streaming, dedup, refusal, memory bounds and verified reads."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import blake3
import pytest
import trio
from vault_backends.fs_backend import FsBackend

from vault import plugins
from vault.chunks import (
    MAX_CHUNK_SIZE,
    BackendStats,
    ChunkBackend,
    ChunkCorrupt,
    ChunkId,
    ChunkMismatch,
    ChunkStore,
    ChunkTooLarge,
    ChunkWriter,
)
from vault.chunks.store import GATHER_SIZE, PIECE_SIZE, VERIFY_WHOLE_LIMIT

KiB, MiB = 1024, 1024 * 1024


def digest(data: bytes) -> ChunkId:
    return ChunkId(blake3.blake3(data).digest())


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class RecordingWriter(ChunkWriter):
    def __init__(self, inner: ChunkWriter, sizes: list[int]) -> None:
        self.inner = inner
        self.sizes = sizes

    async def write(self, data: bytes) -> None:
        self.sizes.append(len(data))
        await self.inner.write(data)

    async def commit(self, chunk_id: ChunkId) -> None:
        await self.inner.commit(chunk_id)

    async def abort(self) -> None:
        await self.inner.abort()


class RecordingBackend(ChunkBackend):
    """A real backend that remembers what the store handed it (a wrapper, not a mock)."""

    name = "recording"

    def __init__(self, inner: ChunkBackend) -> None:
        self.inner = inner
        self.puts_begun = 0
        self.write_sizes: list[int] = []

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def begin_put(self) -> ChunkWriter:
        self.puts_begun += 1
        return RecordingWriter(await self.inner.begin_put(), self.write_sizes)

    def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        return self.inner.read(chunk_id)

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        return await self.inner.has_many(chunk_ids)

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        return await self.inner.delete_many(chunk_ids)

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        return await self.inner.list_ids(after, limit)

    async def stat(self, chunk_id: ChunkId) -> int | None:
        return await self.inner.stat(chunk_id)

    async def stats(self) -> BackendStats:
        return await self.inner.stats()


@pytest.fixture
async def fs(tmp_path: Path) -> AsyncIterator[FsBackend]:
    backend = FsBackend(tmp_path / "chunks", {})
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture
async def recording(fs: FsBackend) -> RecordingBackend:
    return RecordingBackend(fs)


@pytest.fixture
async def any_store(backend_name: str, tmp_path: Path) -> AsyncIterator[ChunkStore]:
    """A store over each built-in backend, loaded through its entry point as the node does."""
    cls = plugins.load(plugins.BACKENDS, backend_name)
    store = ChunkStore(cls(tmp_path / "chunks", {}))
    await store.open()
    yield store
    await store.close()


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


async def test_streaming_put_regroups_many_small_pieces(recording: RecordingBackend) -> None:
    data = os.urandom(10 * MiB + 123)
    store = ChunkStore(recording)
    result = await store.put(pieces(data, 4 * KiB))
    assert (result.chunk_id, result.size, result.existed) == (digest(data), len(data), False)
    *whole, last = recording.write_sizes
    assert all(GATHER_SIZE <= size <= PIECE_SIZE for size in whole) and 0 < last <= PIECE_SIZE
    assert sum(recording.write_sizes) == len(data) and len(whole) <= len(data) // GATHER_SIZE
    assert await store.read_all(result.chunk_id) == data


async def test_pieces_of_a_few_mib_reach_the_backend_as_they_are(recording: RecordingBackend) -> None:
    data = os.urandom(6 * MiB)
    await ChunkStore(recording).put(pieces(data, 3 * MiB))
    assert recording.write_sizes == [3 * MiB, 3 * MiB]


async def test_one_huge_piece_reaches_the_backend_in_bounded_pieces(recording: RecordingBackend) -> None:
    data = os.urandom(9 * MiB)
    await ChunkStore(recording).put_bytes(data)
    assert recording.write_sizes == [PIECE_SIZE, PIECE_SIZE, MiB]


async def test_a_caller_reusing_its_buffer_between_pieces_stores_what_it_sent(fs: FsBackend) -> None:
    data = os.urandom(3 * MiB + 11)

    async def read_into_one_buffer() -> AsyncIterator[bytes]:
        buffer = bytearray(64 * KiB)
        for start in range(0, len(data), len(buffer)):
            piece = data[start : start + len(buffer)]
            buffer[: len(piece)] = piece
            yield memoryview(buffer)[: len(piece)]  # type: ignore[misc]

    store = ChunkStore(fs)
    result = await store.put(read_into_one_buffer())
    assert result.chunk_id == digest(data)
    assert await store.read_all(result.chunk_id) == data


async def test_known_chunk_with_expected_id_is_hashed_but_not_rewritten(
    recording: RecordingBackend, fs: FsBackend
) -> None:
    data = os.urandom(3 * MiB)
    store = ChunkStore(recording)
    first = await store.put_bytes(data)
    written = fs.chunk_path(first.chunk_id).stat()
    again = await store.put(pieces(data, 64 * KiB), expected_id=first.chunk_id, expected_size=len(data))
    assert again.existed and again.chunk_id == first.chunk_id
    assert recording.puts_begun == 1
    assert fs.chunk_path(first.chunk_id).stat().st_mtime_ns == written.st_mtime_ns
    assert await store.stats() == BackendStats(chunks=1, bytes=len(data))


async def test_same_content_without_expected_id_is_stored_once(recording: RecordingBackend) -> None:
    data = os.urandom(100 * KiB)
    store = ChunkStore(recording)
    assert not (await store.put(pieces(data, 8 * KiB))).existed
    assert (await store.put(pieces(data, 8 * KiB))).existed
    assert await store.stats() == BackendStats(chunks=1, bytes=len(data))


async def test_content_claiming_a_stored_id_is_refused_and_the_stored_chunk_is_untouched(
    recording: RecordingBackend,
) -> None:
    store = ChunkStore(recording)
    genuine, impostor = os.urandom(MiB), os.urandom(MiB)
    stored = await store.put_bytes(genuine)
    with pytest.raises(ChunkMismatch) as caught:
        await store.put(pieces(impostor, 64 * KiB), expected_id=stored.chunk_id)
    assert caught.value.actual_id == digest(impostor)
    assert await store.has_many([digest(impostor)]) == set()
    assert await store.read_all(stored.chunk_id) == genuine


async def test_wrong_expected_size_makes_nothing_visible(fs: FsBackend) -> None:
    store = ChunkStore(fs)
    data = os.urandom(2 * MiB)
    with pytest.raises(ChunkMismatch) as caught:
        await store.put(pieces(data, 64 * KiB), expected_size=len(data) + 5)
    assert caught.value.size == len(data)
    assert await store.has_many([digest(data)]) == set()
    assert os.listdir(fs.path / "tmp") == []


async def test_too_large_stops_reading_the_stream_at_the_limit(fs: FsBackend) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        piece = b"x" * (64 * KiB)
        while True:
            pulled += 1
            yield piece

    with pytest.raises(ChunkTooLarge) as caught:
        await ChunkStore(fs).put(endless(), max_size=MiB)
    assert caught.value.limit == MiB
    assert pulled == MiB // (64 * KiB) + 1
    assert os.listdir(fs.path / "tmp") == []


async def test_limit_is_never_above_64_mib(fs: FsBackend) -> None:
    piece = b"y" * (4 * MiB)

    async def too_long() -> AsyncIterator[bytes]:
        for _ in range(MAX_CHUNK_SIZE // len(piece) + 1):
            yield piece

    with pytest.raises(ChunkTooLarge) as caught:
        await ChunkStore(fs).put(too_long(), max_size=10 * MAX_CHUNK_SIZE)
    assert caught.value.limit == MAX_CHUNK_SIZE


async def test_cancelled_put_leaves_nothing_behind(fs: FsBackend) -> None:
    store = ChunkStore(fs)
    stalled = trio.Event()

    async def client_goes_quiet() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(2 * MiB)
        stalled.set()
        await trio.sleep_forever()
        yield b""  # pragma: no cover

    async with trio.open_nursery() as nursery:

        async def upload() -> None:
            await store.put(client_goes_quiet())

        nursery.start_soon(upload)
        await stalled.wait()
        nursery.cancel_scope.cancel()
    assert await store.stats() == BackendStats(chunks=0, bytes=0)
    assert os.listdir(fs.path / "tmp") == []


async def test_put_of_64_mib_holds_a_few_pieces_not_the_chunk(any_store: ChunkStore) -> None:
    piece = os.urandom(64 * KiB)

    async def upload_body() -> AsyncIterator[bytes]:
        for _ in range(MAX_CHUNK_SIZE // len(piece)):
            yield piece

    tracemalloc.start()
    try:
        result = await any_store.put(upload_body())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == MAX_CHUNK_SIZE
    # A few 1 MiB pieces in flight (being written, read ahead, queued for lmdb's writer thread).
    assert peak < 2 * PIECE_SIZE <= MAX_CHUNK_SIZE / 8, f"peak {peak / MiB:.1f} MiB"


async def test_get_of_64_mib_holds_a_few_pieces_not_the_chunk(any_store: ChunkStore) -> None:
    data = os.urandom(MAX_CHUNK_SIZE)
    chunk_id = (await any_store.put_bytes(data)).chunk_id
    del data
    received = 0
    tracemalloc.start()
    try:
        async for piece in await any_store.get(chunk_id):
            received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == MAX_CHUNK_SIZE
    assert peak < 4 * PIECE_SIZE, f"peak {peak / MiB:.1f} MiB"


async def test_get_of_a_corrupt_small_chunk_yields_nothing(fs: FsBackend) -> None:
    store = ChunkStore(fs)
    data = os.urandom(VERIFY_WHOLE_LIMIT - 1)
    chunk_id = (await store.put_bytes(data)).chunk_id
    flip_byte(fs.chunk_path(chunk_id), len(data) - 1)
    received: list[bytes] = []
    with pytest.raises(ChunkCorrupt) as caught:
        async for piece in await store.get(chunk_id):
            received.append(piece)
    assert caught.value.chunk_id == chunk_id
    assert received == []


async def test_get_of_a_corrupt_large_chunk_withholds_its_end(fs: FsBackend) -> None:
    store = ChunkStore(fs)
    data = os.urandom(20 * MiB)
    chunk_id = (await store.put_bytes(data)).chunk_id
    flip_byte(fs.chunk_path(chunk_id), 0)
    received = bytearray()
    with pytest.raises(ChunkCorrupt):
        async for piece in await store.get(chunk_id):
            received += piece
    assert 0 < len(received) <= len(data) - PIECE_SIZE


async def test_get_with_a_different_expected_size_is_corrupt(any_store: ChunkStore) -> None:
    chunk_id = (await any_store.put_bytes(b"twelve bytes")).chunk_id
    assert await any_store.read_all(chunk_id) == b"twelve bytes"
    with pytest.raises(ChunkCorrupt):
        await any_store.get(chunk_id, expected_size=13)


async def test_verify_reports_size_of_a_good_chunk(any_store: ChunkStore) -> None:
    data = os.urandom(5 * MiB + 1)
    chunk_id = (await any_store.put_bytes(data)).chunk_id
    assert await any_store.verify(chunk_id) == len(data)
