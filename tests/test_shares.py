"""Read-only shares: the recipient reads the file's entry and content and nothing else."""

from __future__ import annotations

import os
from typing import Any

import trio

from tests.api_helpers import register, upload_file
from tests.auth_support import error_code
from vault.auth.records import USERS
from vault.files.shares import SHARED_FOLDER
from vault.quota import get_usage

SHARES = "/api/mobile/shares"
STATUS = "/api/mobile/sync/status"


async def _share(client: Any, headers: dict[str, str], file_id: str, email: str) -> Any:
    return await client.post(SHARES, headers=headers, json={"fileId": file_id, "email": email})


async def _status(client: Any, headers: dict[str, str], token: str | None = None) -> dict[str, Any]:
    response = await client.get(STATUS + (f"?syncToken={token}" if token else ""), headers=headers)
    assert response.status_code == 200
    return dict((await response.get_json())["data"])


async def _three(client: Any) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    alice = await register(client, "alice@example.com", "alice-phone")
    bob = await register(client, "bob@example.com", "bob-phone")
    carol = await register(client, "carol@example.com", "carol-phone")
    return alice, bob, carol


async def test_a_shared_file_can_be_read_by_its_recipient_and_appears_in_their_sync(app: Any, client: Any) -> None:
    alice, bob, _ = await _three(client)
    data = os.urandom(200_000)
    entry = await upload_file(client, alice, data, name="beach.jpg", folder="/private/holidays")
    before = (await _status(client, bob))["nextSyncToken"]
    response = await _share(client, alice, entry["id"], "Bob@Example.com")
    assert response.status_code == 200
    share = (await response.get_json())["data"]["share"]
    assert {k: share[k] for k in ("fileId", "owner", "recipient")} == {
        "fileId": entry["id"],
        "owner": "alice@example.com",
        "recipient": "bob@example.com",
    }
    assert share["id"] and share["createdAt"].endswith("Z")
    # Both see it in their list.
    for who in (alice, bob):
        listed = (await (await client.get(SHARES, headers=who)).get_json())["data"]["shares"]
        assert [s["id"] for s in listed] == [share["id"]]
    # Bob reads the entry (in his shared folder, not Alice's folders) and the verified bytes.
    meta = await client.get(f"/api/mobile/files/{entry['id']}", headers=bob)
    assert meta.status_code == 200
    seen = (await meta.get_json())["data"]["file"]
    assert seen["folder"] == SHARED_FOLDER and seen["checksum"] == entry["checksum"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=bob)
    assert content.status_code == 200 and await content.get_data() == data
    ranged = await client.get(f"/api/mobile/files/{entry['id']}/content", headers={**bob, "Range": "bytes=10-19"})
    assert ranged.status_code == 206 and await ranged.get_data() == data[10:20]
    # It is in Bob's sync, from his token and in a full listing.
    delta = await _status(client, bob, before)
    assert [(f["id"], f["folder"]) for f in delta["changes"]["created"]] == [(entry["id"], SHARED_FOLDER)]
    full = await _status(client, bob)
    assert entry["id"] in [f["id"] for f in full["changes"]["created"]]
    # The owner's quota is charged, not the recipient's.
    async with app.node.meta.snapshot() as txn:
        used = {email: get_usage(txn, user_id).used for user_id, email in _users(txn)}
    assert used == {"alice@example.com": len(data), "bob@example.com": 0, "carol@example.com": 0}
    # Bob got a "shares" notification.
    inbox = (await (await client.get("/api/mobile/notifications", headers=bob)).get_json())["data"]["notifications"]
    assert next((n["category"], n["title"], n["body"]) for n in inbox) == (
        "shares",
        "Alice shared a file with you",
        "beach.jpg",
    )


def _users(txn: Any) -> list[tuple[str, str]]:
    return [(u.id, u.email) for _, u in txn.scan(USERS)]


