"""The ``memory`` backend: a conforming fake (the suite runs it in test_backend_conformance.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api_helpers import register, upload_file
from vault.app import VaultApp
from vault.chunks import ChunkStore
from vault.chunks.backend import BackendClosed
from vault.chunks.conformance import content, digest, read_backend
from vault.chunks.loading import make_backend
from vault.chunks.memory import MemoryBackend, MemoryOptions, MemoryStorage
from vault.config import Config, config_from_mapping


async def test_instances_over_one_storage_share_chunks() -> None:
    storage = MemoryStorage()
    first, second = MemoryBackend(storage=storage), MemoryBackend(storage=storage)
    await first.open()
    await second.open()
    stored = await ChunkStore(first).put_bytes(b"shared")
    assert await read_backend(second, stored.chunk_id) == b"shared"
    await first.close()
    await second.close()


async def test_a_second_user_leaves_staged_writes_alone() -> None:
    """As with a disk backend, only the storage's sole user reclaims staged writes at open."""
    storage = MemoryStorage()
    writer_side, late = MemoryBackend(storage=storage), MemoryBackend(storage=storage)
    await writer_side.open()
    writer = await writer_side.begin_put()
    await writer.write(b"in progress")
    await late.open()
    assert storage.leftovers() == 1
    await writer.commit(digest(b"in progress"))
    assert await late.has_many([digest(b"in progress")]) == {digest(b"in progress")}
    await late.close()
    await writer_side.close()


async def test_reads_come_in_pieces_of_read_piece_bytes() -> None:
    backend = MemoryBackend(options=MemoryOptions(read_piece=1000))
    await backend.open()
    data = content(2500, 1)
    stored = await ChunkStore(backend).put_bytes(data)
    assert [len(piece) async for piece in backend.read(stored.chunk_id)] == [1000, 1000, 500]
    await backend.close()


async def test_capacity_makes_a_commit_fail_like_a_full_disk() -> None:
    backend = MemoryBackend(options=MemoryOptions(capacity=1000))
    await backend.open()
    store = ChunkStore(backend)
    await store.put_bytes(content(600, 1))
    with pytest.raises(OSError) as caught:
        await store.put_bytes(content(600, 2))
    assert caught.value.errno == errno.ENOSPC
    assert (await backend.stats()).chunks == 1 and backend.storage.leftovers() == 0
    await backend.close()


async def test_a_closed_backend_refuses_calls() -> None:
    backend = MemoryBackend()
    with pytest.raises(BackendClosed):
        await backend.stats()
    await backend.open()
    writer = await backend.begin_put()
    await backend.close()
    with pytest.raises(BackendClosed):
        await writer.write(b"late")
    await writer.abort()  # never fails, as the interface promises


def test_the_entry_point_builds_an_empty_memory_backend(tmp_path: Path) -> None:
    config = config_from_mapping({"storage": {"data_dir": str(tmp_path), "backend": "memory"}})
    backend = make_backend(config)
    assert isinstance(backend, MemoryBackend) and backend.storage.chunks == {}
    assert not (tmp_path / "chunks").exists()


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(storage={"backend": "memory"})


async def test_a_node_runs_on_the_memory_backend(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    data = os.urandom(200 * 1024)
    entry = await upload_file(client, headers, data, chunk_size=64 * 1024)
    response = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert response.status_code == 200 and await response.get_data() == data
    backend = app.node.chunks.backend
    assert isinstance(backend, MemoryBackend) and len(backend.storage.chunks) == 4
