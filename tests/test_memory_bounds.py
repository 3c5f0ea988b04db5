"""Memory stays flat under slow and stalled clients: a real node (subprocess), both backends,
RssAnon read from ``/proc``.

Slow downloaders: fifty clients each start a download of a 32 MiB file and then read it a few KiB
at a time; before the fix every one of them pinned a whole verified 8 MiB chunk (440-770 MB for 50).

Stalled uploads: fifty clients each send the headers and the first N MiB of an 8 MiB chunk PUT (or
tus PATCH), then stop sending and keep the connection open (153-195 MB for 50 chunk PUTs before
the fix)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
import trio

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.metrics_support import metric
from tests.process_node import running_node

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024
DOWNLOADERS = 50
STALLED = 50
CHUNK = 8 * MiB
LIMIT_MB = 150
_ESTABLISHED = "01"


def _rss_anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc status")


@asynccontextmanager
async def _node(tmp_path: Path, backend: str, server: str = "") -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """A ``vault serve`` child on ``backend``, healthy; stopped by its PID on the way out."""
    # One account's 50 transfers: above its default share (32), which is not what these tests
    # are about.
    toml = f'[storage]\nbackend = "{backend}"\n[server]\nmax_transfers_per_user = 64\n{server}'
    async with running_node(tmp_path, toml) as running:
        yield running


async def _sign_in(http: httpx.AsyncClient) -> str:
    signed = (await http.post("/api/mobile/auth/register", json=register_body(device_id="d1"))).json()
    return str(signed["tokens"]["accessToken"])


async def _init_upload(http: httpx.AsyncClient, token: str, files: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    """``upload/init`` for ``files`` (name, content): their planned uploads."""
    entries = [
        {"localId": str(i), "name": name, "size": len(data), "folder": "/", "checksum": b3(data)}
        for i, (name, data) in enumerate(files)
    ]
    init = await http.post(
        "/api/mobile/upload/init", headers={"Authorization": f"Bearer {token}"}, json={"files": entries}
    )
    assert init.status_code == 200, init.text
    planned: list[dict[str, object]] = init.json()["data"]["files"]
    return planned


def _connections(port: int) -> list[tuple[int, int, int, int, str]]:
    """Loopback TCP sockets to or from ``port``: (local port, remote port, send queue, receive
    queue, state) from ``/proc/net/tcp``."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        local_port, remote_port = int(local.split(":")[1], 16), int(remote.split(":")[1], 16)
        if port in (local_port, remote_port) and remote_port != 0:
            tx, rx = (int(q, 16) for q in queues.split(":"))
            found.append((local_port, remote_port, tx, rx, state))
    return found


def _cpu_ticks(pid: int) -> int:
    """User plus system CPU time of the process, all its threads, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def _until_node_read_everything(port: int, pid: int) -> None:
    """Until the node has taken every byte sent to it out of the kernel (no socket to or from
    ``port`` has bytes queued) and is done with them (hashed, written: its CPU time stops
    advancing for 0.3 s; at most 200 polls)."""
    with trio.fail_after(120):
        while any(tx or rx for _, _, tx, rx, state in _connections(port) if state == _ESTABLISHED):  # noqa: ASYNC110 - kernel state
            await trio.sleep(0.05)
    quiet, last = 0, _cpu_ticks(pid)
    for _ in range(200):
        await trio.sleep(0.05)
        now = _cpu_ticks(pid)
        quiet, last = (quiet + 1 if now == last else 0), now
        if quiet == 6:
            break
    else:
        raise AssertionError("the node kept using CPU with every client stalled")
    # Then until the node has looked at its heap twice since (it gives freed memory back once a
    # second): the figure read next is what it keeps, not what it has yet to give back.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        first = await _trim_checks(http)
        with trio.fail_after(30):
            while await _trim_checks(http) < first + 2:  # noqa: ASYNC110 - the node's own counter
                await trio.sleep(0.1)


async def _trim_checks(http: httpx.AsyncClient) -> float:
    return metric((await http.get("/metrics")).text, "vault_memory_trim_checks_total")


async def _until_given_up(http: httpx.AsyncClient, count: int) -> None:
    """Until the node has finished ``count`` requests whose client went away (status 499 in its
    request counter): what it does with a cut body (tus keeps the bytes it got) is then done, and
    a disk still syncing that work, which the CPU-quiet wait cannot see, is not mistaken for idle."""
    with trio.fail_after(60):
        while await _given_up(http) < count:  # noqa: ASYNC110 - the node's own counter
            await trio.sleep(0.1)


async def _given_up(http: httpx.AsyncClient) -> float:
    return metric((await http.get("/metrics")).text, "vault_http_requests_total", default=0, status="499")


async def _until_closed(port: int, count: int) -> None:
    """Until at most ``count`` connections to the node's ``port`` are left on its side."""
    with trio.fail_after(60):
        while len([c for c in _connections(port) if c[0] == port]) > count:  # noqa: ASYNC110 - kernel state
            await trio.sleep(0.05)


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


