"""One-request uploads of small files (``POST /api/mobile/upload/file``): a file in one round trip
and one metadata commit, that behaves afterwards exactly as one made by ``upload/complete``."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import trio

from tests.api_helpers import b3, register, upload_file
from tests.auth_support import register_body
from tests.process_node import free_port, serve, wait_healthy
from tests.test_downloads import _corrupt_one_chunk
from vault.app import VaultApp, create_app
from vault.chunks.refs import REFS_TABLE
from vault.clock import TrioClock
from vault.config import Config
from vault.fsck import check_storage
from vault.gc import collect_garbage
from vault.lmdb_writer import LmdbWriter
from vault.notifications.records import NOTIFICATIONS
from vault.quota import USAGE, Usage

KiB = 1024
ONE = "/api/mobile/upload/file"


@pytest.fixture
def config(make_config: Callable[..., Config], backend_name: str) -> Config:
    return make_config(storage={"backend": backend_name})


def file_url(data: bytes, **params: str) -> str:
    """The upload URL for ``data``: a photo in /photos unless ``params`` say otherwise."""
    query = {"name": "photo.jpg", "folder": "/photos", "checksum": b3(data), **params}
    return ONE + "?" + urlencode(query, quote_via=quote)


async def post_file(client: Any, headers: dict[str, str], data: bytes, **params: str) -> tuple[int, dict[str, Any]]:
    # Quart's test client sends no Content-Length of its own; every HTTP client does.
    sized = {**headers, "Content-Length": str(len(data))}
    response = await client.post(file_url(data, **params), headers=sized, data=data)
    return response.status_code, await response.get_json()


async def content_of(client: Any, headers: dict[str, str], file_id: str) -> bytes:
    response = await client.get(f"/api/mobile/files/{file_id}/content", headers=headers)
    assert response.status_code == 200, response.status_code
    data: bytes = await response.get_data()
    return data


async def listing(client: Any, headers: dict[str, str], folder: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/mobile/files?folder={quote(folder)}", headers=headers)
    if response.status_code == 404:
        return []
    files: list[dict[str, Any]] = (await response.get_json())["data"]["files"]
    return files


def references(app: VaultApp) -> list[bytes]:
    with app.node.meta.read() as txn:
        return [key for key, _ in txn.scan_bytes(REFS_TABLE)]


def usages(app: VaultApp) -> list[Usage]:
    with app.node.meta.read() as txn:
        return [usage for _, usage in txn.scan(USAGE)]


@asynccontextmanager
async def opened(config: Config) -> AsyncIterator[VaultApp]:
    """An app on a test's own config, its node open for the block."""
    application = create_app(config, clock=TrioClock())
    async with application.test_app():
        yield application


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["blake3", "sha256"])
async def test_a_file_uploaded_in_one_request_downloads_byte_identical_with_its_checksum(
    app: VaultApp, client: Any, algo: str
) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB + 7)
    checksum = b3(data) if algo == "blake3" else sha256(data)
    status, body = await post_file(
        client, headers, data, checksum=checksum, lastModified="2024-01-20T15:30:00Z", localId="cam-1"
    )
    assert status == 201, body
    assert body["success"] is True and body["data"]["status"] == "created" and body["data"]["localId"] == "cam-1"
    entry = body["data"]["file"]
    assert (entry["name"], entry["folder"], entry["size"], entry["version"]) == ("photo.jpg", "/photos", len(data), 1)
    assert entry["checksum"] == b3(data) and entry["mimeType"] == "image/jpeg"  # guessed from the name
    assert entry["modifiedAt"] == "2024-01-20T15:30:00Z"
    assert entry.get("sha256") == (sha256(data) if algo == "sha256" else None)
    # The same file object as every other endpoint, complete's included.
    got = await client.get(f"/api/mobile/files/{entry['id']}", headers=headers)
    assert (await got.get_json())["data"]["file"] == entry
    chunked = await upload_file(client, headers, os.urandom(100), name="other.jpg")
    assert set(chunked) | {"sha256"} == set(entry) | {"sha256"}
    response = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await response.get_data() == data
    assert response.headers["ETag"].strip('"') == b3(data)
    assert [f["name"] for f in await listing(client, headers, "/photos")] == ["other.jpg", "photo.jpg"]
    (usage,) = usages(app)
    assert usage.used == len(data) + 100 and usage.reserved == 0