async def test_the_recipient_can_do_nothing_else_with_a_shared_file(client: Any) -> None:
    alice, bob, carol = await _three(client)
    data = os.urandom(5000)
    entry = await upload_file(client, alice, data, name="doc.txt")
    assert (await _share(client, alice, entry["id"], "bob@example.com")).status_code == 200
    fid = entry["id"]
    attempts = [
        ("DELETE", f"/api/mobile/files/{fid}", None),
        ("PATCH", f"/api/mobile/files/{fid}", {"name": "mine.txt"}),
        ("GET", f"/api/mobile/files/{fid}/versions", None),
        ("POST", f"/api/mobile/files/{fid}/versions/1/restore", None),
        ("POST", f"/api/mobile/trash/{fid}/restore", None),
        ("POST", SHARES, {"fileId": fid, "email": "carol@example.com"}),  # no resharing
        ("POST", "/api/mobile/sync/files", {"localChanges": [{"action": "delete", "fileId": fid}]}),
    ]
    for method, path, body in attempts:
        response = await client.open(path, method=method, headers=bob, json=body)
        if path.endswith("/sync/files"):
            answer = await response.get_json()
            assert response.status_code == 200
            assert "NOT_FOUND" in str(answer), answer
        else:
            assert response.status_code == 404, (method, path, await response.get_json())
            assert await error_code(response) == "NOT_FOUND"
    # Nothing changed for Alice.
    again = (await (await client.get(f"/api/mobile/files/{fid}", headers=alice)).get_json())["data"]["file"]
    assert again["name"] == "doc.txt" and again["version"] == 1
    # Carol, who was never shared with, sees nothing at all.
    assert (await client.get(f"/api/mobile/files/{fid}", headers=carol)).status_code == 404
    assert (await client.get(f"/api/mobile/files/{fid}/content", headers=carol)).status_code == 404
    assert (await (await client.get(SHARES, headers=carol)).get_json())["data"]["shares"] == []


async def test_revoking_stops_access_at_once_and_removes_it_from_the_recipients_sync(client: Any) -> None:
    alice, bob, carol = await _three(client)
    entry = await upload_file(client, alice, os.urandom(3000), name="a.txt")
    share = (await (await _share(client, alice, entry["id"], "bob@example.com")).get_json())["data"]["share"]
    token = (await _status(client, bob))["nextSyncToken"]
    # A stranger cannot revoke it (and learns nothing).
    stranger = await client.delete(f"{SHARES}/{share['id']}", headers=carol)
    assert stranger.status_code == 404 and await error_code(stranger) == "NOT_FOUND"
    revoked = await client.delete(f"{SHARES}/{share['id']}", headers=alice)
    assert revoked.status_code == 200 and (await revoked.get_json())["data"]["revoked"] == share["id"]
    assert (await client.get(f"/api/mobile/files/{entry['id']}", headers=bob)).status_code == 404
    assert (await client.get(f"/api/mobile/files/{entry['id']}/content", headers=bob)).status_code == 404
    delta = await _status(client, bob, token)
    assert entry["id"] in str(delta["changes"]["deleted"])
    assert (await client.delete(f"{SHARES}/{share['id']}", headers=alice)).status_code == 404


async def test_the_owners_changes_reach_the_recipient(client: Any) -> None:
    alice, bob, _ = await _three(client)
    entry = await upload_file(client, alice, os.urandom(3000), name="draft.txt", folder="/work")
    await _share(client, alice, entry["id"], "bob@example.com")
    token = (await _status(client, bob))["nextSyncToken"]
    renamed = await client.patch(f"/api/mobile/files/{entry['id']}", headers=alice, json={"name": "final.txt"})
    assert renamed.status_code == 200
    delta = await _status(client, bob, token)
    changed = delta["changes"]["updated"] + delta["changes"]["created"]
    assert [(f["id"], f["name"], f["folder"]) for f in changed] == [(entry["id"], "final.txt", SHARED_FOLDER)]
    token = delta["nextSyncToken"]
    assert (await client.delete(f"/api/mobile/files/{entry['id']}", headers=alice)).status_code == 200
    assert (await client.get(f"/api/mobile/files/{entry['id']}", headers=bob)).status_code == 404
    assert entry["id"] in str((await _status(client, bob, token))["changes"]["deleted"])


