"""Upload behaviour an app developer relies on: the per-file uploadUrl works, the checksum given at
complete is the one that counts, and a piece that gc took at the same moment is answered the same
way (503 + Retry-After, send it again) by chunk PUTs and tus PATCHes."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from quart_trio.testing import TrioTestApp

from tests.api_helpers import b3, init_upload, local_path, put_chunks, register
from vault.app import VaultApp, create_app
from vault.chunks import ChunkId
from vault.chunks.memory import MemoryBackend
from vault.chunks.wrappers import BackendWrapper
from vault.clock import TrioClock
from vault.config import Config

KiB = 1024


async def test_a_chunk_put_to_the_files_upload_url_with_content_range_is_stored(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(150 * KiB)
    planned = await init_upload(client, headers, data)
    url = local_path(planned["uploadUrl"])
    for chunk in reversed(planned["chunks"]):
        start, end = chunk["start"], chunk["end"]
        response = await client.put(
            url, headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}, data=data[start : end + 1]
        )
        assert response.status_code == 200, await response.get_json()
        assert (await response.get_json())["data"]["index"] == chunk["index"]
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200
    file_id = (await done.get_json())["data"]["file"]["id"]
    content = await client.get(f"/api/mobile/files/{file_id}/content", headers=headers)
    assert await content.get_data() == data


@pytest.mark.parametrize(
    "content_range",
    [None, "bytes 0-99/153600", "bytes 1-65536/153600", "bytes 0-65535/999", "bytes 0-65535", "bytes ¹-2/3"],
)
async def test_a_put_to_the_files_upload_url_must_name_exactly_one_planned_chunk(
    client: Any, content_range: str | None
) -> None:
    headers = await register(client)
    data = os.urandom(150 * KiB)
    planned = await init_upload(client, headers, data)
    extra = {"Content-Range": content_range} if content_range else {}
    response = await client.put(local_path(planned["uploadUrl"]), headers={**headers, **extra}, data=data[: 64 * KiB])
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


async def test_complete_checks_the_checksum_given_at_complete_not_the_one_from_init(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(100 * KiB)
    planned = await init_upload(client, headers, data, checksum=b3(b"a wrong guess at init"))
    await put_chunks(client, headers, planned, data)
    done = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, await done.get_json()
    assert (await done.get_json())["data"]["file"]["checksum"] == b3(data)


async def test_complete_with_the_wrong_checksum_is_422_naming_expected_and_actual(client: Any) -> None:
    headers = await register(client)
    data = os.urandom(100 * KiB)
    planned = await init_upload(client, headers, data)
    await put_chunks(client, headers, planned, data)
    wrong = "sha256:" + "0" * 64
    failed = await client.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": wrong}
    )
    assert failed.status_code == 422
    error = (await failed.get_json())["error"]
    assert error["code"] == "CHECKSUM_MISMATCH"
    assert error["details"]["expected"] == wrong
    assert error["details"]["actual"].startswith("sha256:") and error["details"]["actual"] != wrong


class ReclaimingBackend(BackendWrapper):
    """Stands in for the collector winning the race: the existence check after the next one finds
    the chunk gone, as if gc had deleted it between the store's "already here" (dedup) and the
    check the upload makes once its reference is taken."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend())
        self._countdown: int | None = None

    def reclaim_at_second_check(self) -> None:
        self._countdown = 1

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        found = await self.inner.has_many(list(chunk_ids))
        if self._countdown == 0:
            self._countdown = None
            return set()
        if self._countdown is not None:
            self._countdown -= 1
        return found


@pytest.fixture
async def reclaiming(config: Config) -> AsyncIterator[tuple[VaultApp, ReclaimingBackend]]:
    backend = ReclaimingBackend()
    app = create_app(config, clock=TrioClock(), periodic=False, backend=backend)
    async with TrioTestApp(app, startup_timeout=math.inf, shutdown_timeout=math.inf):  # type: ignore[arg-type]
        yield app, backend