async def test_a_file_of_several_chunks_is_stored_as_chunks_and_reads_back_whole(
    make_config: Callable[..., Config], backend_name: str
) -> None:
    config = make_config(storage={"backend": backend_name}, uploads={"default_chunk_size": "64KiB"})
    async with opened(config) as app:
        client = app.test_client()
        headers = await register(client)
        for size in (3 * 64 * KiB, 3 * 64 * KiB + 1, 0):
            data = os.urandom(size)
            status, body = await post_file(client, headers, data, name=f"f{size}.bin")
            assert status == 201, body
            assert body["data"]["file"]["mimeType"] == "application/octet-stream"
            assert await content_of(client, headers, body["data"]["file"]["id"]) == data
        assert (await app.node.chunks.stats()).chunks == 3 + 4  # the empty file holds no chunk
        report = await check_storage(app.node.meta, app.node.chunks)
        assert report.problems == [] and report.referenced == 7


async def test_the_answer_names_the_new_version_and_the_same_content_again_changes_nothing(
    app: VaultApp, client: Any
) -> None:
    headers = await register(client)
    first, second = os.urandom(10 * KiB), os.urandom(12 * KiB)
    status, created = await post_file(client, headers, first)
    assert (status, created["data"]["status"]) == (201, "created")
    status, updated = await post_file(client, headers, second)
    assert (status, updated["data"]["status"]) == (201, "updated")
    assert updated["data"]["file"]["id"] == created["data"]["file"]["id"] and updated["data"]["file"]["version"] == 2
    status, again = await post_file(client, headers, second)
    assert (status, again["data"]["status"]) == (200, "exists")
    assert again["data"]["file"] == updated["data"]["file"]
    versions = await client.get(f"/api/mobile/files/{created['data']['file']['id']}/versions", headers=headers)
    assert [v["checksum"] for v in (await versions.get_json())["data"]["versions"]] == [b3(second), b3(first)]
    (usage,) = usages(app)
    assert usage.used == len(first) + len(second)  # the kept version counts, as after complete


# -- refused: checksum, size, quota --------------------------------------------------------------


