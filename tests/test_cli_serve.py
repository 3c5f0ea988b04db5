"""``vault serve`` as a user runs it: defaults, a bad config refused, graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from vault import plugins


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_config_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('[uploads]\nsession_ttl = "forever"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli",
            "serve",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "uploads.session_ttl" in result.stderr
    assert "Traceback" not in result.stderr


async def test_serves_with_env_settings_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "VAULT_DATA_DIR": str(tmp_path / "data"), "VAULT_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then polls over HTTP
        [sys.executable, "-m", "vault.cli", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            with trio.fail_after(30):
                while True:
                    assert proc.poll() is None
                    try:
                        response = await http.get("/api/health", headers={"X-Request-Id": "probe-1"})
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
        assert response.json()["status"] == "healthy"
        assert response.headers["x-request-id"] == "probe-1"
        assert (tmp_path / "data" / "meta").is_dir()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        log = err.decode()
        assert '"request_id": "probe-1"' in log and '"route": "/api/health"' in log
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unknown_backend_or_a_locked_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    from vault.datadir_lock import hold_node_lock

    path = tmp_path / "vault.toml"
    path.write_text('[storage]\nbackend = "s4"\n')
    base = [sys.executable, "-m", "vault.cli", "serve", "--data-dir", str(tmp_path / "d")]
    result = subprocess.run([*base, "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "storage.backend" in result.stderr and "lmdb" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "d").mkdir()
    with hold_node_lock(tmp_path / "d"):
        result = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "another vault node is running" in result.stderr


def _installed(group: str) -> str:
    return ", ".join(plugins.available(group))


@pytest.mark.parametrize(
    ("toml", "key", "group", "name"),
    [
        ('[plans]\npolicy = "ldap"\n', "plans.policy", plugins.POLICIES, "ldap"),
        ('[storage]\nbackend = "s4"\n', "storage.backend", plugins.BACKENDS, "s4"),
        ('[push]\nproviders = ["log", "pigeon"]\n', "push.providers", plugins.PUSH, "pigeon"),
    ],
)
def test_an_unknown_plugin_name_stops_serve_with_one_line_naming_the_key_and_what_is_installed(
    tmp_path: Path, toml: str, key: str, group: str, name: str
) -> None:
    path = tmp_path / "vault.toml"
    path.write_text(toml)
    result = subprocess.run(
        [sys.executable, "-m", "vault.cli", "serve", "--config", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"vault: config key {key}: no {group} plugin named {name!r} (available: {_installed(group)})"
    ]
    assert not (tmp_path / "d").exists()  # refused before it did anything


def test_a_wrong_backend_option_stops_serve_with_one_line_before_it_does_anything(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('[storage]\nbackend = "fs"\n[storage.options]\nfsync_every = 3\n')
    result = subprocess.run(
        [sys.executable, "-m", "vault.cli", "serve", "--config", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("vault: config key storage.options.fsync_every: ")
    assert not (tmp_path / "d").exists()


def test_hypercorns_read_timeout_outlasts_the_longest_long_poll(tmp_path: Path) -> None:
    """Hypercorn's read timeout runs while a request is answered: below the longest sync/status
    wait it cut long polls at 60 s (found by `python -m bench sync`)."""
    from vault.cli.serve import hypercorn_config
    from vault.config import config_from_mapping
    from vault.sync.wire import LONGEST_WAIT

    assert hypercorn_config(config_from_mapping({})).read_timeout > LONGEST_WAIT


async def test_a_connection_the_client_closes_between_requests_is_closed_at_once(tmp_path: Path) -> None:
    """Hypercorn's trio worker kept such a socket (CLOSE_WAIT, a file descriptor) until its 75 s
    keep-alive timer ran out; phones drop idle connections all the time."""
    from tests.process_node import serve, wait_healthy

    config = tmp_path / "vault.toml"
    config.write_text("")
    port = _free_port()
    proc = serve(config, tmp_path / "data", port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as other:
            for _ in range(3):
                sock = trio.socket.socket()
                await sock.connect(("127.0.0.1", port))
                with sock:
                    # An answer without a body (tus's OPTIONS) is what left connections behind.
                    await sock.send(b"OPTIONS /api/mobile/tus/ HTTP/1.1\r\nHost: node\r\n\r\n")
                    answer = b""
                    while b"\r\n\r\n" not in answer:
                        answer += await sock.recv(65536)
                    assert answer.startswith(b"HTTP/1.1 204"), answer
                    # A whole request on another connection meanwhile: by then the node has
                    # finished this one's answer and waits, idle, for its next request.
                    assert (await other.get("/api/health")).status_code == 200
                    sock.shutdown(socket.SHUT_WR)  # the client is done with this connection
                    with trio.fail_after(10):  # well inside the 75 s keep-alive timer
                        while await sock.recv(65536):
                            pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_sigterm_does_not_wait_for_a_kept_alive_idle_connection(tmp_path: Path) -> None:
    """A phone keeps its connection open between requests; a graceful stop must not sit out the
    whole grace period for it (Hypercorn's keep-alive timer, which closes such connections at
    shutdown, is often not running after a fast answer)."""
    from tests.process_node import serve, wait_healthy

    config = tmp_path / "vault.toml"
    config.write_text('[server]\nshutdown_grace = "60s"\n')
    port = _free_port()
    proc = serve(config, tmp_path / "data", port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as phone:
            for _ in range(3):
                assert (await phone.get("/api/health")).status_code == 200
            proc.send_signal(signal.SIGTERM)
            # Well inside the 60 s grace.
            assert await trio.to_thread.run_sync(lambda: proc.wait(timeout=15)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("then", [b"", b"GET /api/he"], ids=["idle", "a request head that never ends"])
async def test_a_kept_alive_connection_is_closed_after_its_keep_alive_time(tmp_path: Path, then: bytes) -> None:
    """After an answer of a JSON (Quart) route, Hypercorn's keep-alive timer was never restarted:
    an idle connection stayed open for the 330 s read timeout, and one that trickles its next
    request head (slowloris) for ever."""
    from tests.process_node import serve, wait_healthy

    config = tmp_path / "vault.toml"
    config.write_text('[server]\nkeep_alive_timeout = "1s"\n')
    port = _free_port()
    proc = serve(config, tmp_path / "data", port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        with sock:
            await sock.send(b"GET /api/health HTTP/1.1\r\nHost: node\r\n\r\n")
            answer = b""
            while b"healthy" not in answer:
                answer += await sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            await sock.send(then)
            with trio.fail_after(15):  # the node closes it after about 1 s
                while await sock.recv(65536):
                    pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_a_request_longer_than_the_keep_alive_time_is_not_cut_off(tmp_path: Path) -> None:
    """The keep-alive timer closes only a connection between requests: a long poll (3 s, past the
    1 s keep-alive) sent right behind another request's answer still gets its own answer."""
    from tests.auth_support import register_body
    from tests.process_node import serve, wait_healthy

    config = tmp_path / "vault.toml"
    config.write_text('[server]\nkeep_alive_timeout = "1s"\n')
    port = _free_port()
    proc = serve(config, tmp_path / "data", port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            signed = await http.post("/api/mobile/auth/register", json=register_body(device_id="poller"))
            token = signed.json()["tokens"]["accessToken"]
            first = await http.get("/api/mobile/sync/status", headers={"Authorization": f"Bearer {token}"})
            sync_token = first.json()["data"]["nextSyncToken"]
        for _ in range(2):
            sock = trio.socket.socket()
            await sock.connect(("127.0.0.1", port))
            with sock:
                auth = f"Authorization: Bearer {token}\r\n".encode()
                quick = b"GET /api/health HTTP/1.1\r\nHost: node\r\n\r\n"
                poll = f"GET /api/mobile/sync/status?wait=3&syncToken={sync_token} HTTP/1.1\r\nHost: node\r\n"
                await sock.send(quick + poll.encode() + auth + b"\r\n")  # pipelined, one write
                answers = b""
                with trio.fail_after(20):
                    while answers.count(b"HTTP/1.1 ") < 2 or not answers.endswith(b"}"):
                        data = await sock.recv(65536)
                        assert data, f"the node closed the connection during the long poll: {answers!r}"
                        answers += data
                assert answers.startswith(b"HTTP/1.1 200")
                assert b"HTTP/1.1 200" in answers.split(b"healthy", 1)[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _node_side_open(port: int, client_port: int) -> bool:
    """Whether the node still holds its end of the connection from ``client_port`` open
    (``/proc``: established, or closed by the client only; once the node closes it, the kernel
    keeps trying to send what was queued, as FIN_WAIT)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if (local, remote) == (port, client_port) and fields[3] in ("01", "08"):
            return True
    return False


async def test_a_downloader_that_stops_reading_is_cut_off_and_does_not_hold_a_stop(tmp_path: Path) -> None:
    """Hypercorn waited for ever on a client that takes no bytes: its connection and transfer slot
    were held as long as it liked, and a graceful stop never ended."""
    from tests.api_helpers import b3
    from tests.auth_support import register_body
    from tests.process_node import serve, wait_healthy

    config = tmp_path / "vault.toml"
    # One transfer at a time for the account: the stalled one's slot must come back.
    config.write_text('[server]\nsend_timeout = "1s"\nshutdown_grace = "2s"\nmax_transfers_per_user = 1\n')
    port = _free_port()
    proc = serve(config, tmp_path / "data", port)
    stalled: list[socket.socket] = []
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        data = os.urandom(12 * 1024 * 1024)  # far more than the socket buffers hold
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            signed = await http.post("/api/mobile/auth/register", json=register_body(device_id="d1"))
            token = signed.json()["tokens"]["accessToken"]
            query = {"name": "big.bin", "folder": "/", "checksum": b3(data)}
            stored = await http.post(
                "/api/mobile/upload/file", params=query, headers={"Authorization": f"Bearer {token}"}, content=data
            )
            assert stored.status_code == 201, stored.text
            file_id = stored.json()["data"]["file"]["id"]
        request = (
            f"GET /api/mobile/files/{file_id}/content HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {token}\r\n\r\n"
        )

        def stall() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request.encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # the download has started ...
            stalled.append(sock)
            return sock  # ... and then nothing more is read

        first = stall()
        with trio.fail_after(20):  # cut off after about 1 s of taking nothing
            while _node_side_open(port, first.getsockname()[1]):  # noqa: ASYNC110 - kernel state
                await trio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            again = await http.get(f"/api/mobile/files/{file_id}/content", headers={"Authorization": f"Bearer {token}"})
            assert again.status_code == 200 and again.content == data  # its transfer slot came back
        stall()
        proc.send_signal(signal.SIGTERM)
        # A stop ends within its grace even with a stalled downloader.
        assert await trio.to_thread.run_sync(lambda: proc.wait(timeout=15)) == 0
    finally:
        for sock in stalled:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