async def test_bad_shares_are_refused_with_a_clear_error(client: Any) -> None:
    alice, bob, _ = await _three(client)
    entry = await upload_file(client, alice, os.urandom(100), name="x.txt")
    cases = [
        ({"fileId": entry["id"], "email": "nobody@example.com"}, 404, "NOT_FOUND"),
        ({"fileId": entry["id"], "email": "alice@example.com"}, 400, "VALIDATION_ERROR"),
        ({"fileId": entry["id"], "email": "not an email"}, 400, "VALIDATION_ERROR"),
        ({"fileId": "file_nope", "email": "bob@example.com"}, 404, "NOT_FOUND"),
        ({"fileId": entry["id"]}, 400, "VALIDATION_ERROR"),
        ({"fileId": entry["id"], "email": "bob@example.com", "role": "admin"}, 400, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        response = await client.post(SHARES, headers=alice, json=body)
        assert response.status_code == status, (body, await response.get_json())
        assert await error_code(response) == code
    # Bob cannot share Alice's file, even knowing its id.
    assert (await _share(client, bob, entry["id"], "bob@example.com")).status_code in (400, 404)
    # Sharing twice is the same share.
    first = (await (await _share(client, alice, entry["id"], "bob@example.com")).get_json())["data"]["share"]
    second = (await (await _share(client, alice, entry["id"], "bob@example.com")).get_json())["data"]["share"]
    assert first["id"] == second["id"]


async def test_concurrent_shares_of_one_file_to_one_user_make_one_share(client: Any) -> None:
    alice, _, _ = await _three(client)
    entry = await upload_file(client, alice, os.urandom(100), name="x.txt")
    ids: list[str] = []

    async def one() -> None:
        response = await _share(client, alice, entry["id"], "bob@example.com")
        assert response.status_code == 200
        ids.append((await response.get_json())["data"]["share"]["id"])

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    assert len(set(ids)) == 1
    listed = (await (await client.get(SHARES, headers=alice)).get_json())["data"]["shares"]
    assert len(listed) == 1


async def test_a_share_lasts_while_the_file_is_in_the_trash_and_goes_when_it_is_purged(app: Any, client: Any) -> None:
    from vault.files.reclaim import reclaim_expired

    alice, bob, _ = await _three(client)
    entry = await upload_file(client, alice, os.urandom(3000), name="notes.txt")
    share = (await (await _share(client, alice, entry["id"], "bob@example.com")).get_json())["data"]["share"]
    assert (await client.delete(f"/api/mobile/files/{entry['id']}", headers=alice)).status_code == 200
    # In the trash: still listed (without a name), and shared again once restored.
    listed = (await (await client.get(SHARES, headers=bob)).get_json())["data"]["shares"]
    assert [(s["id"], s["name"]) for s in listed] == [(share["id"], None)]
    restored = await client.post(f"/api/mobile/trash/{entry['id']}/restore", headers=alice)
    assert restored.status_code == 200
    assert (await client.get(f"/api/mobile/files/{entry['id']}/content", headers=bob)).status_code == 200
    # Purged from the trash: nothing is left to share, and neither side lists it any more.
    assert (await client.delete(f"/api/mobile/files/{entry['id']}", headers=alice)).status_code == 200
    deleted_at = app.node.clock.now()
    retention = float(app.node.config.files.trash_retention)
    purged = await reclaim_expired(
        app.node.meta, now=deleted_at + retention + 1, trash_retention=retention, version_retention=retention
    )
    assert purged.files == 1
    for who in (alice, bob):
        assert (await (await client.get(SHARES, headers=who)).get_json())["data"]["shares"] == []
    assert (await client.delete(f"{SHARES}/{share['id']}", headers=alice)).status_code == 404
