"""Chunked uploads: init, chunk PUTs, progress/resume, complete, abort, quota, expiry, BOLA."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest
import trio
import trio.testing

from tests.api_helpers import b3, init_upload, local_path, put_chunks, register, upload_file
from tests.conftest import running_app
from vault.app import VaultApp, create_app
from vault.chunks.ids import ChunkId
from vault.chunks.refs import refcount
from vault.clock import TrioClock
from vault.config import Config
from vault.lmdb_writer import LmdbWriter
from vault.quota import USAGE

KiB = 1024


@pytest.fixture
def config(make_config: Callable[..., Config], backend_name: str) -> Config:
    return make_config(storage={"backend": backend_name})


async def test_multi_chunk_round_trip(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(300 * KiB + 17)
    planned = await init_upload(client, headers, data)
    assert planned["status"] == "pending"
    assert planned["totalChunks"] == 5
    assert [(c["start"], c["end"]) for c in planned["chunks"]][-1] == (256 * KiB, len(data) - 1)
    assert planned["chunks"][0]["uploadUrl"].startswith("http")
    await put_chunks(client, headers, planned, data)
    done = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={
            "uploadId": planned["uploadId"],
            "checksum": b3(data),
            "metadata": {"capturedAt": "2024-01-20T14:30:00Z"},
        },
    )
    entry = (await done.get_json())["data"]["file"]
    assert entry["size"] == len(data)
    assert entry["checksum"] == b3(data)
    assert entry["version"] == 1
    assert entry["modifiedAt"] == "2024-01-20T14:30:00Z"
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert content.status_code == 200
    assert await content.get_data() == data
    assert content.headers["Content-Type"] == "image/jpeg"


async def test_resume_reports_received_and_missing_chunks(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(4 * 64 * KiB)
    planned = await init_upload(client, headers, data)
    for chunk in planned["chunks"][::2]:
        r = await client.put(
            local_path(chunk["uploadUrl"]), headers=headers, data=data[chunk["start"] : chunk["end"] + 1]
        )
        assert r.status_code == 200
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    view = (await state.get_json())["data"]
    assert view["receivedChunks"] == [0, 2]
    assert view["missingChunks"] == [1, 3]
    assert view["bytesReceived"] == 2 * 64 * KiB
    progress = await client.post(
        "/api/mobile/upload/progress",
        headers=headers,
        json={
            "uploadId": planned["uploadId"],
            "completedChunks": [0, 1, 2],
            "bytesUploaded": 1,
            "status": "uploading",
        },
    )
    assert (await progress.get_json())["data"]["missingChunks"] == [1, 3]
    early = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={"uploadId": planned["uploadId"], "checksum": b3(data)},
    )
    assert early.status_code == 409
    assert (await early.get_json())["error"]["details"]["missingChunks"] == [1, 3]


async def test_wrong_chunk_checksum_is_rejected_and_not_recorded(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB)
    planned = await init_upload(client, headers, data)
    url = local_path(planned["chunks"][0]["uploadUrl"])
    bad = await client.put(url, headers={**headers, "X-Chunk-Checksum": b3(b"other")}, data=data)
    assert bad.status_code == 422
    assert (await bad.get_json())["error"]["code"] == "CHECKSUM_MISMATCH"
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["receivedChunks"] == []


async def test_wrong_chunk_length_is_rejected(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(128 * KiB)
    planned = await init_upload(client, headers, data)
    url = local_path(planned["chunks"][0]["uploadUrl"])
    long = await client.put(url, headers=headers, data=data[: 64 * KiB + 1])
    assert long.status_code == 413
    assert (await long.get_json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    short = await client.put(url, headers=headers, data=data[:100])
    assert short.status_code == 400
    assert (await short.get_json())["error"]["code"] == "VALIDATION_ERROR"


async def test_wrong_whole_file_checksum_creates_no_file(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(100 * KiB)
    planned = await init_upload(client, headers, data, checksum=b3(b"something else"))
    await put_chunks(client, headers, planned, data)
    done = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={"uploadId": planned["uploadId"], "checksum": b3(b"something else")},
    )
    assert done.status_code == 422
    assert (await done.get_json())["error"]["code"] == "CHECKSUM_MISMATCH"
    listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
    assert (await listing.get_json())["data"]["files"] == []


async def test_sha256_whole_file_checksum_is_accepted(client: Any) -> None:
    import hashlib

    headers = await register(client)
    data = os.urandom(70 * KiB)
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    planned = await init_upload(client, headers, data, checksum=sha)
    await put_chunks(client, headers, planned, data)
    done = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={"uploadId": planned["uploadId"], "checksum": sha},
    )
    entry = (await done.get_json())["data"]["file"]
    assert entry["checksum"] == b3(data)
    assert entry["sha256"] == sha


async def test_duplicate_chunk_put_is_harmless_and_complete_is_idempotent(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB + 5)
    planned = await init_upload(client, headers, data)
    await put_chunks(client, headers, planned, data)
    await put_chunks(client, headers, planned, data)
    body = {"uploadId": planned["uploadId"], "checksum": b3(data)}
    first = await client.post("/api/mobile/upload/complete", headers=headers, json=body)
    second = await client.post("/api/mobile/upload/complete", headers=headers, json=body)
    assert (await first.get_json())["data"]["file"] == (await second.get_json())["data"]["file"]


async def test_same_content_again_answers_exists_without_chunks(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(80 * KiB)
    entry = await upload_file(client, headers, data)
    again = await init_upload(client, headers, data, name="copy.jpg")
    assert again["status"] == "exists"
    assert again["fileId"] == entry["id"]
    assert "chunks" not in again or again["chunks"] == []


async def test_dedup_never_tells_another_user_about_content(client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    data = os.urandom(80 * KiB)
    await upload_file(client, alice, data)
    planned = await init_upload(client, bob, data)
    assert planned["status"] == "pending"
    entry = await upload_file(client, bob, data, name="bobs.jpg")
    assert entry["checksum"] == b3(data)


async def test_new_content_at_same_path_is_a_new_version(client: Any) -> None:
    headers = await register(client)
    first = await upload_file(client, headers, os.urandom(70 * KiB))
    newer = os.urandom(90 * KiB)
    second = await upload_file(client, headers, newer)
    assert second["id"] == first["id"]
    assert second["version"] == 2
    assert second["size"] == len(newer)
    content = await client.get(f"/api/mobile/files/{first['id']}/content", headers=headers)
    assert await content.get_data() == newer


async def test_quota_is_checked_at_init(make_config: Callable[..., Config]) -> None:
    config = make_config(plans={"free": {"quota": "200KiB"}})
    app = create_app(config, clock=TrioClock())
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        await upload_file(client, headers, os.urandom(150 * KiB))
        over = await client.post(
            "/api/mobile/upload/init",
            headers=headers,
            json={"files": [{"localId": "x", "name": "big.bin", "size": 100 * KiB, "folder": "/"}]},
        )
        assert over.status_code == 507
        error = (await over.get_json())["error"]
        assert error["code"] == "STORAGE_QUOTA_EXCEEDED"
        assert error["details"] == {"used": 150 * KiB, "quota": 200 * KiB, "requested": 100 * KiB}


async def test_abort_releases_and_later_chunks_conflict(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB)
    planned = await init_upload(client, headers, data)
    gone = await client.delete(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await gone.get_json())["data"]["status"] == "aborted"
    late = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), headers=headers, data=data)
    assert late.status_code == 409


async def test_expired_session_is_410_and_swept(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(uploads={"session_ttl": "1h", "gc_interval": "10m"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        data = os.urandom(64 * KiB)
        planned = await init_upload(client, headers, data)
        await trio.sleep(2 * 3600)
        late = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), headers=headers, data=data)
        assert late.status_code == 410
        assert (await late.get_json())["error"]["code"] == "UPLOAD_EXPIRED"
        state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
        assert (await state.get_json())["data"]["status"] == "expired"


async def test_uploads_and_files_of_another_user_are_not_found(client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    data = os.urandom(64 * KiB)
    planned = await init_upload(client, alice, data)
    entry = await upload_file(client, alice, os.urandom(10 * KiB), name="a.jpg")
    for method, path in [
        ("GET", f"/api/mobile/upload/{planned['uploadId']}"),
        ("DELETE", f"/api/mobile/upload/{planned['uploadId']}"),
        ("GET", f"/api/mobile/files/{entry['id']}"),
        ("GET", f"/api/mobile/files/{entry['id']}/content"),
    ]:
        response = await client.open(path, method=method, headers=bob)
        assert response.status_code == 404, path
        assert (await response.get_json())["error"]["code"] == "NOT_FOUND"
    put = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), headers=bob, data=data)
    assert put.status_code == 404
    done = await client.post(
        "/api/mobile/upload/complete",
        headers=bob,
        json={"uploadId": planned["uploadId"], "checksum": b3(data)},
    )
    assert done.status_code == 404


async def test_chunk_put_requires_auth(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB)
    planned = await init_upload(client, headers, data)
    response = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), data=data)
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "UNAUTHORIZED"


async def test_init_rejects_bad_names_and_unknown_fields(client: Any) -> None:
    headers = await register(client)
    for file in (
        {"localId": "a", "name": "../etc", "size": 1, "folder": "/"},
        {"localId": "a", "name": "ok.txt", "size": 1, "folder": "relative"},
        {"localId": "a", "name": "ok.txt", "size": -1, "folder": "/"},
        {"localId": "a", "name": "ok.txt", "size": 1, "folder": "/", "owner": "bob"},
    ):
        response = await client.post("/api/mobile/upload/init", headers=headers, json={"files": [file]})
        assert response.status_code == 400, file
        assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


async def test_empty_file_needs_no_chunks(client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, b"", name="empty.txt")
    assert entry["size"] == 0
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert content.status_code == 200 and await content.get_data() == b""


async def test_completion_and_failure_record_upload_notifications(app: Any, client: Any) -> None:
    from vault.notifications.records import NOTIFICATIONS

    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(10 * KiB), name="n.jpg")
    await upload_file(client, headers, os.urandom(10 * KiB), name="clip.mp4", mime_type="video/mp4")
    await upload_file(client, headers, os.urandom(10 * KiB), name="notes.txt", mime_type="text/plain")
    data = os.urandom(10 * KiB)
    planned = await init_upload(client, headers, data, name="bad.jpg", checksum=b3(b"nope"))
    await put_chunks(client, headers, planned, data)
    failed = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={"uploadId": planned["uploadId"], "checksum": b3(b"nope")},
    )
    assert failed.status_code == 422
    with app.node.meta.read() as txn:
        found = [n for _, n in txn.scan(NOTIFICATIONS) if n.category == "uploads"]
    assert [n.title for n in found] == [
        "Photo upload completed",
        "Video upload completed",
        "File upload completed",
        "Photo upload failed",
    ]
    assert found[0].data["fileId"] == entry["id"]
    # The device never registered for push, so the notification is in the inbox only.
    assert [(d.status, d.reason) for d in found[0].deliveries] == [("skipped", "no push registration")]


async def test_stalled_chunk_body_is_cut_off(config: Config, idle_jump_clock: trio.testing.MockClock) -> None:
    """A slow-loris client that stops sending gets a 400 after body_read_timeout, not a held slot."""
    async with running_app(config, idle_jump_clock) as app:
        await _stall(app, app.test_client())


async def _stall(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB)
    planned = await init_upload(client, headers, data)
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": data[:1000], "more_body": True}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _put_scope(planned, headers, len(data))
    with trio.fail_after(3600):
        await app(scope, receive, send)
    assert sent[0]["status"] == 400
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["receivedChunks"] == []


async def test_node_reclaims_chunks_of_aborted_uploads_after_grace(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(uploads={"gc_interval": "10m", "gc_grace": "1h"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        kept = os.urandom(64 * KiB)
        entry = await upload_file(client, headers, kept, name="kept.bin")
        dropped = os.urandom(2 * 64 * KiB)
        planned = await init_upload(client, headers, dropped, name="dropped.bin")
        await put_chunks(client, headers, planned, dropped)
        assert (await app.node.chunks.stats()).chunks == 3
        await client.delete(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
        await trio.sleep(15 * 60)  # first pass: marked, not deleted (grace)
        assert (await app.node.chunks.stats()).chunks == 3
        await trio.sleep(2 * 3600)  # a later pass: unreferenced for longer than the grace
        assert (await app.node.chunks.stats()).chunks == 1
        content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
        assert await content.get_data() == kept


async def test_chunks_in_any_order_and_in_parallel_complete_to_the_same_file(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(7 * 64 * KiB + 5)
    planned = await init_upload(client, headers, data)
    chunks = planned["chunks"]

    async def put(chunk: dict[str, Any]) -> None:
        response = await client.put(
            local_path(chunk["uploadUrl"]), headers=headers, data=data[chunk["start"] : chunk["end"] + 1]
        )
        assert response.status_code == 200

    await put(chunks[3])
    await put(chunks[1])
    async with trio.open_nursery() as nursery:
        for chunk in [chunks[0], chunks[2], *chunks[4:]][::-1]:
            nursery.start_soon(put, chunk)
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, await done.get_json()
    entry = (await done.get_json())["data"]["file"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_quota_is_checked_again_at_complete(make_config: Callable[..., Config]) -> None:
    """A plan lowered while an upload is in flight stops it at complete, with the details."""
    from vault.auth.accounts import set_plan

    config = make_config(plans={"small": {"devices": 3, "quota": "100KiB"}})
    app = create_app(config, clock=TrioClock())
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        data = os.urandom(150 * KiB)
        planned = await init_upload(client, headers, data)
        await put_chunks(client, headers, planned, data)
        await app.node.meta.write(lambda txn: set_plan(txn, "alice@example.com", "small"))
        done = await client.post(
            "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
        )
        assert done.status_code == 507
        error = (await done.get_json())["error"]
        assert error["details"] == {"used": 0, "quota": 100 * KiB, "requested": 150 * KiB}
        listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
        assert (await listing.get_json())["data"]["files"] == []


async def test_media_types_that_are_not_header_safe_are_refused(client: Any) -> None:
    headers = await register(client)
    for mime in ("image/jpeg\r\nX-Evil: 1", "not a type", "a/b/c"):
        response = await client.post(
            "/api/mobile/upload/init",
            headers=headers,
            json={"files": [{"localId": "a", "name": "x.jpg", "size": 1, "folder": "/", "mimeType": mime}]},
        )
        assert response.status_code == 400, mime
        assert (await response.get_json())["error"]["details"]["field"] == "files[0].mimeType"


async def test_finished_uploads_leave_no_running_state_behind(app: Any, client: Any) -> None:
    headers = await register(client)
    open_data = os.urandom(2 * 64 * KiB)
    planned = await init_upload(client, headers, open_data, name="open.bin")
    await put_chunks(client, headers, planned, open_data)
    assert app.node.uploads.running.current(planned["uploadId"]) is not None  # held while open
    for i in range(3):
        await upload_file(client, headers, os.urandom(100 * KiB), name=f"r{i}.bin")
    await client.delete(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert app.node.uploads.running.current(planned["uploadId"]) is None
    assert not app.node.uploads.running._by_upload


async def test_a_body_trickling_under_the_read_timeout_is_still_cut_off(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    """One piece every 50 s never trips the 60 s read timeout, but the whole-body deadline
    (60 s + 64 KiB at 4 KiB/s = 76 s) ends it."""
    config = make_config(server={"min_body_rate": "4KiB"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        data = os.urandom(64 * KiB)
        planned = await init_upload(client, headers, data)
        sent: list[dict[str, Any]] = []
        pieces = iter(data[i : i + 1024] for i in range(0, len(data), 1024))

        async def receive() -> dict[str, Any]:
            await trio.sleep(50)
            return {"type": "http.request", "body": next(pieces), "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = _put_scope(planned, headers, len(data))
        started = trio.current_time()
        await app(scope, receive, send)
        assert sent[0]["status"] == 400
        assert trio.current_time() - started < 200


def _put_scope(planned: dict[str, Any], headers: dict[str, str], length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": local_path(planned["chunks"][0]["uploadUrl"]),
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", headers["Authorization"].encode()), (b"content-length", str(length).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


class _PausingBackend:
    """The real backend, with reads that wait while ``gate`` is closed (a fake, not a mock:
    every call goes through to the real storage)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.gate = trio.Event()
        self.gate.set()
        self.reading = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _read(self, chunk_id: Any) -> Any:
        self.reading.set()
        await self.gate.wait()
        async for piece in self._inner.read(chunk_id):
            yield piece

    def read(self, chunk_id: Any) -> Any:
        return self._read(chunk_id)


