"""Deleting, renaming and moving files; creating, moving and deleting folders with their subtree.
Each operation goes through ``ChangeTxn.apply`` and writes one journal entry per file it touches."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.api_helpers import register, upload_file
from vault import errors
from vault.app import VaultApp
from vault.chunks.ids import ChunkId
from vault.chunks.refs import incref, refcount
from vault.files import journal, queries
from vault.files.changes import ChangeTxn, DeleteFolder, FileChanges, MoveFolder, PutContent
from vault.files.feed import ChangeFeed
from vault.files.journal import JournalEntry
from vault.files.records import ChunkRef
from vault.meta import MetaStore, Txn
from vault.quota import get_usage

USER = "user_a"


def _chunk(n: int) -> ChunkId:
    return ChunkId(bytes([n]) * 32)


async def _put(changes: FileChanges, folder: str, name: str, n: int, size: int = 10) -> str:
    content = PutContent(
        folder=folder,
        name=name,
        size=size,
        mime_type="text/plain",
        blake3=_chunk(n).hex(),
        chunks=[ChunkRef(_chunk(n), size)],
    )

    def write(change: ChangeTxn) -> str:
        incref(change.txn, [_chunk(n)])
        applied = change.apply(content, user_id=USER, device_id="device_1")
        assert applied.file is not None
        return applied.file.id

    return await changes.write(write, now=1000.0)


def _entries(meta: MetaStore, after: int = 0) -> list[JournalEntry]:
    with meta.read() as txn:
        return journal.since(txn, USER, after)


async def test_a_folder_move_carries_its_subtree_with_one_entry_per_file_then_the_folder(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    seen: list[tuple[int, str]] = []

    def subscriber(txn: Txn, user_id: str, entry: JournalEntry) -> None:
        seen.append((entry.seq, entry.op))

    changes.subscribe(subscriber)
    top = await _put(changes, "/a", "top.txt", 1)
    deep = await _put(changes, "/a/b/c", "deep.txt", 2)
    beside = await _put(changes, "/a b", "beside.txt", 3)  # "/a b" sorts among "/a/..." keys: not below /a
    head = len(_entries(meta))
    await changes.write(
        lambda c: c.apply(MoveFolder(folder="/a", to="/x/renamed"), user_id=USER, device_id="d2"), now=2000.0
    )
    entries = _entries(meta, head)
    assert [e.seq for e in entries] == [head + 1, head + 2, head + 3]  # one transaction, consecutive
    moved = {e.file_id: e for e in entries if e.op == "moved"}
    assert set(moved) == {top, deep}
    assert (moved[top].folder, moved[top].previous_folder, moved[top].previous_name) == ("/x/renamed", "/a", "top.txt")
    assert (moved[deep].folder, moved[deep].previous_folder) == ("/x/renamed/b/c", "/a/b/c")
    assert moved[deep].version == 2 and moved[deep].device_id == "d2"
    folder = entries[-1]
    assert (folder.op, folder.folder, folder.previous_folder, folder.file_id) == (
        "folder_moved",
        "/x/renamed",
        "/a",
        "",
    )
    assert seen[-3:] == [(e.seq, e.op) for e in entries]  # subscribers see every entry
    with meta.read() as txn:
        assert not queries.folder_exists(txn, USER, "/a") and not queries.folder_exists(txn, USER, "/a/b")
        assert queries.folders_below(txn, USER, "/x/renamed") == ["/x/renamed", "/x/renamed/b", "/x/renamed/b/c"]
        assert queries.subfolders(txn, USER, "/") == ["a b", "x"]
        assert queries.find_by_path(txn, USER, "/a/b/c", "deep.txt") is None
        assert queries.find_by_path(txn, USER, "/x/renamed/b/c", "deep.txt") is not None
        assert queries.get_file(txn, USER, beside).folder == "/a b"  # the sibling stayed


async def test_a_folder_move_refuses_itself_its_subtree_and_taken_paths(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    await _put(changes, "/a/b", "one.txt", 1)
    await _put(changes, "/", "taken", 2)
    await _put(changes, "/c", "two.txt", 3)
    head = len(_entries(meta))
    for to in ("/a", "/a/b/inside", "/c", "/taken"):
        with pytest.raises(errors.Conflict):
            await changes.write(
                lambda c, to=to: c.apply(MoveFolder(folder="/a", to=to), user_id=USER, device_id="d"), now=1
            )
    with pytest.raises(errors.ValidationError):
        await changes.write(lambda c: c.apply(MoveFolder(folder="/", to="/z"), user_id=USER, device_id="d"), now=1)
    with pytest.raises(errors.NotFound):
        await changes.write(lambda c: c.apply(MoveFolder(folder="/nope", to="/z"), user_id=USER, device_id="d"), now=1)
    assert len(_entries(meta)) == head  # nothing was written


async def test_a_folder_delete_trashes_every_file_below_with_one_entry_each(meta: MetaStore) -> None:
    changes = FileChanges(meta, ChangeFeed())
    one = await _put(changes, "/a", "one.txt", 1)
    two = await _put(changes, "/a/b", "two.txt", 2)
    kept = await _put(changes, "/a b", "kept.txt", 3)
    head = len(_entries(meta))
    applied = await changes.write(lambda c: c.apply(DeleteFolder(folder="/a"), user_id=USER, device_id="d"), now=3000.0)
    entries = _entries(meta, head)
    assert sorted((e.op, e.file_id) for e in entries[:-1]) == sorted([("deleted", one), ("deleted", two)])
    assert (entries[-1].op, entries[-1].folder, entries[-1].file_id) == ("folder_deleted", "/a", "")
    assert {r.id for r in applied.carried} == {one, two}
    with meta.read() as txn:
        assert queries.folders_below(txn, USER, "/a") == []
        assert queries.subfolders(txn, USER, "/") == ["a b"]
        assert queries.get_file(txn, USER, kept).folder == "/a b"
        for file_id in (one, two):
            with pytest.raises(errors.NotFound):
                queries.get_file(txn, USER, file_id)
        # In the trash: content still referenced and counted.
        assert refcount(txn, _chunk(1)) == 1 and refcount(txn, _chunk(2)) == 1
        assert get_usage(txn, USER).used == 30


# -- over the API --------------------------------------------------------------------------------


async def _json(response: Any) -> Any:
    return await response.get_json()


async def _listing(client: Any, headers: dict[str, str], folder: str) -> dict[str, Any]:
    response = await client.get(f"/api/mobile/files?folder={folder}", headers=headers)
    assert response.status_code == 200
    data: dict[str, Any] = (await _json(response))["data"]
    return data


async def _user_id(app: VaultApp, headers: dict[str, str]) -> str:
    return (await app.node.authenticate(headers["Authorization"])).user_id


def _journal(app: VaultApp, user_id: str) -> list[JournalEntry]:
    with app.node.meta.read() as txn:
        return journal.since(txn, user_id, 0)


async def test_delete_answers_the_id_and_the_file_leaves_listings(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, b"hello", name="a.txt", folder="/docs")
    response = await client.delete(f"/api/mobile/files/{entry['id']}", headers=headers)
    assert response.status_code == 200
    assert (await _json(response))["data"] == {"deleted": entry["id"]}
    assert (await _listing(client, headers, "/docs"))["files"] == []
    assert (await client.get(f"/api/mobile/files/{entry['id']}", headers=headers)).status_code == 404
    again = await client.delete(f"/api/mobile/files/{entry['id']}", headers=headers)
    assert again.status_code == 404
    last = _journal(app, await _user_id(app, headers))[-1]
    assert (last.op, last.file_id, last.folder, last.name) == ("deleted", entry["id"], "/docs", "a.txt")


async def test_patch_renames_and_moves_with_versions_and_conflicts(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, b"one", name="a.txt", folder="/docs")
    other = await upload_file(client, headers, b"two", name="b.txt", folder="/docs")
    url = f"/api/mobile/files/{entry['id']}"

    renamed = await client.patch(url, headers=headers, json={"name": "c.txt", "baseVersion": 1})
    assert renamed.status_code == 200
    file = (await _json(renamed))["data"]["file"]
    assert set(file) >= {"id", "name", "folder", "size", "mimeType", "modifiedAt", "checksum", "version"}
    assert (file["id"], file["name"], file["folder"], file["version"]) == (entry["id"], "c.txt", "/docs", 2)

    moved = await client.patch(url, headers=headers, json={"folder": "/archive/2024", "name": "d.txt"})
    file = (await _json(moved))["data"]["file"]
    assert (file["name"], file["folder"], file["version"]) == ("d.txt", "/archive/2024", 3)
    assert (await _listing(client, headers, "/archive"))["folders"] == ["2024"]

    stale = await client.patch(url, headers=headers, json={"name": "e.txt", "baseVersion": 2})
    assert stale.status_code == 409
    error = (await _json(stale))["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"]["current"]["version"] == 3 and error["details"]["current"]["name"] == "d.txt"

    taken = await client.patch(url, headers=headers, json={"folder": "/docs", "name": "b.txt"})
    assert taken.status_code == 409
    assert (await _json(taken))["error"]["details"]["current"]["id"] == other["id"]

    same = await client.patch(url, headers=headers, json={"name": "d.txt"})  # already its name
    assert (await _json(same))["data"]["file"]["version"] == 3
    ops = [e.op for e in _journal(app, await _user_id(app, headers))]
    assert ops == ["created", "created", "moved", "moved"]  # refusals and the no-op wrote nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a/b"}, "name"),
        ({"name": ""}, "name"),
        ({"folder": "relative"}, "folder"),
        ({"folder": "/a//b"}, "folder"),
        ({"name": "x", "baseVersion": "2"}, "baseVersion"),
        ({"name": "x", "baseVersion": 0}, "baseVersion"),
        ({"name": 5}, "name"),
        ({"name": "x", "extra": 1}, "extra"),
        ({}, "name"),
    ],
)
async def test_bad_patch_bodies_are_400_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, b"one", name="a.txt", folder="/docs")
    response = await client.patch(f"/api/mobile/files/{entry['id']}", headers=headers, json=body)
    assert response.status_code == 400
    error = (await _json(response))["error"]
    assert (error["code"], error["details"]["field"]) == ("VALIDATION_ERROR", field)


async def test_folders_are_created_with_their_parents(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    response = await client.post("/api/mobile/folders", headers=headers, json={"folder": "/a/b/c"})
    assert response.status_code == 200
    assert (await _json(response))["data"] == {"folder": "/a/b/c"}
    assert (await _listing(client, headers, "/a"))["folders"] == ["b"]
    assert (await _listing(client, headers, "/a/b"))["folders"] == ["c"]
    again = await client.post("/api/mobile/folders", headers=headers, json={"folder": "/a/b/c"})
    assert again.status_code == 200
    assert [e.op for e in _journal(app, await _user_id(app, headers))] == ["folder_created"]  # once
    for body, field in (({"folder": "a"}, "folder"), ({"folder": "/a/../b"}, "folder"), ({}, "folder")):
        bad = await client.post("/api/mobile/folders", headers=headers, json=body)
        assert bad.status_code == 400
        assert (await _json(bad))["error"]["details"]["field"] == field


async def test_folder_rename_and_move_carry_the_subtree(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    top = await upload_file(client, headers, b"top", name="top.txt", folder="/trip")
    deep = await upload_file(client, headers, b"deep", name="deep.txt", folder="/trip/day1")
    await client.post("/api/mobile/folders", headers=headers, json={"folder": "/albums"})
    user_id = await _user_id(app, headers)
    head = len(_journal(app, user_id))

    renamed = await client.patch("/api/mobile/folders", headers=headers, json={"folder": "/trip", "name": "Trip"})
    assert renamed.status_code == 200
    assert (await _json(renamed))["data"] == {"folder": "/Trip"}
    moved = await client.patch("/api/mobile/folders", headers=headers, json={"folder": "/Trip", "parent": "/albums"})
    assert (await _json(moved))["data"] == {"folder": "/albums/Trip"}

    assert (await _listing(client, headers, "/"))["folders"] == ["albums"]
    assert (await _listing(client, headers, "/albums/Trip"))["folders"] == ["day1"]
    got = await client.get(f"/api/mobile/files/{deep['id']}", headers=headers)
    file = (await _json(got))["data"]["file"]
    assert (file["folder"], file["version"]) == ("/albums/Trip/day1", 3)
    content = await client.get(f"/api/mobile/files/{top['id']}/content", headers=headers)
    assert await content.get_data() == b"top"
    ops = [(e.op, e.folder, e.previous_folder) for e in _journal(app, user_id)[head:]]
    assert sorted(ops[:2]) == [("moved", "/Trip", "/trip"), ("moved", "/Trip/day1", "/trip/day1")]
    assert ops[2] == ("folder_moved", "/Trip", "/trip")
    assert ops[5] == ("folder_moved", "/albums/Trip", "/Trip")
    assert len(ops) == 6


async def test_folder_moves_that_cannot_be_are_refused(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    await upload_file(client, headers, b"x", name="x.txt", folder="/a/b")
    await client.post("/api/mobile/folders", headers=headers, json={"folder": "/c"})
    await upload_file(client, headers, b"f", name="file", folder="/")
    cases = [
        ({"folder": "/a", "parent": "/a/b"}, 409),  # into itself
        ({"folder": "/a", "parent": "/a"}, 409),
        ({"folder": "/a", "name": "c"}, 409),  # onto an existing folder
        ({"folder": "/a", "name": "file"}, 409),  # onto a file's name
        ({"folder": "/a", "name": "a"}, 409),  # onto itself
        ({"folder": "/", "name": "root"}, 400),
        ({"folder": "/nope", "name": "x"}, 404),
        ({"folder": "/a"}, 400),
        ({"folder": "/a", "name": "x/y"}, 400),
        ({"folder": "/a", "parent": "rel"}, 400),
    ]
    for body, status in cases:
        response = await client.patch("/api/mobile/folders", headers=headers, json=body)
        assert response.status_code == status, body
    assert (await _listing(client, headers, "/a"))["folders"] == ["b"]


async def test_folder_delete_trashes_everything_below(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    one = await upload_file(client, headers, b"one", name="one.txt", folder="/old")
    two = await upload_file(client, headers, b"two", name="two.txt", folder="/old/sub")
    kept = await upload_file(client, headers, b"kept", name="kept.txt", folder="/older")
    response = await client.delete("/api/mobile/folders?folder=/old", headers=headers)
    assert response.status_code == 200
    assert (await _json(response))["data"] == {"deleted": "/old", "files": 2}
    assert (await _listing(client, headers, "/"))["folders"] == ["older"]
    assert (await client.get(f"/api/mobile/files/{kept['id']}", headers=headers)).status_code == 200
    trash = (await _json(await client.get("/api/mobile/trash", headers=headers)))["data"]["files"]
    assert {f["id"] for f in trash} == {one["id"], two["id"]}
    ops = [e.op for e in _journal(app, await _user_id(app, headers))][-3:]
    assert ops == ["deleted", "deleted", "folder_deleted"]
    assert (await client.delete("/api/mobile/folders?folder=/", headers=headers)).status_code == 400
    assert (await client.delete("/api/mobile/folders", headers=headers)).status_code == 400
    assert (await client.delete("/api/mobile/folders?folder=/old", headers=headers)).status_code == 404
    assert (await client.delete("/api/mobile/folders?folder=x", headers=headers)).status_code == 400


async def test_another_users_files_and_folders_are_not_found_and_unchanged(app: VaultApp, client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    entry = await upload_file(client, alice, os.urandom(1000), name="a.bin", folder="/private/deep")
    alice_id = await _user_id(app, alice)
    before = _journal(app, alice_id)
    url = f"/api/mobile/files/{entry['id']}"
    assert (await client.delete(url, headers=bob)).status_code == 404
    assert (await client.patch(url, headers=bob, json={"name": "stolen.bin"})).status_code == 404
    assert (await client.patch(url, headers=bob, json={"name": "a.bin"})).status_code == 404
    moved = await client.patch("/api/mobile/folders", headers=bob, json={"folder": "/private", "name": "mine"})
    assert moved.status_code == 404
    assert (await client.delete("/api/mobile/folders?folder=/private", headers=bob)).status_code == 404
    # Bob's own folder of the same path is his alone.
    assert (await client.post("/api/mobile/folders", headers=bob, json={"folder": "/private"})).status_code == 200
    assert (await client.delete("/api/mobile/folders?folder=/private", headers=bob)).status_code == 200
    assert _journal(app, alice_id) == before
    file = (await _json(await client.get(url, headers=alice)))["data"]["file"]
    assert (file["name"], file["folder"], file["version"]) == ("a.bin", "/private/deep", 1)
    assert (await _listing(client, alice, "/private"))["folders"] == ["deep"]


async def test_the_openapi_document_describes_the_new_requests(client: Any) -> None:
    doc = await _json(await client.get("/api/mobile/openapi.json"))
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    patch = paths["/api/mobile/files/{file_id}"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/FilePatch"}
    assert set(schemas["FilePatch"]["properties"]) == {"name", "folder", "baseVersion"}
    assert "delete" in paths["/api/mobile/files/{file_id}"]
    assert set(paths["/api/mobile/folders"]) == {"post", "patch", "delete"}
    assert set(schemas["FolderPatch"]["properties"]) == {"folder", "name", "parent"}
    assert schemas["NewFolder"]["required"] == ["folder"]
    assert [p["name"] for p in paths["/api/mobile/folders"]["delete"]["parameters"]] == ["folder"]
    assert "get" in paths["/api/mobile/trash"]
    assert "post" in paths["/api/mobile/trash/{file_id}/restore"]
    assert "get" in paths["/api/mobile/files/{file_id}/versions"]
    assert "post" in paths["/api/mobile/files/{file_id}/versions/{version}/restore"]
