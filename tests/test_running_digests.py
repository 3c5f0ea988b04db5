"""Chunks that arrive ahead of their turn: hashed into the running digest from the bytes they
streamed in (within a budget), never from other bytes than their receipt names."""

from __future__ import annotations

import os
from typing import Any

import blake3
import trio

from tests.api_helpers import b3, init_upload, local_path, register
from vault.app import VaultApp
from vault.uploads.running import RunningDigests

KiB = 1024


class _CountingBackend:
    """The real backend, counting whole-chunk reads (a fake that passes every call through)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, chunk_id: Any) -> Any:
        self.reads += 1
        return self._inner.read(chunk_id)


async def test_chunks_sent_backwards_are_hashed_from_memory_and_complete_reads_nothing(app: VaultApp) -> None:
    client = app.test_client()
    headers = await register(client)
    data = os.urandom(6 * 64 * KiB)
    planned = await init_upload(client, headers, data)
    backend = _CountingBackend(app.node.chunks.backend)
    app.node.chunks.backend = backend  # type: ignore[assignment]
    for chunk in reversed(planned["chunks"]):  # every chunk but the first arrives ahead of its turn
        piece = data[chunk["start"] : chunk["end"] + 1]
        assert (await client.put(local_path(chunk["uploadUrl"]), headers=headers, data=piece)).status_code == 200
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, await done.get_json()
    assert backend.reads == 0
    running = app.node.uploads.running
    assert running.held_bytes == 0 and not running._held
    entry = (await done.get_json())["data"]["file"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_past_the_budget_chunks_are_read_back_and_the_file_is_the_same(app: VaultApp) -> None:
    client = app.test_client()
    headers = await register(client)
    data = os.urandom(5 * 64 * KiB)
    planned = await init_upload(client, headers, data)
    app.node.uploads.running.hold_budget = app.node.uploads.running.hold_free = 64 * KiB  # room for one chunk
    backend = _CountingBackend(app.node.chunks.backend)
    app.node.chunks.backend = backend  # type: ignore[assignment]

    async def put(chunk: dict[str, Any]) -> None:
        piece = data[chunk["start"] : chunk["end"] + 1]
        assert (await client.put(local_path(chunk["uploadUrl"]), headers=headers, data=piece)).status_code == 200

    for chunk in planned["chunks"][1:]:
        await put(chunk)
    await put(planned["chunks"][0])
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, await done.get_json()
    assert backend.reads == 3  # chunk 1 was kept; 2, 3 and 4 found no room
    assert app.node.uploads.running.held_bytes == 0


def test_kept_bytes_serve_only_the_receipt_they_hashed_to() -> None:
    running = RunningDigests(hold_budget=100)
    assert running.keeper("u", 1, 60, with_sha256=False) is not None  # starts the digest at 0
    assert running.current("u") is not None and running.current("u").position == 0  # type: ignore[union-attr]
    keeper = running.keeper("u", 2, 60, with_sha256=False)
    assert keeper is None  # no room left
    first = running.keeper("u", 3, 30, with_sha256=False)
    assert first is not None
    first.update(b"x" * 30)
    running.hold("u", 3, blake3.blake3(b"x" * 30).digest(), first)
    assert running.take("u", 3, blake3.blake3(b"other").digest()) is None  # a receipt naming other bytes
    assert running.take("u", 3, blake3.blake3(b"x" * 30).digest()) is None  # given up either way
    assert running.held_bytes == 60  # the keeper of chunk 1, never held, is still reserved
    running.forget("u", stale=True)
    assert running.keeper("u", 4, 10, with_sha256=False) is None  # a dropped digest is not restarted
    running.forget("u")
    assert running.keeper("u", 4, 10, with_sha256=False) is not None


async def test_three_parallel_streams_upload_a_whole_file(app: VaultApp) -> None:
    client = app.test_client()
    headers = await register(client)
    data = os.urandom(9 * 64 * KiB + 5)
    planned = await init_upload(client, headers, data)
    todo = list(planned["chunks"])

    async def stream() -> None:
        while todo:
            chunk = todo.pop(0)
            piece = data[chunk["start"] : chunk["end"] + 1]
            assert (await client.put(local_path(chunk["uploadUrl"]), headers=headers, data=piece)).status_code == 200

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(stream)
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, await done.get_json()
    assert app.node.uploads.running.held_bytes == 0


async def test_a_file_of_one_chunk_is_hashed_once_and_completes_with_its_own_checksum(app: VaultApp) -> None:
    """Its whole-file BLAKE3 is its chunk's id: the node hashes the bytes once, and ``complete``
    still answers exactly that checksum (or a mismatch against init's), reading nothing back."""
    import hashlib

    client = app.test_client()
    headers = await register(client)
    backend = _CountingBackend(app.node.chunks.backend)
    app.node.chunks.backend = backend  # type: ignore[assignment]
    hashed: list[int] = []
    real = app.node.offload.hash

    async def counting(hashers: Any, piece: bytes) -> None:
        hashed.append(len(piece) * len(hashers))
        await real(hashers, piece)

    app.node.offload.hash = counting  # type: ignore[method-assign]
    sizes = {"one chunk": 200 * KiB, "wrong checksum": 100 * KiB, "sha256": 150 * KiB}
    answers = {}
    for case, size in sizes.items():
        data = os.urandom(size)
        checksum = {
            "wrong checksum": b3(b"something else"),
            "sha256": "sha256:" + hashlib.sha256(data).hexdigest(),
        }.get(case, b3(data))
        planned = await init_upload(client, headers, data, name=f"{case}.jpg", chunk_size=256 * KiB, checksum=checksum)
        assert len(planned["chunks"]) == 1
        hashed.clear()
        reads_before = backend.reads
        put = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), headers=headers, data=data)
        assert put.status_code == 200
        # One pass per byte (the chunk's id), two where a SHA-256 is asked for as well.
        assert sum(hashed) == size * (2 if case == "sha256" else 1)
        done = await client.post(
            "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": checksum}
        )
        answers[case] = (done.status_code, await done.get_json(), data)
        if case != "wrong checksum":  # a mismatch re-reads the stored chunk to be sure
            assert backend.reads == reads_before, case
    status, body, data = answers["one chunk"]
    assert status == 200 and body["data"]["file"]["checksum"] == b3(data)
    status, body, _ = answers["wrong checksum"]
    assert status == 422 and body["error"]["code"] == "CHECKSUM_MISMATCH"
    status, body, data = answers["sha256"]
    assert status == 200 and body["data"]["file"]["checksum"] == b3(data)
    listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
    assert sorted(f["name"] for f in (await listing.get_json())["data"]["files"]) == ["one chunk.jpg", "sha256.jpg"]