async def test_a_chunk_gc_took_meanwhile_is_503_with_retry_after_and_a_resend_works(
    reclaiming: tuple[VaultApp, ReclaimingBackend],
) -> None:
    app, backend = reclaiming
    client = app.test_client()
    headers = await register(client)
    data = os.urandom(64 * KiB)
    await put_chunks(client, headers, await init_upload(client, headers, data, name="first.bin"), data)
    second = await init_upload(client, headers, data, name="second.bin", checksum=b3(data + b"other"))
    url = local_path(second["chunks"][0]["uploadUrl"])
    backend.reclaim_at_second_check()
    reclaimed = await client.put(url, headers=headers, data=data)
    assert reclaimed.status_code == 503
    assert reclaimed.headers["Retry-After"] == "1"
    assert (await reclaimed.get_json())["error"]["code"] == "SERVICE_UNAVAILABLE"
    state = await client.get(f"/api/mobile/upload/{second['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["receivedChunks"] == []  # the reference was taken back
    assert (await client.put(url, headers=headers, data=data)).status_code == 200


async def test_a_tus_piece_gc_took_meanwhile_is_503_with_retry_after_and_the_offset_stays(
    reclaiming: tuple[VaultApp, ReclaimingBackend],
) -> None:
    app, backend = reclaiming
    client = app.test_client()
    headers = {**(await register(client)), "Tus-Resumable": "1.0.0"}
    data = os.urandom(64 * KiB)
    await put_chunks(client, headers, await init_upload(client, headers, data, name="first.bin"), data)
    created = await client.post(
        "/api/mobile/tus/",
        headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": "filename c2Vjb25kLmJpbg=="},
    )
    assert created.status_code == 201
    location = local_path(created.headers["Location"])
    backend.reclaim_at_second_check()
    patch_headers = {**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    reclaimed = await client.patch(location, headers=patch_headers, data=data)
    assert reclaimed.status_code == 503
    assert reclaimed.headers["Retry-After"] == "1"
    head = await client.head(location, headers=headers)
    assert head.headers["Upload-Offset"] == "0"
    resent = await client.patch(location, headers=patch_headers, data=data)
    assert resent.status_code == 204
    assert resent.headers["Upload-Offset"] == str(len(data))
    listing = await client.get("/api/mobile/files?folder=/", headers=headers)
    assert [f["name"] for f in (await listing.get_json())["data"]["files"]] == ["second.bin"]


async def test_a_plan_of_millions_of_chunks_is_answered_at_once_and_lists_only_the_first(
    make_config: Any,
) -> None:
    config = make_config(plans={"default": "enterprise"})
    app = create_app(config, clock=TrioClock(), periodic=False)
    async with TrioTestApp(app, startup_timeout=math.inf, shutdown_timeout=math.inf):  # type: ignore[arg-type]
        client = app.test_client()
        headers = await register(client)
        size = 1 << 40  # 1 TiB in 64 KiB chunks: 16,777,216 chunks
        response = await client.post(
            "/api/mobile/upload/init",
            headers=headers,
            json={
                "files": [{"localId": "big", "name": "disk.img", "size": size, "checksum": b3(b"x")}],
                "uploadOptions": {"chunkSize": 64 * KiB},
            },
        )
        assert response.status_code == 200
        plan = (await response.get_json())["data"]["files"][0]
        assert plan["totalChunks"] == 16_777_216
        assert plan["chunksListed"] == len(plan["chunks"]) == 1000
        last = plan["totalChunks"] - 1
        assert plan["chunkUrlTemplate"].replace("{index}", str(last)).endswith(f"/chunks/{last}")
        state = await client.get(f"/api/mobile/upload/{plan['uploadId']}", headers=headers)
        data = (await state.get_json())["data"]
        assert data["missingCount"] == 16_777_216 and len(data["missingChunks"]) == 1000
        assert data["receivedCount"] == 0