@pytest.mark.parametrize(("size", "algo"), [(40 * KiB, "blake3"), (40 * KiB, "sha256"), (200 * KiB, "blake3")])
async def test_a_wrong_checksum_is_a_mismatch_with_nothing_created_and_no_reference_left(
    make_config: Callable[..., Config], backend_name: str, size: int, algo: str
) -> None:
    config = make_config(storage={"backend": backend_name}, uploads={"default_chunk_size": "64KiB"})
    async with opened(config) as app:
        client = app.test_client()
        headers = await register(client)
        data, claimed = os.urandom(size), os.urandom(size)
        digest = b3 if algo == "blake3" else sha256
        status, body = await post_file(client, headers, data, checksum=digest(claimed))
        assert status == 422 and body["error"]["code"] == "CHECKSUM_MISMATCH", body
        assert body["error"]["details"] == {"expected": digest(claimed), "actual": digest(data)}
        assert await listing(client, headers, "/photos") == []
        assert references(app) == []
        assert all((u.used, u.reserved) == (0, 0) for u in usages(app))
        stored = (await app.node.chunks.stats()).chunks
        # One chunk is checked before its commit: nothing stored. Of a larger file, the chunks
        # before the last are stored unreferenced, and the collector takes them.
        assert stored == (0 if size <= 64 * KiB else 3)
        report = await collect_garbage(
            app.node.meta, app.node.chunks, now=app.node.clock.now(), delete=True, guard=app.node.ref_guard.sweeping
        )
        assert report.deleted == stored and (await app.node.chunks.stats()).chunks == 0
        assert (await check_storage(app.node.meta, app.node.chunks)).problems == []
        with app.node.meta.read() as txn:
            found = [n for _, n in txn.scan(NOTIFICATIONS) if n.category == "uploads"]
        assert [(n.title, n.data) for n in found] == [
            ("Photo upload failed", {"name": "photo.jpg", "folder": "/photos", "reason": "checksum mismatch"})
        ]


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    route, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def _refused_before_the_body(
    app: VaultApp, path: str, headers: list[tuple[bytes, bytes]], size: int
) -> tuple[int, dict[str, Any]]:
    """POST ``size`` bytes straight into the app; the answer must start before a byte was read."""
    import msgspec

    reads = 0
    read_at_answer: int | None = None
    messages: list[dict[str, Any]] = []
    left = size

    async def receive() -> dict[str, Any]:
        nonlocal reads, left
        reads += 1
        piece = min(left, 64 * KiB)
        left -= piece
        return {"type": "http.request", "body": b"\0" * piece, "more_body": left > 0}

    async def send(message: dict[str, Any]) -> None:
        nonlocal read_at_answer
        if message["type"] == "http.response.start":
            read_at_answer = reads
        messages.append(message)

    with trio.fail_after(60):
        await app(_scope(path, headers), receive, send)
    assert read_at_answer == 0, f"{read_at_answer} body pieces were read before the answer"
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return messages[0]["status"], msgspec.json.decode(body)


