"""Bit rot: a stored chunk that fails verification is never served, is counted in /metrics, and
the next good upload of the same content replaces it instead of deduplicating onto it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api_helpers import register, upload_file
from tests.metrics_support import metric
from tests.test_downloads import _corrupt_one_chunk
from vault.app import VaultApp
from vault.config import Config

KiB = 1024


@pytest.fixture
def config(make_config: Callable[..., Config], backend_name: str) -> Config:
    return make_config(storage={"backend": backend_name})


async def test_a_good_upload_of_rotted_content_repairs_it_for_every_file_that_holds_it(
    app: VaultApp, client: Any, config: Config, backend_name: str
) -> None:
    marker = b"ROT-MARKER-0123456789"
    data = marker + os.urandom(64 * KiB - len(marker))
    alice = await register(client, email="alice@example.com")
    first = await upload_file(client, alice, data, name="photo.jpg", chunk_size=64 * KiB)
    _corrupt_one_chunk(Path(config.storage.data_dir), backend_name, marker)
    url = f"/api/mobile/files/{first['id']}/content"
    broken = await client.get(url, headers=alice)
    assert broken.status_code == 500  # never the rotted bytes
    metrics = (await (await client.get("/metrics")).get_data()).decode()
    assert metric(metrics, "vault_chunk_corrupt_reads_total") >= 1
    # The same photo, uploaded by someone else: chunk-level dedup would land on the rotted copy.
    bob = await register(client, email="bob@example.com")
    second = await upload_file(client, bob, data, name="same.jpg", chunk_size=64 * KiB)
    copy = await client.get(f"/api/mobile/files/{second['id']}/content", headers=bob)
    assert copy.status_code == 200 and await copy.get_data() == data
    repaired = await client.get(url, headers=alice)
    assert repaired.status_code == 200 and await repaired.get_data() == data
    metrics = (await (await client.get("/metrics")).get_data()).decode()
    assert metric(metrics, "vault_chunk_repairs_total") == 1
