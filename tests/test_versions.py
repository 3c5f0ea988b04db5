"""Versions: a new version keeps the content it replaces for ``[files] version_retention`` (its
references and usage with it), lists it, and can make it current again."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.api_helpers import register, upload_file
from vault import errors
from vault.app import VaultApp, create_app
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref, refcount
from vault.clock import TrioClock
from vault.config import Config
from vault.files import journal, queries, versions
from vault.files.changes import ChangeTxn, FileChanges, PutContent, RestoreVersion
from vault.files.feed import ChangeFeed
from vault.files.reclaim import reclaim_expired
from vault.files.records import FILES, VERSION_MANIFESTS, VERSIONS, VERSIONS_BY_TIME, ChunkRef
from vault.meta import MetaStore
from vault.quota import get_usage

KiB = 1024
DAY = 86400.0
USER = "user_a"


def _chunk(n: int) -> ChunkId:
    return ChunkId(bytes([n]) * 32)


async def _put(changes: FileChanges, n: int, size: int, *, now: float, quota: int = 0) -> str:
    content = PutContent(
        folder="/",
        name="doc.txt",
        size=size,
        mime_type="text/plain",
        blake3=_chunk(n).hex(),
        chunks=[ChunkRef(_chunk(n), size)],
    )

    def write(change: ChangeTxn) -> str:
        incref(change.txn, [_chunk(n)])
        applied = change.apply(content, user_id=USER, device_id="d", quota=quota)
        assert applied.file is not None
        return applied.file.id

    return await changes.write(write, now=now)


async def test_a_new_version_keeps_the_old_content_referenced_and_counted(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    file_id = await _put(changes, 1, 10, now=1000.0)
    await _put(changes, 2, 20, now=2000.0)
    with meta.read() as txn:
        assert (refcount(txn, _chunk(1)), refcount(txn, _chunk(2))) == (1, 1)
        assert get_usage(txn, USER).used == 30
        [kept] = versions.history(txn, file_id)
        assert (kept.version, kept.size, kept.blake3, kept.replaced_at) == (1, 10, _chunk(1).hex(), 2000.0)
        assert queries.get_file(txn, USER, file_id).version == 2


async def test_a_new_versions_quota_check_counts_the_kept_version(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, 1, 60, now=1000.0, quota=100)
    with pytest.raises(errors.StorageQuotaExceeded) as caught:
        await _put(changes, 2, 50, now=2000.0, quota=100)  # 60 kept + 50 new > 100
    assert caught.value.details == {"used": 60, "quota": 100, "requested": 50}
    await _put(changes, 3, 40, now=3000.0, quota=100)  # 60 + 40 fits
    with meta.read() as txn:
        assert get_usage(txn, USER).used == 100


async def test_restoring_a_version_swaps_contents_and_keeps_usage(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    file_id = await _put(changes, 1, 10, now=1000.0)
    await _put(changes, 2, 20, now=2000.0)
    applied = await changes.write(
        lambda c: c.apply(RestoreVersion(file_id=file_id, version=1), user_id=USER, device_id="d"), now=3000.0
    )
    assert applied.file is not None
    assert (applied.file.version, applied.file.size, applied.file.blake3) == (3, 10, _chunk(1).hex())
    assert (applied.entry.op, applied.entry.version, applied.entry.size) == ("updated", 3, 10)
    with meta.read() as txn:
        record = queries.get_file(txn, USER, file_id)
        assert [ChunkId(c.chunk_id) for c in queries.manifest(txn, record).chunks] == [_chunk(1)]
        assert [(v.version, v.size) for v in versions.history(txn, file_id)] == [(2, 20)]
        assert (refcount(txn, _chunk(1)), refcount(txn, _chunk(2))) == (1, 1)
        assert get_usage(txn, USER).used == 30
    with pytest.raises(errors.NotFound):
        await changes.write(
            lambda c: c.apply(RestoreVersion(file_id=file_id, version=1), user_id=USER, device_id="d"), now=4000.0
        )


# -- over the API --------------------------------------------------------------------------------


async def _json(response: Any) -> Any:
    return await response.get_json()


async def _user_id(app: VaultApp, headers: dict[str, str]) -> str:
    return (await app.node.authenticate(headers["Authorization"])).user_id


async def _versions(client: Any, headers: dict[str, str], file_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/mobile/files/{file_id}/versions", headers=headers)
    assert response.status_code == 200, await _json(response)
    found: list[dict[str, Any]] = (await _json(response))["data"]["versions"]
    return found


async def test_versions_are_listed_newest_first_and_restored_as_a_new_version(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    first, second = os.urandom(70 * KiB), os.urandom(90 * KiB)
    entry = await upload_file(client, headers, first, name="doc.bin", folder="/")
    await upload_file(client, headers, second, name="doc.bin", folder="/")
    listed = await _versions(client, headers, entry["id"])
    assert [(v["version"], v["size"], v["current"]) for v in listed] == [(2, len(second), True), (1, len(first), False)]
    assert listed[1]["checksum"] == entry["checksum"]
    assert set(listed[0]) == {"version", "size", "checksum", "modifiedAt", "current"}

    response = await client.post(f"/api/mobile/files/{entry['id']}/versions/1/restore", headers=headers)
    assert response.status_code == 200
    file = (await _json(response))["data"]["file"]
    assert (file["id"], file["version"], file["size"], file["checksum"]) == (
        entry["id"],
        3,
        len(first),
        entry["checksum"],
    )
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == first
    listed = await _versions(client, headers, entry["id"])
    assert [(v["version"], v["size"], v["current"]) for v in listed] == [(3, len(first), True), (2, len(second), False)]
    with app.node.meta.read() as txn:
        last = journal.since(txn, await _user_id(app, headers), 0)[-1]
    assert (last.op, last.version, last.checksum, last.size) == ("updated", 3, entry["checksum"], len(first))

    same = await client.post(f"/api/mobile/files/{entry['id']}/versions/3/restore", headers=headers)
    assert (await _json(same))["data"]["file"]["version"] == 3  # already current: nothing changes
    gone = await client.post(f"/api/mobile/files/{entry['id']}/versions/1/restore", headers=headers)
    assert gone.status_code == 404  # its content is the current one now
    for bad in ("0", "x", "-1", "١"):
        response = await client.post(f"/api/mobile/files/{entry['id']}/versions/{bad}/restore", headers=headers)
        assert response.status_code == 400, bad
        assert (await _json(response))["error"]["details"]["field"] == "version"


async def test_old_versions_are_purged_after_their_retention(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    user_id = await _user_id(app, headers)
    old, new = os.urandom(70 * KiB), os.urandom(80 * KiB)
    entry = await upload_file(client, headers, old, name="doc.bin", folder="/")
    with app.node.meta.read() as txn:
        record = txn.get(FILES, entry["id"].encode())
        assert record is not None
        old_chunks = [ChunkId(c.chunk_id) for c in queries.manifest(txn, record).chunks]
    await upload_file(client, headers, new, name="doc.bin", folder="/")
    replaced_at = app.node.clock.now()
    with app.node.meta.read() as txn:
        head = journal.head(txn, user_id)
        assert get_usage(txn, user_id).used == len(old) + len(new)
    retention = float(app.node.config.files.version_retention)
    assert retention == 30 * DAY

    early = await reclaim_expired(
        app.node.meta, now=replaced_at + retention - 60, trash_retention=retention, version_retention=retention
    )
    assert early.versions == 0
    assert len(await _versions(client, headers, entry["id"])) == 2
    due = await reclaim_expired(
        app.node.meta, now=replaced_at + retention + 1, trash_retention=retention, version_retention=retention
    )
    assert (due.versions, due.bytes, due.released) == (1, len(old), len(old_chunks))
    assert [v["version"] for v in await _versions(client, headers, entry["id"])] == [2]
    with app.node.meta.read() as txn:
        assert [refcount(txn, c) for c in old_chunks] == [0] * len(old_chunks)
        assert get_usage(txn, user_id).used == len(new)
        assert journal.head(txn, user_id) == head  # not a change a client sees
        assert txn.count(VERSIONS) == txn.count(VERSION_MANIFESTS) == txn.count(VERSIONS_BY_TIME) == 0
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == new


async def test_a_purged_trash_entry_takes_its_versions_with_it(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    user_id = await _user_id(app, headers)
    entry = await upload_file(client, headers, b"version one", name="doc.txt", folder="/")
    await upload_file(client, headers, b"version two!", name="doc.txt", folder="/")
    await client.delete(f"/api/mobile/files/{entry['id']}", headers=headers)
    assert (await client.get(f"/api/mobile/files/{entry['id']}/versions", headers=headers)).status_code == 404
    report = await reclaim_expired(
        app.node.meta, now=app.node.clock.now() + 31 * DAY, trash_retention=30 * DAY, version_retention=60 * DAY
    )
    assert (report.files, report.versions, report.bytes) == (1, 0, len(b"version one") + len(b"version two!"))
    with app.node.meta.read() as txn:
        assert get_usage(txn, user_id).used == 0
        assert txn.count(VERSIONS) == txn.count(VERSIONS_BY_TIME) == 0


async def test_a_new_version_at_init_counts_the_kept_one(make_config: Callable[..., Config]) -> None:
    app = create_app(make_config(plans={"free": {"quota": "200KiB"}}), clock=TrioClock(), periodic=False)
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        await upload_file(client, headers, os.urandom(120 * KiB), name="a.bin", folder="/")
        body = {"files": [{"localId": "x", "name": "a.bin", "size": 100 * KiB, "folder": "/"}]}
        over = await client.post("/api/mobile/upload/init", headers=headers, json=body)
        assert over.status_code == 507


async def test_another_users_versions_are_not_found_and_unchanged(app: VaultApp, client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    entry = await upload_file(client, alice, b"one", name="a.txt", folder="/")
    await upload_file(client, alice, b"two", name="a.txt", folder="/")
    listed = await client.get(f"/api/mobile/files/{entry['id']}/versions", headers=bob)
    assert listed.status_code == 404
    assert (await _json(listed))["error"]["code"] == "NOT_FOUND"
    restore = await client.post(f"/api/mobile/files/{entry['id']}/versions/1/restore", headers=bob)
    assert restore.status_code == 404
    assert [(v["version"], v["current"]) for v in await _versions(client, alice, entry["id"])] == [
        (2, True),
        (1, False),
    ]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=alice)
    assert await content.get_data() == b"two"
