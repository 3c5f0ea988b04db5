"""``vault-sync`` as a user runs it (a separate process) against a node over loopback: the three
commands of the quick start, every other command, and the exit codes scripts rely on."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import trio

import vault_client.client
from tests.client_support import PASSWORD, signed_in, tree_of
from tests.conftest import LiveNode
from tests.metrics_support import metric
from vault_client.auth import stored_credentials
from vault_client.cli import exit_codes, parse_rate
from vault_client.cli import main as cli_main
from vault_client.errors import NotFound
from vault_client.ratelimit import RateLimit
from vault_client.state import State
from vault_client.uploads import DEFAULT_CHUNK

CLIENT = Path(__file__).resolve().parent.parent / "client"
MiB = 1024 * 1024
EMAIL = "carol@example.com"
SUMMARY = "1 uploaded, 0 already on the node."


def _environment(env: dict[str, str] | None = None) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(CLIENT), environment.get("PYTHONPATH", "")])
    environment.update(env or {})
    return environment


def _command(*args: str, state: Path) -> list[str]:
    return [sys.executable, "-m", "vault_client.cli", *args, "--state", str(state)]


async def vault_sync(
    *args: str, state: Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the command line in its own process (bounded in time) and answer (code, stdout, stderr)."""
    environment = _environment(env)
    with trio.fail_after(120):
        done = await trio.run_process(
            _command(*args, state=state),
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=environment,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def login(live_node: LiveNode, state: Path, email: str = EMAIL) -> None:
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


# -- on a terminal, --limit-rate, kill -9 and Ctrl-C mid-upload -----------------------------------

# What a terminal interprets rather than shows: CSI (colours, cursor moves, erase), OSC, charset picks.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\r")
_SPEED = re.compile(r"\d+(\.\d+)? [kMG]?B/s")  # rich's TransferSpeedColumn: "2.1 MB/s"
_TIME_LEFT = re.compile(r"\d+:\d\d:\d\d")  # rich's TimeRemainingColumn: "0:00:02"
_BODY_BYTES = "vault_request_body_bytes_total"


async def test_push_on_a_terminal_draws_a_bar_with_speed_and_time_left(live_node: LiveNode, tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    video = tmp_path / "holiday-video.mp4"
    video.write_bytes(os.urandom(6 * MiB))  # at 2 MiB/s: seconds of bar
    code, drawn = await _on_a_terminal("push", str(video), "--to", "/videos", "--limit-rate", "2M", state=state)
    assert code == exit_codes.OK, drawn
    assert "holiday-video.mp4" in drawn  # the file's own bar (the summary names no file)
    assert _SPEED.search(drawn), drawn
    assert _TIME_LEFT.search(drawn), drawn
    assert SUMMARY in drawn
    # Not on a terminal (a script, cron, a pipe): the same slow push draws nothing, only the summary.
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(3 * MiB))
    code, out, err = await vault_sync("push", str(clip), "--to", "/videos", "--limit-rate", "2M", state=state)
    assert code == exit_codes.OK, err
    assert out == SUMMARY + "\n"
    assert err == ""
    assert await _on_the_node(live_node, tmp_path, "/videos", "holiday-video.mp4") == [video.read_bytes()]


async def _on_a_terminal(*args: str, state: Path, columns: int = 120) -> tuple[int, str]:
    """Run the command line with stdout and stderr on a pseudo-terminal ``columns`` wide, as in
    a terminal window; answer its exit code and what it wrote, escape sequences taken out."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    os.set_blocking(master, False)
    environment = _environment({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40"})
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        environment.pop(name, None)
    drawn = bytearray()
    try:
        process = await trio.lowlevel.open_process(
            _command(*args, state=state), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=environment
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child holds its own copies: once it exits, reading the master ends
    try:
        with trio.fail_after(60):
            while True:
                await trio.lowlevel.wait_readable(master)
                try:
                    piece = os.read(master, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    break  # EIO: no process has the terminal open any more
                if not piece:
                    break
                drawn += piece
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()  # only the process this test started, by its PID
            await process.wait()
        trio.lowlevel.notify_closing(master)
        os.close(master)
    return code, _ESCAPES.sub("", drawn.decode(errors="replace"))


class _RecordingLimit(RateLimit):
    """The limiter ``--limit-rate`` makes, noting the bytes it let through and when (Trio's clock)."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        super().__init__(rate, burst)
        self.passed = 0
        self.first: float | None = None
        self.last = 0.0

    async def take(self, n: int) -> None:
        if self.first is None:
            self.first = trio.current_time()
        await super().take(n)
        self.passed += n
        self.last = trio.current_time()


async def test_limit_rate_paces_every_byte_of_a_real_push(
    live_node: LiveNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    archive = tmp_path / "archive.tar"
    archive.write_bytes(os.urandom(6 * MiB))
    made: list[_RecordingLimit] = []

    def recording(rate: float) -> RateLimit:
        made.append(_RecordingLimit(rate))
        return made[-1]

    monkeypatch.setattr(vault_client.client, "RateLimit", recording)
    before = await _metrics(live_node)
    # The real command line (its own trio.run, in a worker thread) against the node over loopback.
    argv = ["push", str(archive), "--to", "/backups", "--limit-rate", "2M", "--state", str(state)]
    with trio.fail_after(60):
        code = await trio.to_thread.run_sync(cli_main, argv, abandon_on_cancel=True)
    assert code == exit_codes.OK
    after = await _metrics(live_node)
    (limit,) = made
    assert limit.rate == 2 * MiB
    size = archive.stat().st_size
    assert limit.passed == size  # every byte of the chunk went through the limiter ...
    assert _value(after, _BODY_BYTES) - _value(before, _BODY_BYTES) == size  # ... and reached the node
    # A token bucket lets at most burst + rate * t bytes through in t seconds: 6 MiB at 2 MiB/s
    # (burst 0.5 MiB) cannot have gone in less than 2.75 s. Unpaced, loopback takes milliseconds.
    assert limit.first is not None
    assert limit.last - limit.first >= (size - limit.burst) / limit.rate - 0.001  # (float rounding)
    assert await _on_the_node(live_node, tmp_path, "/backups", "archive.tar") == [archive.read_bytes()]


async def test_a_push_killed_mid_upload_resumes_with_what_the_node_holds(live_node: LiveNode, tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    chunks = 5
    disk = tmp_path / "disk.img"
    disk.write_bytes(os.urandom(chunks * DEFAULT_CHUNK))
    start = await _metrics(live_node)
    # One chunk at a time at 8 MiB/s: about a second a chunk, the whole file no sooner than 4.75 s.
    args = _command("push", str(disk), "--to", "/backups", "--limit-rate", "8M", "--parallel", "1", state=state)
    process = await trio.lowlevel.open_process(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_environment()
    )
    try:
        with trio.fail_after(60):
            await _until(live_node, process, lambda m: _chunk_puts(m) > _chunk_puts(start))
        process.kill()  # SIGKILL, only the process this test started, by its PID
        with trio.fail_after(30):
            assert await process.wait() == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Killed mid-upload: the node has no file yet, and the state remembers the open upload.
    assert await _on_the_node(live_node, tmp_path, "/backups", "disk.img") == []
    remembered = State(state)
    try:
        assert remembered.upload_count() == 1
    finally:
        remembered.close()
    before = await _metrics(live_node)
    code, out, err = await vault_sync("push", str(disk), "--to", "/backups", state=state)
    assert code == exit_codes.OK, err
    assert out == SUMMARY + "\n"
    after = await _metrics(live_node)
    # The second run sent only what the node lacked, not the whole file again.
    assert _chunk_puts(after) - _chunk_puts(before) < chunks
    assert _value(after, _BODY_BYTES) - _value(before, _BODY_BYTES) < disk.stat().st_size
    assert await _on_the_node(live_node, tmp_path, "/backups", "disk.img") == [disk.read_bytes()]
    remembered = State(state)
    try:
        assert remembered.upload_count() == 0
    finally:
        remembered.close()


async def test_ctrl_c_stops_a_push_with_exit_130_and_the_next_push_completes(
    live_node: LiveNode, tmp_path: Path
) -> None:
    state = tmp_path / "s.sqlite3"
    await login(live_node, state)
    movie = tmp_path / "movie.mkv"
    movie.write_bytes(os.urandom(3 * DEFAULT_CHUNK))  # at 4 MiB/s: no sooner than 5.5 s
    start = await _metrics(live_node)
    args = _command("push", str(movie), "--to", "/films", "--limit-rate", "4M", state=state)
    process = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_environment())
    try:
        with trio.fail_after(60):
            await _until(live_node, process, lambda m: _value(m, _BODY_BYTES) > _value(start, _BODY_BYTES))
        process.send_signal(signal.SIGINT)  # as Ctrl-C, mid-transfer
        with trio.fail_after(30):
            code = await process.wait()
            out, err = await _read_all(process.stdout), await _read_all(process.stderr)
    finally:
        if process.returncode is None:
            process.kill()  # only the process this test started, by its PID
            await process.wait()
    assert code == exit_codes.INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert out == ""  # no summary: nothing claims to be uploaded
    assert await _on_the_node(live_node, tmp_path, "/films", "movie.mkv") == []
    code, out, err = await vault_sync("push", str(movie), "--to", "/films", state=state)
    assert code == exit_codes.OK, err
    assert out == SUMMARY + "\n"
    assert await _on_the_node(live_node, tmp_path, "/films", "movie.mkv") == [movie.read_bytes()]


async def _read_all(stream: trio.abc.ReceiveStream | None) -> str:
    assert stream is not None
    data = b""
    while piece := await stream.receive_some(65536):
        data += piece
    return data.decode()


async def _until(live_node: LiveNode, process: trio.Process, done: Callable[[str], bool]) -> str:
    """Poll the node's /metrics until ``done`` says yes (failing at once if ``process`` ended first)."""
    while True:
        metrics = await _metrics(live_node)
        if done(metrics):
            return metrics
        if process.poll() is not None:
            raise AssertionError(f"vault-sync ended (exit {process.returncode}) before it was time to stop it")
        await trio.sleep(0.05)


async def _metrics(live_node: LiveNode) -> str:
    async with live_node.client() as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


def _value(metrics: str, name: str) -> float:
    return metric(metrics, name)


def _chunk_puts(metrics: str, status: int = 200) -> float:
    """Chunk PUTs the node has answered with ``status``."""
    return metric(
        metrics,
        "vault_http_requests_total",
        default=0,
        method="PUT",
        route="/api/mobile/upload/{upload_id}/chunks/{index}",
        status=str(status),
    )


async def _on_the_node(live_node: LiveNode, tmp_path: Path, folder: str, name: str) -> list[bytes]:
    """The content of every file called ``name`` the node holds in ``folder`` (for the tests' user)."""
    found: list[bytes] = []
    async with await signed_in(live_node.base_url, tmp_path / "checker.sqlite3", email=EMAIL) as client:
        try:
            listing = await client.list_folder(folder)
        except NotFound:
            return found
        for n, entry in enumerate(f for f in listing.files if f.name == name):
            target = tmp_path / "from-the-node" / f"{n}-{name}"
            target.parent.mkdir(exist_ok=True)
            await client.download(entry, target)
            found.append(target.read_bytes())
    return found
