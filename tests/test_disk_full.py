"""A full disk is the documented 507 INSUFFICIENT_STORAGE (never a 500), nothing stored is
damaged, reads keep working, and uploads succeed again once there is room."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.api_helpers import b3, init_upload, local_path, register, upload_file
from vault.config import Config

pytestmark = pytest.mark.reliability

KiB = 1024


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    # The memory backend's capacity plays a small disk: commits past it fail with ENOSPC.
    return make_config(storage={"backend": "memory", "options": {"capacity": 200 * KiB}})


async def test_a_full_chunk_store_is_507_insufficient_storage_and_reads_go_on(client: Any) -> None:
    headers = await register(client)
    kept = os.urandom(150 * KiB)
    entry = await upload_file(client, headers, kept, name="kept.bin")
    data = os.urandom(100 * KiB)
    planned = await init_upload(client, headers, data, name="too-much.bin")
    first = planned["chunks"][0]
    response = await client.put(local_path(first["uploadUrl"]), headers=headers, data=data[: first["end"] + 1])
    assert response.status_code == 507
    error = (await response.get_json())["error"]
    assert error["code"] == "INSUFFICIENT_STORAGE" and response.headers["Retry-After"]
    content = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
    assert await content.get_data() == kept
    state = await client.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)
    assert (await state.get_json())["data"]["receivedChunks"] == []
    # Room again (the big file deleted and reclaimed is what a user would do; here: a smaller chunk).
    small = os.urandom(10 * KiB)
    assert (await upload_file(client, headers, small, name="small.bin"))["checksum"] == b3(small)
