"""BOLA on every id-bearing endpoint: Bob using Alice's ids gets 404 NOT_FOUND (never 403, never
her data), and nothing of Alice's changes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.api_helpers import b3, init_upload, local_path, register, upload_file
from tests.auth_support import REGISTER, register_body

pytestmark = pytest.mark.reliability


async def _alice(client: Any) -> dict[str, Any]:
    signed = await (await client.post(REGISTER, json=register_body("alice@example.com", device_id="a1"))).get_json()
    headers = {"Authorization": f"Bearer {signed['tokens']['accessToken']}"}
    data = os.urandom(70_000)
    kept = await upload_file(client, headers, data, name="kept.jpg")
    trashed = await upload_file(client, headers, os.urandom(500), name="gone.jpg")
    assert (await client.delete(f"/api/mobile/files/{trashed['id']}", headers=headers)).status_code == 200
    open_upload = await init_upload(client, headers, os.urandom(100_000), name="open.jpg")
    await register(client, "carol@example.com", "c1")
    share = await client.post(
        "/api/mobile/shares", headers=headers, json={"fileId": kept["id"], "email": "carol@example.com"}
    )
    tus = await client.post(
        "/api/mobile/tus/",
        headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": "filename YS5iaW4="},
    )
    return {
        "headers": headers,
        "data": data,
        "file": kept,
        "trashed": trashed["id"],
        "upload": open_upload,
        "device": signed["device"]["id"],
        "share": (await share.get_json())["data"]["share"]["id"],
        "tus": local_path(tus.headers["Location"]) if tus.status_code == 201 else None,
    }


async def test_bob_cannot_reach_anything_of_alices_by_its_id(client: Any) -> None:
    alice = await _alice(client)
    bob = await register(client, "bob@example.com", "b1")
    fid, uid, did = alice["file"]["id"], alice["upload"]["uploadId"], alice["device"]
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/mobile/files/{fid}", {}),
        ("GET", f"/api/mobile/files/{fid}/content", {}),
        ("HEAD", f"/api/mobile/files/{fid}/content", {}),
        ("PATCH", f"/api/mobile/files/{fid}", {"json": {"name": "mine.jpg"}}),
        ("DELETE", f"/api/mobile/files/{fid}", {}),
        ("GET", f"/api/mobile/files/{fid}/versions", {}),
        ("POST", f"/api/mobile/files/{fid}/versions/1/restore", {}),
        ("POST", f"/api/mobile/trash/{alice['trashed']}/restore", {}),
        ("GET", f"/api/mobile/upload/{uid}", {}),
        ("POST", "/api/mobile/upload/progress", {"json": {"uploadId": uid}}),
        ("PUT", f"/api/mobile/upload/{uid}/chunks/0", {"data": b"x" * 100}),
        ("POST", "/api/mobile/upload/complete", {"json": {"uploadId": uid, "checksum": b3(b"x")}}),
        ("DELETE", f"/api/mobile/upload/{uid}", {}),
        ("PUT", f"/api/mobile/devices/{did}/settings", {"json": {"wifiOnly": False}}),
        ("DELETE", f"/api/mobile/devices/{did}", {}),
        ("DELETE", f"/api/mobile/shares/{alice['share']}", {}),
        (
            "POST",
            "/api/mobile/notifications/register",
            {"json": {"deviceId": did, "pushToken": "t", "platform": "ios"}},
        ),
        ("POST", "/api/mobile/shares", {"json": {"fileId": fid, "email": "bob@example.com"}}),
    ]
    assert alice["tus"], "the tus upload was not created"
    if alice["tus"]:
        tus_headers = {"Tus-Resumable": "1.0.0"}
        attempts += [
            ("HEAD", alice["tus"], {"headers": tus_headers}),
            ("DELETE", alice["tus"], {"headers": tus_headers}),
        ]
    for method, path, kw in attempts:
        headers = {**bob, **kw.pop("headers", {})}
        response = await client.open(path, method=method, headers=headers, **kw)
        assert response.status_code == 404, (method, path, response.status_code)
        if method != "HEAD":
            body = await response.get_json()
            if body is not None and "error" in body:
                assert body["error"]["code"] == "NOT_FOUND", (method, path, body)
    # Sync changes naming her file are refused one by one, and the page stays Bob's.
    synced = await client.post(
        "/api/mobile/sync/files",
        headers=bob,
        json={"localChanges": [{"action": "delete", "fileId": fid}, {"action": "rename", "fileId": fid, "name": "x"}]},
    )
    assert synced.status_code == 200 and "applied" not in str(await synced.get_json())
    # Nothing of Alice's changed.
    ah = alice["headers"]
    entry = (await (await client.get(f"/api/mobile/files/{fid}", headers=ah)).get_json())["data"]["file"]
    assert (entry["name"], entry["version"]) == ("kept.jpg", 1)
    assert await (await client.get(f"/api/mobile/files/{fid}/content", headers=ah)).get_data() == alice["data"]
    assert (await client.get(f"/api/mobile/upload/{uid}", headers=ah)).status_code == 200
    devices = (await (await client.get("/api/mobile/devices", headers=ah)).get_json())["data"]["devices"]
    assert [d["id"] for d in devices] == [did] and devices[0]["settings"]["wifiOnly"] is True
    shares = (await (await client.get("/api/mobile/shares", headers=ah)).get_json())["data"]["shares"]
    assert [s["id"] for s in shares] == [alice["share"]]
    trash = (await (await client.get("/api/mobile/trash", headers=ah)).get_json())["data"]
    assert alice["trashed"] in str(trash)