def _stalled_bodies(port: int, heads: list[bytes], body: bytes) -> list[socket.socket]:
    """One connection per request head, each sent ``body`` (the start of a longer one) and held."""
    opened = []
    for head in heads:
        sock = socket.create_connection(("127.0.0.1", port))
        opened.append(sock)
        sock.sendall(head + body)
    return opened


@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_fifty_slow_downloaders_keep_anonymous_memory_under_150_mb(tmp_path: Path, backend: str) -> None:
    sockets: list[socket.socket] = []
    async with _node(tmp_path, backend) as (proc, port):
        try:
            data = os.urandom(32 * MiB)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                token = await _sign_in(http)
                headers = {"Authorization": f"Bearer {token}"}
                [planned] = await _init_upload(http, token, [("video.mp4", data)])
                for chunk in planned["chunks"]:  # type: ignore[attr-defined]
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


def _tus_meta(name: str) -> str:
    return f"filename {base64.b64encode(name.encode()).decode()}"


@pytest.mark.parametrize("sent_mib", [2, 6])
@pytest.mark.parametrize("protocol", ["chunk", "tus"])
@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_fifty_stalled_uploads_keep_anonymous_memory_under_150_mb(
    tmp_path: Path, backend: str, protocol: str, sent_mib: int
) -> None:
    sockets: list[socket.socket] = []
    # Long enough that the node does not cut the stalled bodies while the test holds them.
    async with _node(tmp_path, backend, "body_read_timeout = 600\n") as (proc, port):
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                token = await _sign_in(http)
                auth = f"Authorization: Bearer {token}\r\n"
                heads = []
                if protocol == "chunk":
                    files = [(f"stalled{i}.bin", os.urandom(16) * (CHUNK // 16)) for i in range(STALLED)]
                    for planned in await _init_upload(http, token, files):
                        url = planned["chunks"][0]["uploadUrl"]  # type: ignore[index]
                        path = httpx.URL(url).raw_path.decode()
                        heads.append(f"PUT {path} HTTP/1.1\r\nHost: node\r\n{auth}Content-Length: {CHUNK}\r\n\r\n")
                else:
                    tus = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
                    for i in range(STALLED):
                        created = await http.post(
                            "/api/mobile/tus/",
                            headers={**tus, "Upload-Length": str(CHUNK), "Upload-Metadata": _tus_meta(f"t{i}.bin")},
                        )
                        assert created.status_code == 201, created.text
                        path = httpx.URL(created.headers["location"]).raw_path.decode()
                        heads.append(
                            f"PATCH {path} HTTP/1.1\r\nHost: node\r\n{auth}Tus-Resumable: 1.0.0\r\n"
                            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                            f"Content-Length: {CHUNK}\r\n\r\n"
                        )
                await _until_node_read_everything(port, proc.pid)
                idle = _rss_anon_mb(proc.pid)
                body = os.urandom(sent_mib * MiB)
                sockets = await trio.to_thread.run_sync(_stalled_bodies, port, [h.encode() for h in heads], body)
                await _until_node_read_everything(port, proc.pid)
                held = _rss_anon_mb(proc.pid)
                # The node answers others at once meanwhile: health, and a small file in one request.
                with trio.fail_after(10):
                    health = await http.get("/api/health")
                    assert health.status_code == 200
                    small = os.urandom(100 * 1024)
                    query = urlencode({"name": "small.bin", "folder": "/", "checksum": b3(small)}, quote_via=quote)
                    one = await http.post(
                        f"/api/mobile/upload/file?{query}", headers={"Authorization": f"Bearer {token}"}, content=small
                    )
                    assert one.status_code == 201, one.text
                for sock in sockets:
                    sock.close()
                sockets = []
                await _until_closed(port, 1)  # only this client's own connection is left
                await _until_given_up(http, STALLED)
                await _until_node_read_everything(port, proc.pid)
                closed = _rss_anon_mb(proc.pid)
                assert (await http.get("/api/health")).status_code == 200
            print(
                f"{backend} {protocol}, {STALLED} stalled with {sent_mib} MiB of 8 sent: RssAnon idle {idle:.0f} MB, "
                f"held {held:.0f} MB ({(held - idle) * 1024 / STALLED:.0f} KiB each), closed {closed:.0f} MB"
            )
            assert held < LIMIT_MB
            # Once they are gone it does not keep growing. A cut tus PATCH keeps the bytes it got, so
            # closing makes the node store 50 pieces: what it keeps after that work may sit a few MB
            # above what the stalled bodies held (73 held, 80 closed seen), but near its idle figure.
            assert closed < LIMIT_MB
            assert closed <= max(held, idle + 25)
        finally:
            for sock in sockets:
                sock.close()
