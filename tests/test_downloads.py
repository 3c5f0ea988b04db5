"""Downloads: ranges, ETag/If-None-Match, HEAD, names, and corrupt chunks never served as good."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_helpers import HttpClient, b3, init_upload, put_chunks, register, upload_file
from tests.conftest import LiveNode
from vault.config import Config

KiB = 1024


@pytest.fixture
def config(make_config: Callable[..., Config], backend_name: str) -> Config:
    return make_config(storage={"backend": backend_name})


async def test_single_range_requests(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(200 * KiB)
    entry = await upload_file(client, headers, data)
    url = f"/api/mobile/files/{entry['id']}/content"
    for header, (lo, hi) in {
        "bytes=0-9": (0, 9),
        "bytes=65530-65545": (65530, 65545),
        "bytes=150000-": (150000, len(data) - 1),
        "bytes=-100": (len(data) - 100, len(data) - 1),
    }.items():
        response = await client.get(url, headers={**headers, "Range": header})
        assert response.status_code == 206, header
        assert await response.get_data() == data[lo : hi + 1], header
        assert response.headers["Content-Range"] == f"bytes {lo}-{hi}/{len(data)}"
    past = await client.get(url, headers={**headers, "Range": f"bytes={len(data)}-"})
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_etag_if_none_match_and_head(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(70 * KiB)
    entry = await upload_file(client, headers, data, name='Grüße "quoted".jpg')
    url = f"/api/mobile/files/{entry['id']}/content"
    full = await client.get(url, headers=headers)
    etag = full.headers["ETag"]
    assert etag == f'"{entry["checksum"]}"'
    assert full.headers["Accept-Ranges"] == "bytes"
    assert "filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22quoted%22.jpg" in full.headers["Content-Disposition"]
    cached = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert await cached.get_data() == b""


async def test_head_over_http_sends_length_without_body(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        client = HttpClient(http)
        headers = await register(client)
        data = os.urandom(70 * KiB)
        entry = await upload_file(client, headers, data)
        head = await http.head(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"] == f'"{entry["checksum"]}"'
    assert head.content == b""


async def test_listing_shows_files_and_subfolders(client: Any) -> None:
    headers = await register(client)
    await upload_file(client, headers, b"one", name="a.txt", folder="/docs")
    await upload_file(client, headers, b"two", name="b.txt", folder="/docs/2024/jan")
    root = (await (await client.get("/api/mobile/files?folder=/", headers=headers)).get_json())["data"]
    assert root["folders"] == ["docs"] and root["files"] == []
    docs = (await (await client.get("/api/mobile/files?folder=/docs", headers=headers)).get_json())["data"]
    assert [f["name"] for f in docs["files"]] == ["a.txt"]
    assert docs["folders"] == ["2024"]
    bad = await client.get("/api/mobile/files?folder=../x", headers=headers)
    assert bad.status_code == 400


def _corrupt_one_chunk(data_dir: Path, backend: str, marker: bytes) -> None:
    """Flip bytes of stored content in place, whatever the backend's layout."""
    root = data_dir / "chunks"
    hits = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        raw = bytearray(path.read_bytes())
        at = raw.find(marker)
        if at >= 0:
            raw[at : at + len(marker)] = bytes(b ^ 0xFF for b in marker)
            path.write_bytes(bytes(raw))
            hits += 1
    assert hits, f"marker not found in {backend} store"


@pytest.mark.parametrize("where", ["first", "later"])
async def test_corrupt_chunk_is_never_served_as_good_data(
    live_node: LiveNode, config: Config, backend_name: str, where: str
) -> None:
    marker = b"MARKER-0123456789"
    good = os.urandom(64 * KiB)
    data = marker + good + good if where == "first" else good + marker + good
    async with live_node.client() as http:
        client = HttpClient(http)
        headers = await register(client)
        entry = await upload_file(client, headers, data, name="c.bin")
        _corrupt_one_chunk(Path(config.storage.data_dir), backend_name, marker)
        url = f"/api/mobile/files/{entry['id']}/content"
        if where == "first":
            # Nothing was sent yet: a clean error, never the bytes.
            response = await http.get(url, headers=headers)
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "INTERNAL_ERROR"
            return
        # Headers are out when the bad chunk is reached: the response ends short.
        received = b""
        with pytest.raises(httpx.HTTPError):
            async with http.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200
                async for piece in response.aiter_bytes():
                    received += piece
        assert len(received) < len(data)


async def test_listing_pages_through_a_large_folder(client: Any) -> None:
    headers = await register(client)
    names = [f"img_{i:03d}.jpg" for i in range(7)]
    for name in reversed(names):
        await upload_file(client, headers, name.encode(), name=name, folder="/many")
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        query = "/api/mobile/files?folder=/many&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await (await client.get(query, headers=headers)).get_json())["data"]
        seen += [f["name"] for f in page["files"]]
        if not page.get("hasMore"):
            break
        cursor = page["nextCursor"]
    assert seen == names
    for bad in ("limit=0", "limit=abc", "limit=100000", "cursor=%%%"):
        response = await client.get(f"/api/mobile/files?folder=/many&{bad}", headers=headers)
        assert response.status_code == 400, bad


async def test_a_stored_json_file_downloads_as_is_even_when_gzip_is_accepted(client: Any) -> None:
    headers = await register(client)
    data = b'{"k": "' + b"x" * 50_000 + b'"}'
    planned = await init_upload(client, headers, data, name="data.json", mime_type="application/json")
    await put_chunks(client, headers, planned, data)
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    entry = (await done.get_json())["data"]["file"]
    response = await client.get(
        f"/api/mobile/files/{entry['id']}/content", headers={**headers, "Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in response.headers
    assert response.headers["Content-Type"] == "application/json"
    assert await response.get_data() == data


async def test_a_range_inside_a_large_corrupt_chunk_is_not_served(
    client: Any, config: Config, backend_name: str
) -> None:
    headers = await register(client)
    marker = b"MARKER-0123456789"
    data = os.urandom(5 * 1024 * KiB) + marker + os.urandom(5 * 1024 * KiB)
    entry = await upload_file(client, headers, data, name="big.bin", chunk_size=16 * 1024 * KiB)
    _corrupt_one_chunk(Path(config.storage.data_dir), backend_name, marker)
    response = await client.get(f"/api/mobile/files/{entry['id']}/content", headers={**headers, "Range": "bytes=0-99"})
    assert response.status_code == 500
    assert (await response.get_json())["error"]["code"] == "INTERNAL_ERROR"


async def test_subfolders_are_listed_once_each_whatever_lies_below(app: Any) -> None:
    from vault.files.changes import ensure_folders
    from vault.files.queries import subfolders

    paths = ["/p/a", "/p/a b", "/p/a-x", "/p/a/deep/er", "/p/a/z", "/p/b/1/2/3", "/p/c", "/q/other"]
    await app.node.meta.write(lambda txn: [ensure_folders(txn, "user_x", p, 0.0) for p in paths])
    with app.node.meta.read() as txn:
        assert subfolders(txn, "user_x", "/p") == ["a", "a b", "a-x", "b", "c"]
        assert subfolders(txn, "user_x", "/p/a") == ["deep", "z"]
        assert subfolders(txn, "user_x", "/") == ["p", "q"]
        assert subfolders(txn, "user_y", "/") == []
