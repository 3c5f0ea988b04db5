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
