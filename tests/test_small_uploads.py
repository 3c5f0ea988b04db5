"""One-request uploads of small files (``POST /api/mobile/upload/file``): a file in one round trip
and one metadata commit, that behaves afterwards exactly as one made by ``upload/complete``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
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