def _auth(headers: dict[str, str], *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", headers["Authorization"].encode()), *extra]


async def test_over_the_size_limit_is_413_before_the_body_is_read(make_config: Callable[..., Config]) -> None:
    async with opened(make_config(uploads={"max_single_request_size": "1MiB"})) as app:
        client = app.test_client()
        headers = await register(client)
        size = 1024 * KiB + 1
        path = file_url(b"", checksum=b3(b"\0" * size))
        status, body = await _refused_before_the_body(
            app, path, _auth(headers, (b"content-length", str(size).encode())), size
        )
        assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert body["error"]["details"] == {"limit": 1024 * KiB, "size": size}
        # At the limit it is taken.
        status, _ = await post_file(client, headers, os.urandom(1024 * KiB))
        assert status == 201
        init = await client.post(
            "/api/mobile/upload/init",
            headers=headers,
            json={"files": [{"localId": "1", "name": "big.bin", "size": 5}]},
        )
        assert (await init.get_json())["data"]["uploadOptions"]["maxSingleRequestSize"] == 1024 * KiB


async def test_a_body_without_content_length_is_refused_naming_it(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    path = file_url(b"abc")
    status, body = await _refused_before_the_body(app, path, _auth(headers, (b"transfer-encoding", b"chunked")), 3)
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"] == {"field": "Content-Length"}


async def test_over_quota_is_refused_before_the_body_is_read(make_config: Callable[..., Config]) -> None:
    # Bodies above 1 MiB: a smaller refused body is read (and dropped) after the answer is made,
    # so that the connection can serve the next request.
    async with opened(make_config(plans={"free": {"quota": "2MiB"}})) as app:
        client = app.test_client()
        headers = await register(client)
        status, _ = await post_file(client, headers, os.urandom(1024 * KiB), name="first.jpg")
        assert status == 201
        size = 1536 * KiB
        path = file_url(b"", name="second.jpg", checksum=b3(b"\0" * size))
        status, body = await _refused_before_the_body(
            app, path, _auth(headers, (b"content-length", str(size).encode())), size
        )
        assert status == 507 and body["error"]["code"] == "STORAGE_QUOTA_EXCEEDED"
        assert body["error"]["details"] == {"used": 1024 * KiB, "quota": 2048 * KiB, "requested": size}
        assert [f["name"] for f in await listing(client, headers, "/photos")] == ["first.jpg"]


# -- deduplication and repair ----------------------------------------------------------------------


async def test_the_same_content_twice_and_as_an_earlier_chunked_upload_is_stored_once(
    app: VaultApp, client: Any
) -> None:
    headers = await register(client)
    data = os.urandom(64 * KiB)
    chunked = await upload_file(client, headers, data, name="chunked.jpg", chunk_size=64 * KiB)
    assert (await app.node.chunks.stats()).chunks == 1
    status, one = await post_file(client, headers, data, name="a.jpg")
    assert (status, one["data"]["status"]) == (201, "created")
    status, two = await post_file(client, headers, data, name="b.jpg", folder="/elsewhere")
    assert (status, two["data"]["status"]) == (201, "created")
    ids = {chunked["id"], one["data"]["file"]["id"], two["data"]["file"]["id"]}
    assert len(ids) == 3  # three files at three paths ...
    assert (await app.node.chunks.stats()).chunks == 1  # ... holding one stored chunk
    for file_id in ids:
        assert await content_of(client, headers, file_id) == data
    with app.node.meta.read() as txn:
        from vault.chunks.refs import refcount

        (chunk_id,) = [key for key, _ in txn.scan_bytes(REFS_TABLE)]
        assert refcount(txn, chunk_id) == 3  # one reference per file, as after complete
    (usage,) = usages(app)
    assert usage.used == 3 * len(data)


@pytest.mark.parametrize("who", ["another user", "the owner again"])
async def test_a_good_upload_in_one_request_repairs_a_rotted_stored_chunk(
    app: VaultApp, client: Any, config: Config, backend_name: str, who: str
) -> None:
    marker = b"ROT-MARKER-0123456789"
    data = marker + os.urandom(64 * KiB - len(marker))
    alice = await register(client, email="alice@example.com")
    status, first = await post_file(client, alice, data)
    assert status == 201
    _corrupt_one_chunk(Path(config.storage.data_dir), backend_name, marker)
    url = f"/api/mobile/files/{first['data']['file']['id']}/content"
    assert (await client.get(url, headers=alice)).status_code == 500  # never the rotted bytes
    sender = await register(client, email="bob@example.com") if who == "another user" else alice
    status, second = await post_file(client, sender, data)
    assert (status, second["data"]["status"]) == ((201, "created") if who == "another user" else (200, "exists"))
    assert await content_of(client, sender, second["data"]["file"]["id"]) == data
    repaired = await client.get(url, headers=alice)
    assert repaired.status_code == 200 and await repaired.get_data() == data
    metrics = (await (await client.get("/metrics")).get_data()).decode()
    assert "vault_chunk_repairs_total 1.0" in metrics


# -- who and what --------------------------------------------------------------------------------


async def test_another_users_token_can_neither_see_nor_overwrite(app: VaultApp, client: Any) -> None:
    alice = await register(client, email="alice@example.com", device_id="a1")
    data = os.urandom(20 * KiB)
    status, hers = await post_file(client, alice, data, name="kept.jpg")
    assert status == 201
    file_id = hers["data"]["file"]["id"]
    bob = await register(client, email="bob@example.com", device_id="b1")
    assert (await client.get(f"/api/mobile/files/{file_id}", headers=bob)).status_code == 404
    assert (await client.get(f"/api/mobile/files/{file_id}/content", headers=bob)).status_code == 404
    # Her checksum with other bytes proves nothing: refused, and nothing of anyone's changes.
    status, body = await post_file(client, bob, os.urandom(20 * KiB), name="kept.jpg", checksum=b3(data))
    assert status == 422 and body["error"]["code"] == "CHECKSUM_MISMATCH"
    assert await listing(client, bob, "/photos") == []
    # The same folder and name, his own bytes or even hers: a file of his own.
    for content in (os.urandom(30 * KiB), data):
        status, his = await post_file(client, bob, content, name="kept.jpg")
        assert status == 201 and his["data"]["file"]["id"] != file_id
    entry = (await (await client.get(f"/api/mobile/files/{file_id}", headers=alice)).get_json())["data"]["file"]
    assert entry == hers["data"]["file"] and await content_of(client, alice, file_id) == data
    assert [f["id"] for f in await listing(client, alice, "/photos")] == [file_id]
    for token in ({}, {"Authorization": "Bearer not-a-token"}):
        status, body = await post_file(client, token, os.urandom(10))
        assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


HOSTILE_NAMES = [
    "",
    ".",
    "..",
    "../etc",
    "a/b",
    "x" * 256,
    "nul\x00.jpg",
    "line\nbreak.jpg",
    "invoice\u202egpj.exe",
    "zero\u200bwidth.jpg",
    "bom\ufeff.txt",
    "c1\x85next",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:20] for n in HOSTILE_NAMES])
