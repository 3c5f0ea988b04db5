"""``sync/files`` and ``conflicts/resolve``: local changes applied in order, conflicts when the
target changed on the server meanwhile, never for identical content, and their resolutions."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.api_helpers import b3, put_chunks, register, upload_file

STATUS = "/api/mobile/sync/status"
FILES = "/api/mobile/sync/files"
RESOLVE = "/api/mobile/conflicts/resolve"


async def _token(client: Any, headers: dict[str, str]) -> str:
    response = await client.get(STATUS, headers=headers)
    token: str = (await response.get_json())["data"]["nextSyncToken"]
    while (await response.get_json())["data"].get("hasMore"):
        response = await client.get(f"{STATUS}?syncToken={token}", headers=headers)
        token = (await response.get_json())["data"]["nextSyncToken"]
    return token


async def _sync(client: Any, headers: dict[str, str], token: str | None, *changes: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"localChanges": list(changes)}
    if token is not None:
        body["syncToken"] = token
    response = await client.post(FILES, headers=headers, json=body)
    answer = await response.get_json()
    assert response.status_code == 200, answer
    data: dict[str, Any] = answer["data"]
    return data


async def _open_conflicts(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get(STATUS, headers=headers)
    found: list[dict[str, Any]] = (await response.get_json())["data"]["conflicts"]
    return found


async def _file(client: Any, headers: dict[str, str], file_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/mobile/files/{file_id}", headers=headers)
    if response.status_code == 404:
        return None
    entry: dict[str, Any] = (await response.get_json())["data"]["file"]
    return entry


@pytest.fixture
async def two_devices(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    return await register(client, device_id="phone"), await register(client, device_id="tablet")


async def test_an_upload_of_content_the_account_has_is_applied_at_once(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(5000)
    original = await upload_file(client, headers, data, name="a.jpg", folder="/photos")
    result = (
        await _sync(
            client,
            headers,
            None,
            {
                "action": "upload",
                "localId": "l1",
                "name": "copy.jpg",
                "folder": "/backup",
                "size": 5000,
                "checksum": b3(data),
            },
        )
    )["results"][0]
    assert result["status"] == "applied" and result["localId"] == "l1"
    copy = await _file(client, headers, result["fileId"])
    assert copy is not None and copy["checksum"] == original["checksum"] and copy["folder"] == "/backup"
    content = await client.get(f"/api/mobile/files/{copy['id']}/content", headers=headers)
    assert await content.get_data() == data


async def test_new_content_answers_upload_required_with_the_plan_upload_init_would_give(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(70 * 1024)
    (result,) = (
        await _sync(
            client,
            headers,
            None,
            {
                "action": "upload",
                "localId": "l2",
                "name": "new.bin",
                "folder": "/",
                "size": len(data),
                "checksum": b3(data),
            },
        )
    )["results"]
    assert result["status"] == "uploadRequired"
    plan = result["upload"]
    assert plan["localId"] == "l2" and plan["status"] == "pending" and plan["totalChunks"] >= 1
    await put_chunks(client, headers, plan, data)
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": plan["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200
    assert (await done.get_json())["data"]["file"]["name"] == "new.bin"


async def test_mkdir_rename_move_delete_apply_in_request_order(client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(100), name="x.txt", folder="/")
    token = await _token(client, headers)
    results = (
        await _sync(
            client,
            headers,
            token,
            {"action": "mkdir", "localId": "m", "folder": "/docs/2024"},
            {"action": "rename", "localId": "r", "fileId": entry["id"], "name": "y.txt"},
            {"action": "move", "localId": "v", "fileId": entry["id"], "folder": "/docs/2024"},
        )
    )["results"]
    assert [r["status"] for r in results] == ["applied", "applied", "applied"]
    now = await _file(client, headers, entry["id"])
    assert now is not None and (now["name"], now["folder"], now["version"]) == ("y.txt", "/docs/2024", 3)
    (deleted,) = (await _sync(client, headers, token, {"action": "delete", "fileId": entry["id"]}))["results"]
    assert deleted["status"] == "applied"
    assert await _file(client, headers, entry["id"]) is None


# (phone's change, tablet's earlier change) pairs that conflict: the phone's change is not applied.
CONFLICTING = [
    ("update", "update", "modified_remotely"),
    ("update", "delete", "deleted_remotely"),
    ("update", "rename", "modified_remotely"),
    ("delete", "update", "modified_remotely"),
    ("delete", "rename", "modified_remotely"),
    ("rename", "update", "modified_remotely"),
    ("rename", "rename", "modified_remotely"),
    ("rename", "delete", "deleted_remotely"),
    ("move", "move", "modified_remotely"),
    ("move", "delete", "deleted_remotely"),
]


def _change(action: str, file_id: str, data: bytes) -> dict[str, Any]:
    if action == "update":
        return {"action": "update", "localId": "c", "fileId": file_id, "size": len(data), "checksum": b3(data)}
    if action == "delete":
        return {"action": "delete", "localId": "c", "fileId": file_id}
    if action == "rename":
        return {"action": "rename", "localId": "c", "fileId": file_id, "name": f"renamed-{os.urandom(3).hex()}.txt"}
    return {"action": "move", "localId": "c", "fileId": file_id, "folder": f"/moved-{os.urandom(3).hex()}"}


@pytest.mark.parametrize(("local", "remote", "reason"), CONFLICTING)
async def test_a_change_to_a_file_another_device_changed_since_the_token_is_a_conflict(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]], local: str, remote: str, reason: str
) -> None:
    phone, tablet = two_devices
    original = os.urandom(300)
    entry = await upload_file(client, phone, original, name="shared.txt", folder="/")
    token = await _token(client, phone)
    theirs, ours = os.urandom(301), os.urandom(302)
    await upload_file(client, tablet, theirs, name="x.bin")  # content the update can dedup onto
    await upload_file(client, phone, ours, name="y.bin")
    (tablet_result,) = (
        await _sync(client, tablet, await _token(client, tablet), _change(remote, entry["id"], theirs))
    )["results"]
    assert tablet_result["status"] == "applied"
    before = await _file(client, phone, entry["id"])
    (result,) = (await _sync(client, phone, token, _change(local, entry["id"], ours)))["results"]
    assert result["status"] == "conflict", result
    assert result["conflictId"].startswith("conflict_")
    assert await _file(client, phone, entry["id"]) == before  # nothing of the phone's change landed
    (listed,) = await _open_conflicts(client, phone)
    assert listed["conflictId"] == result["conflictId"] and listed["reason"] == reason
    assert listed["fileId"] == entry["id"] and listed["localId"] == "c"


async def test_identical_content_is_never_a_conflict(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    entry = await upload_file(client, phone, os.urandom(300), name="same.txt")
    token = await _token(client, phone)
    new = os.urandom(333)
    await upload_file(client, tablet, new, name="same.txt")  # the tablet's new version
    (result,) = (await _sync(client, phone, token, _change("update", entry["id"], new)))["results"]
    assert result["status"] == "applied"
    assert await _open_conflicts(client, phone) == []


async def test_two_devices_creating_one_name_conflict_only_with_different_content(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    token = await _token(client, phone)
    theirs = os.urandom(400)
    await upload_file(client, tablet, theirs, name="report.pdf", folder="/work")
    same = {"action": "upload", "name": "report.pdf", "folder": "/work", "size": 400, "checksum": b3(theirs)}
    assert (await _sync(client, phone, token, {**same, "localId": "s"}))["results"][0]["status"] == "applied"
    other = os.urandom(401)
    differing = {**same, "localId": "d", "size": 401, "checksum": b3(other)}
    (result,) = (await _sync(client, phone, token, differing))["results"]
    assert result["status"] == "conflict"
    assert (await _open_conflicts(client, phone))[0]["reason"] == "name_taken"


async def test_re_uploading_a_file_deleted_elsewhere_since_the_token_is_a_conflict(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    data = os.urandom(500)
    entry = await upload_file(client, phone, data, name="old.jpg", folder="/pics")
    token = await _token(client, phone)
    await _sync(client, tablet, await _token(client, tablet), {"action": "delete", "fileId": entry["id"]})
    upload = {
        "action": "upload",
        "localId": "u",
        "name": "old.jpg",
        "folder": "/pics",
        "size": 500,
        "checksum": b3(data),
    }
    (result,) = (await _sync(client, phone, token, upload))["results"]
    assert result["status"] == "conflict"
    assert (await _open_conflicts(client, phone))[0]["reason"] == "deleted_remotely"
    # With a token from after the delete, the same upload is a new file again (its content is in
    # the trash, not among the live files it could be made from, so it is sent once more).
    (again,) = (await _sync(client, phone, await _token(client, phone), upload))["results"]
    assert again["status"] == "uploadRequired"


async def _conflict(
    client: Any, phone: dict[str, str], tablet: dict[str, str], local: dict[str, Any]
) -> tuple[str, str]:
    """A file the tablet renamed after the phone's token, and the phone's change to it as a conflict."""
    entry = await upload_file(client, phone, os.urandom(300), name="doc.txt", folder="/")
    token = await _token(client, phone)
    await _sync(
        client, tablet, await _token(client, tablet), {"action": "rename", "fileId": entry["id"], "name": "theirs.txt"}
    )
    (result,) = (await _sync(client, phone, token, {**local, "fileId": entry["id"]}))["results"]
    assert result["status"] == "conflict"
    return entry["id"], result["conflictId"]


async def _resolve(client: Any, headers: dict[str, str], *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(RESOLVE, headers=headers, json={"conflicts": list(items)})
    body = await response.get_json()
    assert response.status_code == 200, body
    results: list[dict[str, Any]] = body["data"]["results"]
    return results


async def test_keep_remote_drops_the_local_change_and_clears_the_conflict(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    file_id, conflict_id = await _conflict(client, phone, tablet, {"action": "rename", "name": "mine.txt"})
    (result,) = await _resolve(
        client, phone, {"conflictId": conflict_id, "resolution": "keep_remote", "fileId": file_id}
    )
    assert result["status"] == "resolved" and result["file"]["name"] == "theirs.txt"
    assert await _open_conflicts(client, phone) == []
    # Resolving twice is harmless.
    (again,) = await _resolve(client, phone, {"conflictId": conflict_id, "resolution": "keep_remote"})
    assert again["status"] == "resolved"


async def test_keep_local_applies_the_local_change_with_its_local_data(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    file_id, conflict_id = await _conflict(client, phone, tablet, {"action": "rename", "name": "mine.txt"})
    (result,) = await _resolve(
        client,
        phone,
        {"conflictId": conflict_id, "resolution": "keep_local", "fileId": file_id, "localData": {"name": "final.txt"}},
    )
    assert result["status"] == "resolved" and result["file"]["name"] == "final.txt"
    assert (await _file(client, phone, file_id) or {})["name"] == "final.txt"


async def test_keep_local_of_new_content_answers_the_upload_to_send(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    data = os.urandom(65 * 1024)
    _, conflict_id = await _conflict(
        client, phone, tablet, {"action": "update", "size": len(data), "checksum": b3(data)}
    )
    (result,) = await _resolve(client, phone, {"conflictId": conflict_id, "resolution": "keep_local"})
    assert result["status"] == "uploadRequired"
    assert result["upload"]["status"] == "pending" and result["upload"]["chunks"]


async def test_keep_both_keeps_the_local_version_under_a_conflict_name(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    ours = os.urandom(333)
    await upload_file(client, phone, ours, name="elsewhere.bin")  # so keeping ours needs no upload
    file_id, conflict_id = await _conflict(
        client, phone, tablet, {"action": "update", "size": len(ours), "checksum": b3(ours)}
    )
    (result,) = await _resolve(client, phone, {"conflictId": conflict_id, "resolution": "keep_both"})
    assert result["status"] == "resolved"
    kept = result["file"]
    assert kept["id"] != file_id and kept["checksum"] == b3(ours)
    # Beside the remote file, named after it: "theirs (conflict <device name> <date>).txt".
    assert kept["name"].startswith("theirs (conflict ") and kept["name"].endswith(").txt")
    assert (await _file(client, phone, file_id) or {})["name"] == "theirs.txt"  # the remote one stays


async def test_an_unknown_or_another_users_conflict_is_not_found_per_result(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    _, conflict_id = await _conflict(client, phone, tablet, {"action": "rename", "name": "mine.txt"})
    mallory = await register(client, email="mallory@example.com")
    results = await _resolve(
        client,
        mallory,
        {"conflictId": conflict_id, "resolution": "keep_local"},
        {"conflictId": "conflict_nope", "resolution": "keep_remote"},
    )
    assert [(r["status"], r["error"]["code"]) for r in results] == [
        ("rejected", "NOT_FOUND"),
        ("rejected", "NOT_FOUND"),
    ]
    assert len(await _open_conflicts(client, phone)) == 1  # untouched
    assert await _open_conflicts(client, mallory) == []


async def test_another_users_file_ids_are_rejected_not_found(client: Any) -> None:
    alice = await register(client, email="alice@example.com")
    bob = await register(client, email="bob@example.com")
    entry = await upload_file(client, alice, os.urandom(100), name="private.txt")
    results = (
        await _sync(
            client,
            bob,
            None,
            {"action": "delete", "localId": "a", "fileId": entry["id"]},
            {"action": "rename", "localId": "b", "fileId": entry["id"], "name": "pwned.txt"},
        )
    )["results"]
    assert [(r["status"], r["error"]["code"]) for r in results] == [("rejected", "NOT_FOUND")] * 2
    assert (await _file(client, alice, entry["id"]) or {})["name"] == "private.txt"


@pytest.mark.parametrize(
    "change",
    [
        {"action": "explode"},
        {"action": "upload", "name": "a", "size": 1, "checksum": "md5:abc"},
        {"action": "move", "fileId": "file_x", "folder": "relative"},
        {"action": "delete"},
        {"action": "mkdir", "folder": "/a", "unknown": 1},
    ],
)
async def test_malformed_changes_are_400(client: Any, change: dict[str, Any]) -> None:
    headers = await register(client)
    response = await client.post(FILES, headers=headers, json={"localChanges": [change]})
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


async def test_keep_local_on_an_edit_of_a_file_deleted_elsewhere_brings_it_back_with_the_edit(
    client: Any, two_devices: tuple[dict[str, str], dict[str, str]]
) -> None:
    phone, tablet = two_devices
    entry = await upload_file(client, phone, os.urandom(400), name="notes.txt", folder="/docs")
    token = await _token(client, phone)
    await _sync(client, tablet, await _token(client, tablet), {"action": "delete", "fileId": entry["id"]})
    edited = os.urandom(600)
    edit = {
        "action": "update",
        "localId": "e",
        "fileId": entry["id"],
        "size": len(edited),
        "checksum": b3(edited),
    }
    (result,) = (await _sync(client, phone, token, edit))["results"]
    assert result["status"] == "conflict"
    (resolved,) = await _resolve(client, phone, {"conflictId": result["conflictId"], "resolution": "keep_local"})
    assert resolved["status"] in ("uploadRequired", "resolved"), resolved
    # The file is back from the trash, at its place, waiting for (or holding) the local content.
    back = await client.get(f"/api/mobile/files/{entry['id']}", headers=phone)
    assert back.status_code == 200
    assert (await back.get_json())["data"]["file"]["folder"] == "/docs"
