"""kill -9 in the middle of an upload, restart, resume: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.process_node import free_port as _free_port
from tests.process_node import serve
from tests.process_node import wait_healthy as _wait_healthy

KiB = 1024


@contextmanager
def _node(data_dir: Path, port: int, backend: str) -> Iterator[subprocess.Popen[bytes]]:
    config = data_dir.parent / f"vault-{backend}.toml"
    config.write_text(f'[storage]\nbackend = "{backend}"\n')
    proc = serve(config, data_dir, port)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_kill_9_mid_upload_then_resume_to_a_verified_file(tmp_path: Path, backend: str) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    data = os.urandom(6 * 64 * KiB + 99)
    with _node(data_dir, port, backend) as proc:
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as http:
            reg = await http.post(
                "/api/mobile/auth/register",
                json=register_body("a@example.com"),
            )
            headers = {"Authorization": f"Bearer {reg.json()['tokens']['accessToken']}"}
            init = await http.post(
                "/api/mobile/upload/init",
                headers=headers,
                json={
                    "files": [
                        {
                            "localId": "l1",
                            "name": "v.mp4",
                            "size": len(data),
                            "folder": "/v",
                            "checksum": b3(data),
                        }
                    ],
                    "uploadOptions": {"chunkSize": 64 * KiB},
                },
            )
            planned = init.json()["data"]["files"][0]
            for chunk in planned["chunks"][:4]:
                r = await http.put(chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1])
                assert r.status_code == 200
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with _node(data_dir, port, backend) as proc:
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as http:
            state = (await http.get(f"/api/mobile/upload/{planned['uploadId']}", headers=headers)).json()["data"]
            assert state["receivedChunks"] == [0, 1, 2, 3]
            for index in state["missingChunks"]:
                chunk = planned["chunks"][index]
                r = await http.put(chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1])
                assert r.status_code == 200
            done = await http.post(
                "/api/mobile/upload/complete",
                headers=headers,
                json={"uploadId": planned["uploadId"], "checksum": b3(data)},
            )
            assert done.status_code == 200, done.text
            file_id = done.json()["data"]["file"]["id"]
            content = await http.get(f"/api/mobile/files/{file_id}/content", headers=headers)
            assert content.content == data
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