async def test_hostile_names_are_validation_errors_and_store_nothing(app: VaultApp, client: Any, name: str) -> None:
    headers = await register(client)
    status, body = await post_file(client, headers, b"data", name=name)
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR", body
    assert body["error"]["details"] == {"field": "name"}
    assert (await app.node.chunks.stats()).chunks == 0 and references(app) == []


HOSTILE_BODY = b"some bytes"


def _query(tail: str = "", **fields: str | None) -> str:
    """The upload's query for ``HOSTILE_BODY`` with ``fields`` replaced (``None``: left out)."""
    query = {"name": "photo.jpg", "folder": "/photos", "checksum": b3(HOSTILE_BODY)} | fields
    return urlencode({k: v for k, v in query.items() if v is not None}, quote_via=quote) + tail


HOSTILE_QUERIES = [
    (_query(folder="relative"), "folder"),
    (_query(folder="/a/../b"), "folder"),
    (_query(checksum="md5:0123"), "checksum"),
    (_query(checksum=""), "checksum"),
    (_query(checksum=None), "checksum"),
    (_query(priority="urgent"), "priority"),
    (_query(lastModified="yesterday"), "lastModified"),
    (_query(mimeType="image/jpeg\n"), "mimeType"),
    (_query(localId="x" * 300), "localId"),
    (_query(owner="bob"), "owner"),  # no such field: refused, not ignored
    (_query("&name=again.jpg"), "name"),  # given twice
    (_query("&name=%ff.jpg", name=None), None),  # not UTF-8
]


@pytest.mark.parametrize(
    ("query", "field"), HOSTILE_QUERIES, ids=[f"{f}-{n}" for n, (_, f) in enumerate(HOSTILE_QUERIES)]
)
async def test_hostile_query_parameters_are_validation_errors_and_store_nothing(
    app: VaultApp, client: Any, query: str, field: str | None
) -> None:
    headers = await register(client)
    sized = {**headers, "Content-Length": str(len(HOSTILE_BODY))}
    response = await client.post(f"{ONE}?{query}", headers=sized, data=HOSTILE_BODY)
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["code"] == "VALIDATION_ERROR", body
    if field is not None:
        assert body["error"]["details"]["field"] == field
    assert (await app.node.chunks.stats()).chunks == 0 and references(app) == []
    assert (await client.get("/api/health")).status_code == 200


# -- at once, and durable --------------------------------------------------------------------------


