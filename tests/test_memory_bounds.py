"""Memory stays flat under slow downloaders: a real node (subprocess), both backends, RssAnon read
from ``/proc``. Fifty clients each start a download of a 32 MiB file and then read it a few KiB at a
time; before the fix every one of them pinned a whole verified 8 MiB chunk (440-770 MB for 50)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
import trio

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.process_node import free_port as _free_port
from tests.process_node import serve as _serve
from tests.process_node import wait_healthy as _wait_healthy

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024
DOWNLOADERS = 50
LIMIT_MB = 150


def _rss_anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc status")


def _slow_downloads(port: int, token: str, file_id: str, count: int) -> list[socket.socket]:
    """``count`` connections that asked for the file and read only its first few KiB."""
    opened = []
    request = (
        f"GET /api/mobile/files/{file_id}/content HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request)
        opened.append(sock)
    for sock in opened:
        first = sock.recv(4096)  # the response has started: the node is streaming this file
        assert first.startswith(b"HTTP/1.1 200"), first[:100]
    return opened


@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_fifty_slow_downloaders_keep_anonymous_memory_under_150_mb(tmp_path: Path, backend: str) -> None:
    config = tmp_path / "vault.toml"
    # One account's 50 downloads: above its default share of transfers (32), which is not what
    # this test is about.
    config.write_text(f'[storage]\nbackend = "{backend}"\n[server]\nmax_transfers_per_user = 64\n')
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(config, tmp_path / "data", port)
    sockets: list[socket.socket] = []
    try:
        await _wait_healthy(base, proc)
        data = os.urandom(32 * MiB)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            signed = (await http.post("/api/mobile/auth/register", json=register_body(device_id="d1"))).json()
            token = signed["tokens"]["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}
            entry = {"localId": "1", "name": "video.mp4", "size": len(data), "folder": "/", "checksum": b3(data)}
            init = await http.post("/api/mobile/upload/init", headers=headers, json={"files": [entry]})
            planned = init.json()["data"]["files"][0]
            for chunk in planned["chunks"]:
                put = await http.put(
                    chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1]
                )
                assert put.status_code == 200
            done = await http.post(
                "/api/mobile/upload/complete",
                headers=headers,
                json={"uploadId": planned["uploadId"], "checksum": b3(data)},
            )
            file_id = done.json()["data"]["file"]["id"]
            idle = _rss_anon_mb(proc.pid)
            sockets = await trio.to_thread.run_sync(_slow_downloads, port, token, file_id, DOWNLOADERS)
            held = _rss_anon_mb(proc.pid)
            # The node still answers others at full speed meanwhile, bytes verified.
            fast = await http.get(f"/api/mobile/files/{file_id}/content", headers=headers)
            assert fast.status_code == 200 and fast.content == data
            health = await http.get("/api/health")
            assert health.status_code == 200
            after_fast = _rss_anon_mb(proc.pid)
        print(
            f"{backend}: RssAnon idle {idle:.0f} MB, {DOWNLOADERS} slow downloaders {held:.0f} MB, "
            f"plus one full download {after_fast:.0f} MB"
        )
        assert max(held, after_fast) < LIMIT_MB
    finally:
        for sock in sockets:
            sock.close()
        proc.terminate()
        proc.wait(timeout=30)
