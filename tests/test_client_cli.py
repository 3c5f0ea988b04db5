"""``vault-sync`` as a user runs it (a separate process) against a node over loopback: the three
commands of the quick start, every other command, and the exit codes scripts rely on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import trio

from tests.client_support import PASSWORD, tree_of
from tests.conftest import LiveNode
from vault_client.auth import stored_credentials
from vault_client.cli import exit_codes, parse_rate
from vault_client.state import State

CLIENT = Path(__file__).resolve().parent.parent / "client"


async def vault_sync(
    *args: str, state: Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the command line in its own process (bounded in time) and answer (code, stdout, stderr)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(CLIENT), environment.get("PYTHONPATH", "")])
    environment.update(env or {})
    with trio.fail_after(120):
        done = await trio.run_process(
            [sys.executable, "-m", "vault_client.cli", *args, "--state", str(state)],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=environment,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def login(live_node: LiveNode, state: Path, email: str = "carol@example.com") -> None:
    code, out, err = await vault_sync(
        "login", live_node.base_url, "--email", email, "--password-stdin", state=state, stdin=PASSWORD.encode() + b"\n"
    )
    assert code == exit_codes.OK, err
    assert f"as {email}" in out


async def test_the_quick_start_syncs_a_folder_in_three_commands(live_node: LiveNode, tmp_path: Path) -> None:
    photos = tmp_path / "Photos"
    photos.mkdir()
    (photos / "IMG_0001.jpg").write_bytes(os.urandom(300_000))
    (photos / "trip").mkdir()
    (photos / "trip" / "IMG_0002.jpg").write_bytes(os.urandom(2_000_000))
    state = tmp_path / "laptop.sqlite3"
    await login(live_node, state)
    code, out, err = await vault_sync("sync", str(photos), "--remote", "/Photos", "--once", state=state)
    assert code == exit_codes.OK, err
    assert "2 uploaded" in out
    code, out, _ = await vault_sync("status", state=state)
    assert code == exit_codes.OK and "(reachable)" in out and "2 files" in out
    # A second machine pulls the same folder down.
    other = tmp_path / "other.sqlite3"
    await login(live_node, other)
    code, out, err = await vault_sync("pull", str(tmp_path / "Copy"), "--from", "/Photos", state=other)
    assert code == exit_codes.OK, err
    assert tree_of(tmp_path / "Copy") == tree_of(photos)
    # Not a terminal: no progress bars, only the summary line.
    assert "\x1b[" not in out and out.count("\n") == 1


async def test_push_skips_content_the_node_holds_and_json_status_is_for_scripts(
    live_node: LiveNode, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.7 " + os.urandom(10_000))
    code, out, _ = await vault_sync("push", str(doc), "--to", "/docs", state=state)
    assert code == exit_codes.OK and "1 uploaded, 0 already on the node" in out
    code, out, _ = await vault_sync("push", str(doc), "--to", "/docs", state=state)
    assert code == exit_codes.OK and "0 uploaded, 1 already on the node" in out
    code, out, _ = await vault_sync("push", str(tmp_path / "missing.jpg"), state=state)
    assert code == exit_codes.PARTIAL
    code, out, _ = await vault_sync("status", "--json", state=state)
    assert code == exit_codes.OK and '"signedIn": true' in out


async def test_conflicts_are_listed_with_exit_code_5_and_resolve_clears_them(
    live_node: LiveNode, tmp_path: Path
) -> None:
    laptop, desktop = tmp_path / "laptop.sqlite3", tmp_path / "desktop.sqlite3"
    here, there = tmp_path / "here", tmp_path / "there"
    await login(live_node, laptop)
    await login(live_node, desktop)
    here.mkdir()
    (here / "plan.md").write_text("v1")
    assert (await vault_sync("sync", str(here), "--once", state=laptop))[0] == exit_codes.OK
    assert (await vault_sync("sync", str(there), "--once", state=desktop))[0] == exit_codes.OK
    (here / "plan.md").write_text("laptop's")
    (there / "plan.md").write_text("desktop's")
    assert (await vault_sync("sync", str(here), "--once", state=laptop))[0] == exit_codes.OK
    code, _, err = await vault_sync("sync", str(there), "--once", state=desktop)
    assert code == exit_codes.CONFLICTS and "conflict on plan.md" in err
    code, out, _ = await vault_sync("conflicts", state=desktop)
    assert code == exit_codes.CONFLICTS and "plan.md" in out and "version_mismatch" in out
    conflict_id = out.split()[0]
    code, _, err = await vault_sync("resolve", conflict_id, "keep_both", state=desktop)
    assert code == exit_codes.OK, err
    assert (await vault_sync("conflicts", state=desktop))[0] == exit_codes.OK
    assert (await vault_sync("sync", str(here), "--once", state=laptop))[0] == exit_codes.OK
    assert sorted(tree_of(here).values()) == sorted(tree_of(there).values()) == [b"desktop's", b"laptop's"]


async def test_exit_codes_for_offline_signed_out_and_metered(live_node: LiveNode, tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite3"
    folder = tmp_path / "f"
    folder.mkdir()
    assert (await vault_sync("sync", str(folder), "--once", state=state))[0] == exit_codes.NOT_SIGNED_IN
    await login(live_node, state)
    code, _, err = await vault_sync(
        "sync", str(folder), "--once", "--wifi-only", state=state, env={"VAULT_SYNC_NETWORK": "metered"}
    )
    assert code == exit_codes.NETWORK_NOT_ALLOWED and "--wifi-only" in err
    code, _, _ = await vault_sync(
        "sync", str(folder), "--once", "--wifi-only", state=state, env={"VAULT_SYNC_NETWORK": "unmetered"}
    )
    assert code == exit_codes.OK
    # The folder is now bound to the node's "/": another remote for it is a usage error, not a crash.
    code, _, err = await vault_sync("sync", str(folder), "--once", "--remote", "/elsewhere", state=state)
    assert code == exit_codes.USAGE and "already synced with /" in err
    code, _, _ = await vault_sync("logout", state=state)
    assert code == exit_codes.OK
    assert (await vault_sync("status", state=state))[0] == exit_codes.NOT_SIGNED_IN
    # A node that is gone: exit 4, and a change made meanwhile waits in the queue.
    await login(live_node, state)
    dead = _closed_port_url()
    moved = State(state)
    credentials = stored_credentials(moved)
    assert credentials is not None
    moved.put_struct("credentials", msgspec.structs.replace(credentials, base_url=dead))
    moved.close()
    (folder / "later.txt").write_text("kept for later")
    code, _, err = await vault_sync("sync", str(folder), "--once", state=state)
    assert code == exit_codes.OFFLINE and "cannot be reached" in err
    code, out, _ = await vault_sync("status", "--json", state=state)
    assert code == exit_codes.OFFLINE and '"pendingChanges": 1' in out
    code, _, err = await vault_sync(
        "login", dead, "--email", "x@example.com", "--password-stdin", state=tmp_path / "d.sqlite3", stdin=b"pw\n"
    )
    assert code == exit_codes.OFFLINE, err
    code, _, _ = await vault_sync("bogus", state=state)
    assert code == exit_codes.USAGE


async def test_sync_watches_the_folder_and_stops_cleanly_on_sigint(live_node: LiveNode, tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    folder = tmp_path / "watched"
    folder.mkdir()
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(CLIENT), environment.get("PYTHONPATH", "")])
    args = [sys.executable, "-m", "vault_client.cli", "sync", str(folder), "--poll-wait", "5", "--state", str(state)]
    process = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, env=environment)
    try:
        seen = b""
        with trio.fail_after(60):
            seen = await _wait_for(process, seen, b"Syncing ")
            (folder / "dropped in.txt").write_text("picked up by the watcher")
            await _wait_for(process, seen, b"1 uploaded")
        process.send_signal(signal.SIGINT)  # as Ctrl-C
        with trio.fail_after(30):
            code = await process.wait()
        assert code == exit_codes.OK
    finally:
        if process.returncode is None:
            process.kill()  # only the process this test started, by its PID
            await process.wait()


async def _wait_for(process: trio.Process, seen: bytes, text: bytes) -> bytes:
    """Read the process's output until ``text`` appears in what came after ``seen``."""
    assert process.stdout is not None
    output = seen
    while text not in output[len(seen) :]:
        piece = await process.stdout.receive_some(4096)
        if not piece:
            raise AssertionError(f"vault-sync ended before printing {text!r}: {output!r}")
        output += piece
    return output


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_rates_read_like_curls() -> None:
    assert parse_rate("500K") == 500 * 1024
    assert parse_rate("2M") == 2 * 1024 * 1024
    assert parse_rate("1.5MiB") == 1.5 * 1024 * 1024
    assert parse_rate("800000") == 800000