async def test_a_chunk_replaced_while_complete_runs_is_a_conflict_not_a_broken_file(app: Any, client: Any) -> None:
    headers = await register(client)
    data = os.urandom(3 * 64 * KiB)
    planned = await init_upload(client, headers, data)
    await put_chunks(client, headers, planned, data)
    app.node.uploads.running.forget(planned["uploadId"])  # as after a restart: complete re-reads
    backend = _PausingBackend(app.node.chunks.backend)
    app.node.chunks.backend = backend
    backend.gate = trio.Event()
    outcome: dict[str, Any] = {}

    async def complete() -> None:
        response = await client.post(
            "/api/mobile/upload/complete",
            headers=headers,
            json={"uploadId": planned["uploadId"], "checksum": b3(data)},
        )
        outcome["status"] = response.status_code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(complete)
        await backend.reading.wait()
        other = os.urandom(64 * KiB)
        replaced = await client.put(local_path(planned["chunks"][0]["uploadUrl"]), headers=headers, data=other)
        assert replaced.status_code == 200
        backend.gate.set()
    assert outcome["status"] == 409
    await put_chunks(client, headers, planned, data)
    retried = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    entry = (await retried.get_json())["data"]["file"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_vault_gc_closes_sessions_that_expired_while_the_node_was_down(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    from vault.cli import main

    # The node's clock is set in 2023, so by the real clock its sessions expired long ago.
    app = create_app(config, clock=TrioClock())
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        kept = await upload_file(client, headers, os.urandom(64 * KiB), name="kept.bin")
        data = os.urandom(2 * 64 * KiB)
        planned = await init_upload(client, headers, data, name="stalled.bin")
        await put_chunks(client, headers, planned, data)
    args = ["gc", "--data-dir", config.storage.data_dir, "--config", _backend_config(config)]
    assert await trio.to_thread.run_sync(main, args) == 0
    assert "would close 1 expired upload session" in capsys.readouterr().out
    assert await trio.to_thread.run_sync(main, [*args, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "closed 1 expired upload session" in out and "reclaimed 2 unreferenced chunk" in out
    app = create_app(config, clock=TrioClock())
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        content = await client.get(f"/api/mobile/files/{kept['id']}/content", headers=headers)
        assert content.status_code == 200 and len(await content.get_data()) == 64 * KiB


def _backend_config(config: Config) -> str:
    path = Path(config.storage.data_dir).parent / "gc.toml"
    path.write_text(f'[storage]\nbackend = "{config.storage.backend}"\n')
    return str(path)


async def test_upload_ids_a_store_cannot_hold_are_not_found_not_500(client: Any) -> None:
    """Found by schemathesis: ``uploadId: ""`` (and an id past LMDB's key size) answered 500."""
    headers = await register(client)
    for upload_id in ("", "u" * 600):
        for path, body in (
            ("/api/mobile/upload/progress", {"uploadId": upload_id}),
            ("/api/mobile/upload/complete", {"uploadId": upload_id, "checksum": "blake3:" + "0" * 64}),
        ):
            response = await client.post(path, headers=headers, json=body)
            assert response.status_code == 404, (path, upload_id[:5], await response.get_json())
    response = await client.get("/api/mobile/upload/" + "u" * 600, headers=headers)
    assert response.status_code == 404


async def test_allow_names_only_the_methods_of_the_path_asked_about(client: Any) -> None:
    """Found by schemathesis: ``OPTIONS /upload/init`` allowed GET and DELETE too (the routes of
    ``/upload/{uploadId}`` matched ``init``), and a raw route's path with another method was 404."""
    response = await client.options("/api/mobile/upload/init")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"POST", "OPTIONS"}
    response = await client.get("/api/mobile/upload/init", headers=await register(client))
    assert response.status_code == 405
    for path, allowed in (
        ("/api/mobile/upload/u1/chunks/0", "PUT"),
        ("/api/mobile/upload/u1/chunks", "PUT"),
        ("/api/mobile/tus/", "OPTIONS, POST"),
        ("/api/mobile/tus/u1", "OPTIONS, HEAD, PATCH, DELETE"),
    ):
        response = await client.open(path, method="TRACE")
        assert response.status_code == 405, path
        assert response.headers["Allow"] == allowed
        assert (await response.get_json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_open_uploads_per_device_are_capped_until_some_finish_or_expire(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(uploads={"max_open_per_device": 3, "session_ttl": "1h"})
    async with running_app(config, idle_jump_clock) as app:
        # Time passes only where the test says: on a busy machine a commit can take longer than the
        # clock's idle moment, and jumps to the background tasks' timers added up to the hour.
        idle_jump_clock.autojump_threshold = math.inf
        client = app.test_client()
        phone = await register(client, device_id="phone-1")
        tablet = await register(client, device_id="tablet-1")

        def files(*names: str) -> dict[str, Any]:
            return {"files": [{"localId": n, "name": n, "size": 10, "folder": "/"} for n in names]}

        first = await client.post("/api/mobile/upload/init", headers=phone, json=files("a", "b"))
        planned = (await first.get_json())["data"]["files"]
        assert len(planned) == 2
        over = await client.post("/api/mobile/upload/init", headers=phone, json=files("c", "d"))
        assert over.status_code == 429
        error = (await over.get_json())["error"]
        assert error["code"] == "RATE_LIMIT_EXCEEDED"
        assert error["details"] == {"limit": 3, "open": 2, "requested": 2}
        assert 3500 <= int(over.headers["Retry-After"]) <= 3600  # when the first open one expires
        # Nothing of the refused init was kept; one more fits, on tus too, and then nothing.
        assert (await client.post("/api/mobile/upload/init", headers=phone, json=files("c"))).status_code == 200
        tus = {**phone, "Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": "filename ZQ=="}
        refused = await client.post("/api/mobile/tus/", headers=tus)
        assert refused.status_code == 429
        assert (await refused.get_json())["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        # More at once than a device may ever have open cannot fit: refused as such.
        laptop = await register(client, device_id="laptop-1")
        too_many = await client.post("/api/mobile/upload/init", headers=laptop, json=files("1", "2", "3", "4"))
        assert too_many.status_code == 400
        assert (await too_many.get_json())["error"]["details"] == {"limit": 3, "requested": 4}
        # Another device of the same account has its own allowance.
        assert (await client.post("/api/mobile/upload/init", headers=tablet, json=files("t"))).status_code == 200
        # Aborting one makes room for one.
        aborted = await client.delete(f"/api/mobile/upload/{planned[0]['uploadId']}", headers=phone)
        assert aborted.status_code == 200
        assert (await client.post("/api/mobile/tus/", headers=tus)).status_code == 201
        assert (await client.post("/api/mobile/upload/init", headers=phone, json=files("e"))).status_code == 429
        # Once they expire, the device starts afresh.
        idle_jump_clock.jump(3601)
        again = await client.post("/api/mobile/upload/init", headers=phone, json=files("x", "y", "z"))
        assert again.status_code == 200


async def _put(client: Any, headers: dict[str, str], chunk: dict[str, Any], data: bytes, query: str = "") -> Any:
    return await client.put(
        local_path(chunk["uploadUrl"]) + query, headers=headers, data=data[chunk["start"] : chunk["end"] + 1]
    )


async def test_a_one_chunk_file_completes_with_its_put_when_asked(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(40 * KiB)
    planned = await init_upload(client, headers, data)
    put = await _put(client, headers, planned["chunks"][0], data, "?complete=true")
    assert put.status_code == 200
    entry = (await put.get_json())["data"]["file"]
    assert entry["checksum"] == b3(data) and entry["size"] == len(data) and entry["version"] == 1
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data
    # A client that calls complete anyway (or retries it) gets the same file, not a second version.
    again = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert again.status_code == 200 and (await again.get_json())["data"]["file"]["id"] == entry["id"]
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["status"] == "completed"


def _refcount(app: VaultApp, data: bytes) -> int:
    with app.node.meta.read() as txn:
        return refcount(txn, ChunkId(blake3.blake3(data).digest()))


async def test_a_one_chunk_file_completed_by_its_put_is_one_metadata_commit(
    app: VaultApp, client: Any, backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receipt and the file in one durable commit (before: the receipt's, then complete's),
    with the same result: one reference, on the file; the reservation given back."""
    headers = await register(client)
    data = os.urandom(48 * KiB)
    planned = await init_upload(client, headers, data)
    commits: list[str] = []
    commit_batch = LmdbWriter._commit_batch

    def counting(self: LmdbWriter, env: Any, batch: list[Any]) -> None:
        commits.extend(self.label for _ in batch)
        commit_batch(self, env, batch)

    monkeypatch.setattr(LmdbWriter, "_commit_batch", counting)
    put = await _put(client, headers, planned["chunks"][0], data, "?complete=true")
    assert put.status_code == 200
    entry = (await put.get_json())["data"]["file"]
    assert entry["checksum"] == b3(data) and entry["version"] == 1
    assert commits.count("metadata store") == 1
    monkeypatch.undo()
    assert _refcount(app, data) == 1
    with app.node.meta.read() as txn:
        assert [(u.used, u.reserved) for _, u in txn.scan(USAGE)] == [(len(data), 0)]
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["status"] == "completed"
    # A chunk already stored (the first of a larger file) as the whole of a small one: stored
    # once, each file holding its own reference.
    larger = os.urandom(64 * KiB) + os.urandom(10 * KiB)
    await upload_file(client, headers, larger, name="larger.jpg")
    first_chunk = larger[: 64 * KiB]
    other = await init_upload(client, headers, first_chunk, name="small.jpg")
    again = await _put(client, headers, other["chunks"][0], first_chunk, "?complete=true")
    small = (await again.get_json())["data"]["file"]
    assert _refcount(app, first_chunk) == 2
    content = await client.get(f"/api/mobile/files/{small['id']}/content", headers=headers)
    assert await content.get_data() == first_chunk


async def test_a_completing_put_sent_again_while_the_first_is_in_flight_makes_one_file(
    app: VaultApp, client: Any
) -> None:
    """A phone that retries a small file's PUT before the first answer came: each answer is that
    one file, or 409 once it exists; one version, one reference."""
    headers = await register(client)
    data = os.urandom(40 * KiB)
    planned = await init_upload(client, headers, data)
    answers: list[tuple[int, Any]] = []

    async def put() -> None:
        response = await _put(client, headers, planned["chunks"][0], data, "?complete=true")
        answers.append((response.status_code, await response.get_json()))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(put)
    made = {a["data"]["file"]["id"] for status, a in answers if status == 200}
    assert len(made) == 1, answers
    assert all(status == 200 or (status == 409 and a["error"]["code"] == "CONFLICT") for status, a in answers)
    listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
    files = (await listing.get_json())["data"]["files"]
    assert [(f["id"], f["version"]) for f in files] == [(made.pop(), 1)]
    assert _refcount(app, data) == 1


async def test_complete_on_a_put_waits_for_the_last_missing_chunk(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(3 * 64 * KiB)
    planned = await init_upload(client, headers, data)
    chunks = planned["chunks"]
    first = await _put(client, headers, chunks[2], data, "?complete=true")
    assert first.status_code == 200 and "file" not in (await first.get_json())["data"]
    listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
    assert (await listing.get_json())["data"]["files"] == []
    assert (await _put(client, headers, chunks[0], data)).status_code == 200
    last = await _put(client, headers, chunks[1], data, "?complete=1")
    entry = (await last.get_json())["data"]["file"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_racing_completing_puts_make_one_file_of_the_right_bytes(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(6 * 64 * KiB + 9)
    planned = await init_upload(client, headers, data)
    files: list[dict[str, Any]] = []

    async def put(chunk: dict[str, Any]) -> None:
        response = await _put(client, headers, chunk, data, "?complete=true")
        assert response.status_code == 200, await response.get_json()
        if "file" in (answer := (await response.get_json())["data"]):
            files.append(answer["file"])

    async with trio.open_nursery() as nursery:
        for chunk in planned["chunks"]:
            nursery.start_soon(put, chunk)
    assert files and {f["id"] for f in files} == {files[0]["id"]} and {f["version"] for f in files} == {1}
    assert files[0]["checksum"] == b3(data)
    content = await client.get(f"/api/mobile/files/{files[0]['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_complete_on_a_put_is_checked_against_inits_checksum(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(30 * KiB)
    wrong = await init_upload(client, headers, data, checksum=b3(b"something else"))
    put = await _put(client, headers, wrong["chunks"][0], data, "?complete=true")
    assert put.status_code == 422 and (await put.get_json())["error"]["code"] == "CHECKSUM_MISMATCH"
    listing = await client.get("/api/mobile/files?folder=/photos", headers=headers)
    assert (await listing.get_json())["data"]["files"] == []
    # With no checksum at init there is nothing to check the file against: refused, nothing kept.
    init = await client.post(
        "/api/mobile/upload/init",
        headers=headers,
        json={"files": [{"localId": "a", "name": "n.bin", "size": len(data), "folder": "/photos"}]},
    )
    unchecked = (await init.get_json())["data"]["files"][0]
    refused = await _put(client, headers, unchecked["chunks"][0], data, "?complete=true")
    assert refused.status_code == 400 and (await refused.get_json())["error"]["code"] == "VALIDATION_ERROR"
    state = await client.get(f"/api/mobile/upload/{unchecked['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["receivedCount"] == 0


async def test_another_user_cannot_complete_an_upload_with_a_put(client: Any) -> None:
    mine = await register(client)
    theirs = await register(client, email="mallory@example.com")
    data = os.urandom(20 * KiB)
    planned = await init_upload(client, mine, data)
    stolen = await _put(client, theirs, planned["chunks"][0], data, "?complete=true")
    assert stolen.status_code == 404
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=mine)
    answer = (await state.get_json())["data"]
    assert answer["status"] == "uploading" and answer["receivedCount"] == 0
