"""tus 1.0: the real tuspy client against a node over HTTP, plus protocol edge cases."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable

import httpx
import pytest
import trio
from tusclient.client import TusClient

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.conftest import LiveNode
from vault.config import Config

KiB = 1024


@pytest.fixture
def config(make_config: Callable[..., Config], backend_name: str) -> Config:
    return make_config(
        storage={"backend": backend_name},
        uploads={"default_chunk_size": "64KiB"},
        plans={"tiny": {"devices": 3, "quota": "10KiB"}},
    )


async def _login(http: httpx.AsyncClient, email: str = "alice@example.com") -> dict[str, str]:
    response = await http.post(
        "/api/mobile/auth/register",
        json=register_body(email),
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['tokens']['accessToken']}"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _tus_upload(base_url: str, headers: dict[str, str], data: bytes, chunk_size: int, checksum: bool) -> str:
    client = TusClient(f"{base_url}/api/mobile/tus/", headers=headers)
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=chunk_size,
        metadata={"filename": "clip.mp4", "folder": "/videos", "filetype": "video/mp4"},
        upload_checksum=checksum,
    )
    uploader.upload()
    return str(uploader.url)


@pytest.mark.parametrize("chunk_size,checksum", [(50 * KiB, True), (1 << 40, False)])
async def test_tuspy_upload_creates_the_file(live_node: LiveNode, chunk_size: int, checksum: bool) -> None:
    data = os.urandom(300 * KiB + 3)
    async with live_node.client() as http:
        headers = await _login(http)
        url = await trio.to_thread.run_sync(_tus_upload, live_node.base_url, headers, data, chunk_size, checksum)
        assert "/api/mobile/tus/upload_" in url
        listing = (await http.get("/api/mobile/files", params={"folder": "/videos"}, headers=headers)).json()
        [entry] = listing["data"]["files"]
        assert entry["name"] == "clip.mp4"
        assert entry["mimeType"] == "video/mp4"
        assert entry["checksum"] == b3(data)
        content = await http.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
        assert content.content == data


async def test_options_advertises_extensions(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        response = await http.options("/api/mobile/tus/")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    extensions = set(response.headers["tus-extension"].split(","))
    assert {"creation", "creation-with-upload", "expiration", "checksum", "termination"} <= extensions
    assert {"sha1", "sha256", "blake3"} <= set(response.headers["tus-checksum-algorithm"].split(","))


async def test_patch_offsets_head_checksum_and_delete(live_node: LiveNode) -> None:
    data = os.urandom(200 * KiB)
    tus = {"Tus-Resumable": "1.0.0"}
    async with live_node.client() as http:
        headers = {**await _login(http), **tus}
        created = await http.post(
            "/api/mobile/tus/",
            headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(filename="a.bin")},
        )
        assert created.status_code == 201
        assert created.headers["upload-expires"]
        location = created.headers["location"]
        patch = {**headers, "Content-Type": "application/offset+octet-stream"}
        first = await http.patch(location, headers={**patch, "Upload-Offset": "0"}, content=data[: 70 * KiB])
        assert first.status_code == 204
        assert first.headers["upload-offset"] == str(70 * KiB)
        stale = await http.patch(location, headers={**patch, "Upload-Offset": "0"}, content=data[:10])
        assert stale.status_code == 409
        wrong = base64.b64encode(b"\x00" * 20).decode()
        bad = await http.patch(
            location,
            headers={**patch, "Upload-Offset": str(70 * KiB), "Upload-Checksum": f"sha1 {wrong}"},
            content=data[70 * KiB : 100 * KiB],
        )
        assert bad.status_code == 460
        head = await http.head(location, headers=headers)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == str(70 * KiB)
        assert head.headers["upload-length"] == str(len(data))
        assert head.headers["cache-control"] == "no-store"
        gone = await http.delete(location, headers=headers)
        assert gone.status_code == 204
        after = await http.head(location, headers=headers)
        assert after.status_code in (404, 410)


async def test_creation_with_upload_and_other_users(live_node: LiveNode) -> None:
    data = os.urandom(10 * KiB)
    tus = {"Tus-Resumable": "1.0.0"}
    async with live_node.client() as http:
        alice = {**await _login(http), **tus}
        bob = {**await _login(http, "bob@example.com"), **tus}
        created = await http.post(
            "/api/mobile/tus/",
            headers={
                **alice,
                "Upload-Length": str(len(data) * 2),
                "Upload-Metadata": _meta(filename="b.bin", folder="/x"),
                "Content-Type": "application/offset+octet-stream",
            },
            content=data,
        )
        assert created.status_code == 201
        assert created.headers["upload-offset"] == str(len(data))
        location = created.headers["location"]
        assert (await http.head(location, headers=bob)).status_code == 404
        assert (await http.delete(location, headers=bob)).status_code == 404
        no_name = await http.post("/api/mobile/tus/", headers={**alice, "Upload-Length": "5"})
        assert no_name.status_code == 400
        no_version = await http.post(
            "/api/mobile/tus/",
            headers={**await _login(http), "Upload-Length": "5", "Upload-Metadata": _meta(filename="c")},
        )
        assert no_version.status_code == 412
        unauth = await http.post(
            "/api/mobile/tus/", headers={**tus, "Upload-Length": "5", "Upload-Metadata": _meta(filename="c")}
        )
        assert unauth.status_code == 401


async def test_head_never_reports_done_for_an_upload_that_made_no_file(live_node: LiveNode) -> None:
    """The last PATCH fails (quota lowered meanwhile): HEAD must not answer offset == length."""
    from vault.auth.accounts import set_plan

    data = os.urandom(100 * KiB)
    tus = {"Tus-Resumable": "1.0.0"}
    async with live_node.client() as http:
        headers = {**await _login(http), **tus}
        created = await http.post(
            "/api/mobile/tus/",
            headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": _meta(filename="q.bin")},
        )
        location = created.headers["location"]
        await live_node.app.node.meta.write(lambda txn: set_plan(txn, "alice@example.com", "tiny"))
        patch = await http.patch(
            location,
            headers={**headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
            content=data,
        )
        assert patch.status_code == 507
        head = await http.head(location, headers=headers)
        assert head.status_code == 507
        listing = (await http.get("/api/mobile/files", params={"folder": "/"}, headers=headers)).json()
        assert listing["data"]["files"] == []


async def test_a_method_tus_does_not_take_there_is_405_with_allow(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        headers = {**(await _login(http)), "Tus-Resumable": "1.0.0"}
        created = await http.post(
            "/api/mobile/tus/", headers={**headers, "Upload-Length": "10", "Upload-Metadata": _meta(filename="a")}
        )
        at_upload = await http.post(created.headers["Location"], headers=headers)
        assert at_upload.status_code == 405 and at_upload.headers["Allow"] == "OPTIONS, HEAD, PATCH, DELETE"
        at_base = await http.patch("/api/mobile/tus/", headers=headers)
        assert at_base.status_code == 405 and at_base.headers["Allow"] == "OPTIONS, POST"
