"""The trash: deleted files listed newest first and restorable until ``[files] trash_retention``
passed; then purged (references dropped, usage lowered, no journal entry) in bounded batches."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from tests.api_helpers import register, upload_file
from tests.conftest import running_app
from vault.app import VaultApp, create_app
from vault.chunks.ids import ChunkId
from vault.chunks.refs import refcount
from vault.clock import TrioClock
from vault.config import Config
from vault.files import journal, queries, trash
from vault.files.reclaim import reclaim_expired
from vault.files.records import FILES, TRASH, TRASH_BY_TIME
from vault.gc import collect_garbage
from vault.quota import get_usage

KiB = 1024
DAY = 86400.0


async def _json(response: Any) -> Any:
    return await response.get_json()


async def _user_id(app: VaultApp, headers: dict[str, str]) -> str:
    return (await app.node.authenticate(headers["Authorization"])).user_id


async def _trash(client: Any, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/mobile/trash{query}", headers=headers)
    assert response.status_code == 200, await _json(response)
    data: dict[str, Any] = (await _json(response))["data"]
    return data


async def _delete(client: Any, headers: dict[str, str], file_id: str) -> None:
    response = await client.delete(f"/api/mobile/files/{file_id}", headers=headers)
    assert response.status_code == 200


def _chunks_of(app: VaultApp, file_id: str) -> list[ChunkId]:
    with app.node.meta.read() as txn:
        record = txn.get(FILES, file_id.encode())
        assert record is not None
        return [ChunkId(c.chunk_id) for c in queries.manifest(txn, record).chunks]


def _refcounts(app: VaultApp, chunks: list[ChunkId]) -> list[int]:
    with app.node.meta.read() as txn:
        return [refcount(txn, c) for c in chunks]


def _used(app: VaultApp, user_id: str) -> int:
    with app.node.meta.read() as txn:
        return get_usage(txn, user_id).used


async def test_the_trash_lists_deleted_files_newest_first_a_page_at_a_time(client: Any) -> None:
    headers = await register(client)
    ids = []
    for i in range(5):
        entry = await upload_file(client, headers, f"file {i}".encode(), name=f"f{i}.txt", folder="/docs")
        ids.append(entry["id"])
        await trio.sleep(0.001)
    for file_id in ids:
        await _delete(client, headers, file_id)
        await trio.sleep(0.002)  # distinct deletion times
    whole = await _trash(client, headers)
    assert [f["id"] for f in whole["files"]] == ids[::-1]
    assert whole.get("hasMore", False) is False and "nextCursor" not in whole
    first = whole["files"][0]
    assert set(first) >= {"id", "name", "folder", "size", "mimeType", "modifiedAt", "checksum", "version", "deletedAt"}
    assert (first["name"], first["folder"], first["version"]) == ("f4.txt", "/docs", 1)
    assert first["deletedAt"].endswith("Z")

    seen: list[str] = []
    query = "?limit=2"
    for _ in range(5):
        page = await _trash(client, headers, query)
        seen += [f["id"] for f in page["files"]]
        if not page.get("hasMore"):
            break
        assert len(page["files"]) == 2
        query = f"?limit=2&cursor={page['nextCursor']}"
    assert seen == ids[::-1]
    for bad in ("?limit=0", "?limit=x", "?limit=99999", "?cursor=%%%", "?cursor=bm90LWhleA"):
        response = await client.get(f"/api/mobile/trash{bad}", headers=headers)
        assert response.status_code == 400, bad
        assert (await _json(response))["error"]["details"]["field"] in ("limit", "cursor")


async def test_restore_brings_a_file_back_with_a_restored_entry(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    data = os.urandom(70 * KiB)
    entry = await upload_file(client, headers, data, name="a.jpg", folder="/photos")
    await _delete(client, headers, entry["id"])
    response = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=headers)
    assert response.status_code == 200
    file = (await _json(response))["data"]["file"]
    assert (file["id"], file["name"], file["folder"], file["version"]) == (entry["id"], "a.jpg", "/photos", 2)
    assert (await _trash(client, headers))["files"] == []
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == data
    with app.node.meta.read() as txn:
        last = journal.since(txn, await _user_id(app, headers), 0)[-1]
        assert txn.count(TRASH) == 0 and txn.count(TRASH_BY_TIME) == 0
    assert (last.op, last.file_id, last.version, last.folder, last.name) == (
        "restored",
        entry["id"],
        2,
        "/photos",
        "a.jpg",
    )
    # A live file is not in the trash.
    again = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=headers)
    assert again.status_code == 404


async def test_restoring_onto_a_taken_name_keeps_both(client: Any) -> None:
    headers = await register(client)
    names = []
    for content in (b"first", b"second", b"third"):
        old = await upload_file(client, headers, content, name="report.pdf", folder="/docs")
        await _delete(client, headers, old["id"])
        names.append(old["id"])
    current = await upload_file(client, headers, b"current", name="report.pdf", folder="/docs")
    restored = []
    for file_id in names:
        response = await client.post(f"/api/mobile/trash/{file_id}/restore", headers=headers)
        restored.append((await _json(response))["data"]["file"]["name"])
    assert restored == ["report (restored 1).pdf", "report (restored 2).pdf", "report (restored 3).pdf"]
    listing = await _json(await client.get("/api/mobile/files?folder=/docs", headers=headers))
    assert sorted(f["name"] for f in listing["data"]["files"]) == sorted([*restored, "report.pdf"])
    assert current["name"] == "report.pdf"
    bare = await upload_file(client, headers, b"no ext", name="README", folder="/")
    await _delete(client, headers, bare["id"])
    await upload_file(client, headers, b"newer readme", name="README", folder="/")
    response = await client.post(f"/api/mobile/trash/{bare['id']}/restore", headers=headers)
    assert (await _json(response))["data"]["file"]["name"] == "README (restored 1)"


async def test_restoring_into_a_deleted_folder_recreates_it(client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, b"deep", name="d.txt", folder="/gone/deep")
    await client.delete("/api/mobile/folders?folder=/gone", headers=headers)
    root = await _json(await client.get("/api/mobile/files?folder=/", headers=headers))
    assert root["data"]["folders"] == []
    response = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=headers)
    assert (await _json(response))["data"]["file"]["folder"] == "/gone/deep"
    gone = await _json(await client.get("/api/mobile/files?folder=/gone", headers=headers))
    assert gone["data"]["folders"] == ["deep"]


async def test_trash_counts_in_usage_until_purged_after_its_retention(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    user_id = await _user_id(app, headers)
    data = os.urandom(130 * KiB)
    entry = await upload_file(client, headers, data, name="big.bin", folder="/")
    chunks = _chunks_of(app, entry["id"])
    await _delete(client, headers, entry["id"])
    deleted_at = app.node.clock.now()
    assert _used(app, user_id) == len(data)
    assert _refcounts(app, chunks) == [1] * len(chunks)
    head = len(_journal(app, user_id))
    retention = float(app.node.config.files.trash_retention)
    assert retention == 30 * DAY

    early = await reclaim_expired(
        app.node.meta, now=deleted_at + retention - 60, trash_retention=retention, version_retention=retention
    )
    assert (early.files, early.bytes) == (0, 0)
    assert len((await _trash(client, headers))["files"]) == 1

    due = await reclaim_expired(
        app.node.meta, now=deleted_at + retention + 1, trash_retention=retention, version_retention=retention
    )
    assert (due.files, due.bytes, due.released) == (1, len(data), len(chunks))
    assert (await _trash(client, headers))["files"] == []
    assert _used(app, user_id) == 0
    assert _refcounts(app, chunks) == [0] * len(chunks)
    assert len(_journal(app, user_id)) == head  # purging is not a change a client sees
    with app.node.meta.read() as txn:
        assert txn.get(FILES, entry["id"].encode()) is None
    gone = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=headers)
    assert gone.status_code == 404
    # Unreferenced now: the garbage collector reclaims the chunks.
    report = await collect_garbage(app.node.meta, app.node.chunks, now=deleted_at + retention + 2, delete=True)
    assert report.deleted == len(chunks)


def _journal(app: VaultApp, user_id: str) -> list[journal.JournalEntry]:
    with app.node.meta.read() as txn:
        return journal.since(txn, user_id, 0)


async def test_the_purge_works_in_bounded_batches_and_skips_restored_files(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    user_id = await _user_id(app, headers)
    ids = [(await upload_file(client, headers, f"n{i}".encode(), name=f"{i}.txt", folder="/"))["id"] for i in range(7)]
    for file_id in ids:
        await _delete(client, headers, file_id)
    # A stale expiry entry (the file came back): skipped, and only its index entry goes.
    with app.node.meta.read() as txn:
        stale = trash.due(txn, app.node.clock.now() + 1, limit=100)
    assert len(stale) == 7
    await client.post(f"/api/mobile/trash/{ids[0]}/restore", headers=headers)

    def put_back(txn: Any) -> None:
        txn.put_bytes(TRASH_BY_TIME, stale[0].key, b"")

    await app.node.meta.write(put_back)
    later = app.node.clock.now() + 31 * DAY
    report = await reclaim_expired(
        app.node.meta, now=later, trash_retention=30 * DAY, version_retention=30 * DAY, batch=2
    )
    assert report.files == 6
    with app.node.meta.read() as txn:
        assert txn.count(TRASH_BY_TIME) == 0 and txn.count(TRASH) == 0
        assert queries.get_file(txn, user_id, ids[0]).deleted_at is None
    assert _used(app, user_id) == len(b"n0")


async def test_deleted_files_still_count_against_the_quota(make_config: Callable[..., Config]) -> None:
    app = create_app(make_config(plans={"free": {"quota": "200KiB"}}), clock=TrioClock(), periodic=False)
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        entry = await upload_file(client, headers, os.urandom(150 * KiB), name="a.bin", folder="/")
        await _delete(client, headers, entry["id"])
        body = {"files": [{"localId": "x", "name": "b.bin", "size": 100 * KiB, "folder": "/"}]}
        over = await client.post("/api/mobile/upload/init", headers=headers, json=body)
        assert over.status_code == 507
        await reclaim_expired(
            app.node.meta, now=app.node.clock.now() + 31 * DAY, trash_retention=30 * DAY, version_retention=30 * DAY
        )
        fits = await client.post("/api/mobile/upload/init", headers=headers, json=body)
        assert fits.status_code == 200


async def test_the_node_reclaims_on_its_own_every_reclaim_interval(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(files={"trash_retention": "2h", "reclaim_interval": "30m"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        entry = await upload_file(client, headers, b"short-lived", name="a.txt", folder="/")
        await _delete(client, headers, entry["id"])
        await trio.sleep(3600)
        assert len((await _trash(client, headers))["files"]) == 1  # within its retention
        await trio.sleep(2 * 3600)
        assert (await _trash(client, headers))["files"] == []
        assert _used(app, await _user_id(app, headers)) == 0


async def test_another_users_trash_is_not_found_and_unchanged(app: VaultApp, client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    entry = await upload_file(client, alice, b"alice's", name="a.txt", folder="/")
    await _delete(client, alice, entry["id"])
    assert (await _trash(client, bob))["files"] == []
    stolen = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=bob)
    assert stolen.status_code == 404
    assert (await _json(stolen))["error"]["code"] == "NOT_FOUND"
    assert [f["id"] for f in (await _trash(client, alice))["files"]] == [entry["id"]]
    assert (await client.get(f"/api/mobile/files/{entry['id']}", headers=bob)).status_code == 404
    with app.node.meta.read() as txn:
        assert journal.since(txn, await _user_id(app, bob), 0) == []