async def test_twenty_uploads_at_once_some_to_one_name_all_land_with_exactly_their_bytes(
    app: VaultApp, client: Any
) -> None:
    headers = await register(client)
    own = [(f"f{i:02d}.jpg", os.urandom(8 * KiB + i)) for i in range(15)]
    shared = [("same.jpg", os.urandom(9 * KiB + i)) for i in range(5)]
    answers: dict[int, dict[str, Any]] = {}

    async def one(i: int, name: str, data: bytes) -> None:
        status, body = await post_file(client, headers, data, name=name)
        assert status == 201, body
        answers[i] = body["data"]

    async with trio.open_nursery() as nursery:
        for i, (name, data) in enumerate(own + shared):
            nursery.start_soon(one, i, name, data)
    for i, (_, data) in enumerate(own + shared):
        assert answers[i]["file"]["checksum"] == b3(data)
    for i, (name, data) in enumerate(own):
        assert answers[i]["status"] == "created" and answers[i]["file"]["name"] == name
        assert await content_of(client, headers, answers[i]["file"]["id"]) == data
    mine = [answers[i] for i in range(len(own), len(own) + len(shared))]
    assert len({a["file"]["id"] for a in mine}) == 1  # one file at that name ...
    assert sorted(a["file"]["version"] for a in mine) == [1, 2, 3, 4, 5]  # ... five versions of it
    assert Counter(a["status"] for a in mine) == {"created": 1, "updated": 4}
    file_id = mine[0]["file"]["id"]
    versions = (await (await client.get(f"/api/mobile/files/{file_id}/versions", headers=headers)).get_json())["data"]
    assert {v["checksum"] for v in versions["versions"]} == {b3(data) for _, data in shared}
    newest = max(mine, key=lambda a: a["file"]["version"])
    assert await content_of(client, headers, file_id) == next(
        d for _, d in shared if b3(d) == newest["file"]["checksum"]
    )
    assert len(await listing(client, headers, "/photos")) == 16
    assert (await check_storage(app.node.meta, app.node.chunks)).problems == []


