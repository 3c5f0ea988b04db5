"""The metadata store on a full disk (a small tmpfs, mounted by the test as root): writes answer
507 INSUFFICIENT_STORAGE, reads and the files already stored keep working, and the node writes
again by itself once space is freed."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quart_trio.testing import TrioTestApp

from tests.api_helpers import b3, register, upload_file
from vault.app import create_app
from vault.clock import TrioClock
from vault.config import config_from_mapping

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024


@contextlib.contextmanager
def small_disk(where: Path, size_mib: int) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", 24) as mounted:
        yield mounted


async def test_a_full_metadata_disk_is_507_reads_go_on_and_writes_resume_once_there_is_room(disk: Path) -> None:
    ballast = disk / "ballast"
    config = config_from_mapping({"storage": {"data_dir": str(disk / "data"), "backend": "memory"}})
    app = create_app(config, clock=TrioClock(), periodic=False)
    async with TrioTestApp(app, startup_timeout=30, shutdown_timeout=30):  # type: ignore[arg-type]
        client = app.test_client()
        headers = await register(client)
        content = os.urandom(1000)
        kept = await upload_file(client, headers, content, name="kept.bin")
        # Leave the metadata store a little room, then fill it with files made from known content.
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        ballast.write_bytes(b"\0" * max(0, free - 2 * MiB))
        full: Any = None
        for batch in range(200):
            changes = [
                {"action": "upload", "name": f"f{batch}-{i}.bin", "folder": "/many", "size": 1000}
                | {"checksum": b3(content)}
                for i in range(200)
            ]
            response = await client.post("/api/mobile/sync/files", headers=headers, json={"localChanges": changes})
            if response.status_code != 200:
                full = response
                break
        assert full is not None, "the disk never filled"
        assert full.status_code == 507  # re-sending the same changes later is harmless
        assert (await full.get_json())["error"]["code"] == "INSUFFICIENT_STORAGE"
        # Reads go on, and what was stored is intact.
        served = await client.get(f"/api/mobile/files/{kept['id']}/content", headers=headers)
        assert await served.get_data() == content
        assert (await client.get("/api/health")).status_code == 200
        # Room again: the same request works without a restart.
        ballast.unlink()
        again = await client.post("/api/mobile/sync/files", headers=headers, json={"localChanges": changes})
        assert again.status_code == 200, await again.get_json()
        assert {r["status"] for r in (await again.get_json())["data"]["results"]} == {"applied"}