async def test_one_upload_is_one_metadata_commit_and_uploads_at_once_share_commits(
    app: VaultApp, client: Any, backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await register(client)
    assert (await post_file(client, headers, os.urandom(100), name="warm.jpg"))[0] == 201
    commits: list[tuple[str, int]] = []
    commit_batch = LmdbWriter._commit_batch

    def counting(self: LmdbWriter, env: Any, batch: list[Any]) -> None:
        commits.append((self.label, len(batch)))
        commit_batch(self, env, batch)

    monkeypatch.setattr(LmdbWriter, "_commit_batch", counting)
    status, _ = await post_file(client, headers, os.urandom(64 * KiB), name="one.jpg")
    assert status == 201
    # The chunk store's own durable put (the fs backend's is a file and its fsync, no commit).
    chunk_put = [("chunk store", 1)] if backend_name == "lmdb" else []
    assert sorted(commits) == sorted([("metadata store", 1), *chunk_put])
    # Eight at once, the metadata writer busy (held) until all eight are waiting for it: nothing
    # on the path serialises them, so they commit as one transaction.
    commits.clear()
    held = threading.Event()
    queued = 0
    enqueue = LmdbWriter.enqueue

    def counting_enqueue(self: LmdbWriter, fn: Any, **kw: Any) -> Any:
        nonlocal queued
        pending = enqueue(self, fn, **kw)
        if self.label == "metadata store":
            queued += 1
            if queued == 1 + 8:
                held.set()
        return pending

    monkeypatch.setattr(LmdbWriter, "enqueue", counting_enqueue)

    async def one(i: int) -> None:
        status, body = await post_file(client, headers, os.urandom(64 * KiB), name=f"at-once-{i}.jpg")
        assert status == 201, body

    async with trio.open_nursery() as nursery:
        nursery.start_soon(app.node.meta.write, lambda txn: held.wait(60))
        for i in range(8):
            nursery.start_soon(one, i)
    assert held.is_set()
    assert [n for label, n in commits if label == "metadata store"] == [1, 8]
    assert len(await listing(client, headers, "/photos")) == 10


async def test_an_acknowledged_upload_survives_kill_9(tmp_path: Path, backend_name: str) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "vault.toml"
    config.write_text(f'[storage]\nbackend = "{backend_name}"\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = os.urandom(300 * KiB + 11)
    with _node(config, data_dir, port) as proc:
        await wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as http:
            signed = (await http.post("/api/mobile/auth/register", json=register_body("a@example.com"))).json()
            headers = {"Authorization": f"Bearer {signed['tokens']['accessToken']}"}
            answer = await http.post(file_url(data), headers=headers, content=data)
            assert answer.status_code == 201, answer.text
            # And one planned by init and completed by its chunk PUT (?complete=true).
            other = os.urandom(200 * KiB + 3)
            init = await http.post(
                "/api/mobile/upload/init",
                headers=headers,
                json={"files": [{"localId": "b", "name": "b.jpg", "size": len(other), "checksum": b3(other)}]},
            )
            url = init.json()["data"]["files"][0]["chunks"][0]["uploadUrl"]
            completed = await http.put(url, params={"complete": "true"}, headers=headers, content=other)
            assert completed.status_code == 200 and "file" in completed.json()["data"], completed.text
        os.kill(proc.pid, signal.SIGKILL)  # at once after the acknowledgements
        proc.wait(timeout=30)
    with _node(config, data_dir, port) as proc:
        await wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as http:
            file_id = answer.json()["data"]["file"]["id"]
            entry = (await http.get(f"/api/mobile/files/{file_id}", headers=headers)).json()["data"]["file"]
            assert entry["checksum"] == b3(data)
            content = await http.get(f"/api/mobile/files/{file_id}/content", headers=headers)
            assert content.status_code == 200 and content.content == data
            second = completed.json()["data"]["file"]["id"]
            content = await http.get(f"/api/mobile/files/{second}/content", headers=headers)
            assert content.status_code == 200 and content.content == other
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    command = [sys.executable, "-m", "vault.cli", "fsck", "--config", str(config), "--data-dir", str(data_dir)]
    fsck = await trio.to_thread.run_sync(
        functools.partial(subprocess.run, command, capture_output=True, text=True, timeout=120)
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@contextmanager
def _node(config: Path, data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = serve(config, data_dir, port)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


# -- what others see -------------------------------------------------------------------------------


async def test_the_sync_journal_and_the_uploads_notification_show_the_file(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    token = (await (await client.get("/api/mobile/sync/status", headers=headers)).get_json())["data"]["nextSyncToken"]
    status, created = await post_file(client, headers, os.urandom(5 * KiB), name="new.jpg")
    assert status == 201
    delta = await client.get(f"/api/mobile/sync/status?syncToken={quote(token)}", headers=headers)
    changes = (await delta.get_json())["data"]["changes"]
    assert changes["created"] == [created["data"]["file"]] and changes["updated"] == []
    with app.node.meta.read() as txn:
        found = [n for _, n in txn.scan(NOTIFICATIONS) if n.category == "uploads"]
    assert [(n.title, n.data) for n in found] == [
        ("Photo upload completed", {"fileId": created["data"]["file"]["id"], "name": "new.jpg", "folder": "/photos"})
    ]


async def test_the_openapi_document_describes_the_one_request_upload(client: Any) -> None:
    doc = await (await client.get("/api/mobile/openapi.json")).get_json()
    op = doc["paths"][ONE]["post"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"name", "folder", "checksum", "mimeType", "lastModified", "localId", "priority"}
    assert all(p["in"] == "query" for p in params.values())
    assert {n for n, p in params.items() if p["required"]} == {"name", "checksum"}
    assert sorted(params["priority"]["schema"]["enum"]) == ["high", "low", "normal"]
    assert params["name"]["schema"]["maxLength"] == 255
    body = op["requestBody"]
    assert "application/octet-stream" in body["content"] and str(16 * 1024 * KiB) in body["description"]
    assert {"201", "200", "400", "413", "422", "507", "default"} <= set(op["responses"])
    answer = op["responses"]["201"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert answer == {"$ref": "#/components/schemas/FileUploadResponse"}
    assert op["security"] == [{"bearer": []}]
