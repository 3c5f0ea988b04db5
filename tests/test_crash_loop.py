"""The crash loop: a real node is killed with ``kill -9`` at random moments while clients upload
(chunk API and tus), complete, rename and hand over offline-queue operations; after every restart
nothing acknowledged is missing or wrong, nothing unacknowledged is half-visible, every
interrupted upload (tus too) resumes to a verified file, every acknowledged queue operation is
still there, the sync listing agrees with the files, and at the end ``vault fsck`` is clean. 15 kills per backend; and
the same with 5 graceful stops (SIGTERM) per backend, each of which must end by itself, exit 0.

Kill moments come from a seeded generator (``VAULT_CRASH_SEED`` to replay one); the figures are
printed (``-s``)."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import httpx
import pytest
import trio

from tests.auth_support import register_body
from tests.process_node import free_port as _free_port
from tests.process_node import serve as _serve
from tests.process_node import wait_healthy as _wait_healthy

pytestmark = pytest.mark.reliability

KILLS = 15
GRACEFUL_STOPS = 5
SHUTDOWN_GRACE = 10
WORKERS = 4
CHUNK = 64 * 1024


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@dataclass
class Ledger:
    """What the node acknowledged, and what was in flight when it died."""

    files: dict[str, str] = field(default_factory=dict)  # file id -> checksum acknowledged
    names: dict[str, set[str]] = field(default_factory=dict)  # file id -> names it may have now
    interrupted: dict[str, bytes] = field(default_factory=dict)  # upload id -> its content
    acknowledged: int = 0
    resumed: int = 0
    losses: list[str] = field(default_factory=list)
    verified: set[tuple[str, str]] = field(default_factory=set)  # (file id, checksum) read back whole
    tus_open: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tus path -> (name, content)
    tus_files: dict[str, str] = field(default_factory=dict)  # name in /crash -> checksum, tus-uploaded
    queued: set[str] = field(default_factory=set)  # queue operation ids the node acknowledged


async def _upload(http: httpx.AsyncClient, headers: dict[str, str], ledger: Ledger, rng: random.Random, n: str) -> str:
    data = rng.randbytes(rng.randrange(1, 6 * CHUNK))
    entry = {"localId": n, "name": f"f{n}.bin", "size": len(data), "folder": "/crash", "checksum": b3(data)}
    init = await http.post("/api/mobile/upload/init", headers=headers, json={"files": [entry]}, extensions={})
    init.raise_for_status()
    planned = init.json()["data"]["files"][0]
    upload_id = planned["uploadId"]
    ledger.interrupted[upload_id] = data  # until complete is acknowledged
    for chunk in planned["chunks"]:
        put = await http.put(chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1])
        put.raise_for_status()
    done = await http.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": upload_id, "checksum": b3(data)}
    )
    done.raise_for_status()
    file_id = done.json()["data"]["file"]["id"]
    del ledger.interrupted[upload_id]
    ledger.files[file_id] = b3(data)
    ledger.names[file_id] = {f"f{n}.bin"}
    ledger.acknowledged += 1
    return str(file_id)


async def _rename(http: httpx.AsyncClient, headers: dict[str, str], ledger: Ledger, file_id: str, n: str) -> None:
    """Rename one of the worker's own files (two renames of one file at once would leave the
    test, not the node, unsure which one landed last)."""
    name = f"r{n}.bin"
    ledger.names[file_id].add(name)  # in flight: either name may be the file's after a kill
    answer = await http.patch(f"/api/mobile/files/{file_id}", headers=headers, json={"name": name})
    answer.raise_for_status()
    ledger.names[file_id] = {name}
    ledger.acknowledged += 1


def _tus_headers(headers: dict[str, str], **more: str) -> dict[str, str]:
    return {**headers, "Tus-Resumable": "1.0.0", **more}


async def _tus_patch(http: httpx.AsyncClient, headers: dict[str, str], path: str, offset: int, piece: bytes) -> int:
    patched = await http.patch(
        path,
        headers=_tus_headers(
            headers, **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        ),
        content=piece,
    )
    patched.raise_for_status()
    return int(patched.headers["upload-offset"])


async def _tus_upload(
    http: httpx.AsyncClient, headers: dict[str, str], ledger: Ledger, rng: random.Random, n: str
) -> None:
    """A tus upload in a few PATCHes; kept open in the ledger until its last PATCH is answered."""
    data = rng.randbytes(rng.randrange(1, 4 * CHUNK))
    name = f"t{n}.bin"
    meta = f"filename {base64.b64encode(name.encode()).decode()},folder {base64.b64encode(b'/crash').decode()}"
    created = await http.post(
        "/api/mobile/tus/", headers=_tus_headers(headers, **{"Upload-Length": str(len(data)), "Upload-Metadata": meta})
    )
    created.raise_for_status()
    path = httpx.URL(created.headers["location"]).raw_path.decode()
    ledger.tus_open[path] = (name, data)
    offset = 0
    while offset < len(data):
        offset = await _tus_patch(http, headers, path, offset, data[offset : offset + rng.randrange(1, 2 * CHUNK)])
    del ledger.tus_open[path]
    ledger.tus_files[name] = b3(data)
    ledger.acknowledged += 1


async def _queue_mkdir(http: httpx.AsyncClient, headers: dict[str, str], ledger: Ledger, n: str) -> None:
    """An offline-queue operation handed over: once acknowledged it must survive any crash."""
    op = {"id": f"q{n}", "type": "mkdir", "folder": f"/crash-q/{n}"}
    added = await http.post("/api/mobile/queue/add", headers=headers, json={"operations": [op]})
    added.raise_for_status()
    [answer] = added.json()["data"]["operations"]
    assert answer["status"] in ("queued", "done"), answer
    ledger.queued.add(op["id"])
    ledger.acknowledged += 1


async def _worker(base: str, headers: dict[str, str], ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Operations until the node goes away under it."""
    mine: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for k in range(10_000):
            try:
                roll = rng.random()
                if not mine or roll < 0.5:
                    mine.append(await _upload(http, headers, ledger, rng, f"{tag}-{k}"))
                elif roll < 0.7:
                    await _tus_upload(http, headers, ledger, rng, f"{tag}-{k}")
                elif roll < 0.8:
                    await _queue_mkdir(http, headers, ledger, f"{tag}-{k}")
                else:
                    await _rename(http, headers, ledger, rng.choice(mine), f"{tag}-{k}")
            except (httpx.TransportError, httpx.HTTPStatusError):
                return


async def _check(base: str, headers: dict[str, str], ledger: Ledger) -> None:
    """Everything acknowledged is there and right; resume every interrupted upload; what is
    listed verifies; the sync listing names the same files."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for upload_id, data in list(ledger.interrupted.items()):
            state = await http.get(f"/api/mobile/upload/{upload_id}", headers=headers)
            if state.status_code == 404:  # init was not acknowledged before the kill
                del ledger.interrupted[upload_id]
                continue
            body = state.json()["data"]
            if body.get("fileId") is None:
                for index in body["missingChunks"]:
                    piece = data[index * body["chunkSize"] : (index + 1) * body["chunkSize"]]
                    put = await http.put(
                        f"/api/mobile/upload/{upload_id}/chunks/{index}", headers=headers, content=piece
                    )
                    assert put.status_code == 200, put.text
            done = await http.post(
                "/api/mobile/upload/complete", headers=headers, json={"uploadId": upload_id, "checksum": b3(data)}
            )
            assert done.status_code == 200, done.text
            file_id = done.json()["data"]["file"]["id"]
            ledger.files[file_id] = b3(data)
            ledger.names[file_id] = {done.json()["data"]["file"]["name"]}
            del ledger.interrupted[upload_id]
            ledger.resumed += 1
        for path, (name, data) in list(ledger.tus_open.items()):  # resumed from the node's offset
            head = await http.head(path, headers=_tus_headers(headers))
            assert head.status_code == 200, (path, head.status_code)
            offset = int(head.headers["upload-offset"])
            while offset < len(data):
                offset = await _tus_patch(http, headers, path, offset, data[offset : offset + 2 * CHUNK])
            del ledger.tus_open[path]
            ledger.tus_files[name] = b3(data)
            ledger.resumed += 1
        for file_id, checksum in ledger.files.items():
            entry = await http.get(f"/api/mobile/files/{file_id}", headers=headers)
            if entry.status_code != 200:
                ledger.losses.append(f"{file_id}: {entry.status_code}")
                continue
            got = entry.json()["data"]["file"]
            if got["checksum"] != checksum or got["name"] not in ledger.names[file_id]:
                ledger.losses.append(f"{file_id}: {got['checksum']} {got['name']}")
            ledger.names[file_id] = {got["name"]}
        listed = await http.get("/api/mobile/files", params={"folder": "/crash", "limit": 5000}, headers=headers)
        files = listed.json()["data"]["files"] if listed.status_code == 200 else []
        for entry in files:  # nothing half-visible: whatever is listed reads back as its checksum
            if (entry["id"], entry["checksum"]) in ledger.verified:
                continue
            content = await http.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
            assert content.status_code == 200 and b3(content.content) == entry["checksum"], entry
            ledger.verified.add((entry["id"], entry["checksum"]))
        by_name = {entry["name"]: entry["checksum"] for entry in files}
        for name, checksum in ledger.tus_files.items():
            if by_name.get(name) != checksum:
                ledger.losses.append(f"tus {name}: {by_name.get(name)}")
        queue = await http.get("/api/mobile/queue", params={"limit": 5000}, headers=headers)
        status = {op["id"]: op["status"] for op in queue.json()["data"]["operations"]}
        for op_id in ledger.queued:
            if status.get(op_id) not in ("queued", "done"):
                ledger.losses.append(f"queued {op_id}: {status.get(op_id)}")
        synced = await http.get("/api/mobile/sync/status", params={"limit": 5000}, headers=headers)
        created = {e["id"] for e in synced.json()["data"]["changes"]["created"]}
        assert created == {e["id"] for e in files}


def _fsck(config: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vault.cli", "fsck", "--config", str(config), "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path, backend: str) -> None:
    await _stop_loop(tmp_path, backend, signal.SIGKILL, KILLS)


@pytest.mark.parametrize("backend", ["lmdb", "fs"])
async def test_sigterm_under_load_stops_cleanly_and_loses_nothing(tmp_path: Path, backend: str) -> None:
    """A graceful stop (SIGTERM, as systemd and `docker stop` send) in the middle of the same
    load: the node finishes or refuses what is in flight, exits 0 within its shutdown grace, and
    the restarted node holds everything acknowledged, nothing half-written (fsck clean)."""
    await _stop_loop(tmp_path, backend, signal.SIGTERM, GRACEFUL_STOPS)


async def _stop_loop(tmp_path: Path, backend: str, stop: signal.Signals, rounds: int) -> None:
    seed = int(os.environ.get("VAULT_CRASH_SEED", "20261202"))
    rng = random.Random(f"{seed}-{backend}-{stop.name}")
    config = tmp_path / "vault.toml"
    config.write_text(
        f'[storage]\nbackend = "{backend}"\n[uploads]\ndefault_chunk_size = "64KiB"\n'
        f'[server]\nshutdown_grace = "{SHUTDOWN_GRACE}s"\n'
    )
    data_dir = tmp_path / "data"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    ledger = Ledger()
    headers: dict[str, str] = {}
    exits: list[int | None] = []
    stopping: list[float] = []  # seconds from the signal to the node's exit
    for kill in range(rounds + 1):
        proc = _serve(config, data_dir, port)
        try:
            await _wait_healthy(base, proc)
            if not headers:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    signed = await http.post("/api/mobile/auth/register", json=register_body(device_id="crash"))
                    headers = {"Authorization": f"Bearer {signed.json()['tokens']['accessToken']}"}
            await _check(base, headers, ledger)
            if kill == rounds:
                break
            async with trio.open_nursery() as nursery:
                for w in range(WORKERS):
                    nursery.start_soon(_worker, base, headers, ledger, random.Random(rng.random()), f"{kill}.{w}")
                await trio.sleep(rng.uniform(0.2, 1.2))  # the random moment of the stop
                proc.send_signal(stop)
                signalled = trio.current_time()
                try:
                    exits.append(await trio.to_thread.run_sync(proc.wait, SHUTDOWN_GRACE + 20))
                except subprocess.TimeoutExpired:
                    exits.append(None)  # still running well past its grace: a failed stop
                stopping.append(trio.current_time() - signalled)
        finally:
            if proc.poll() is None:
                proc.kill()
                await trio.to_thread.run_sync(proc.wait)
    fsck = await trio.to_thread.run_sync(_fsck, config, data_dir)
    print(
        f"{backend}: {rounds} x {stop.name}, {ledger.acknowledged} acknowledged operations, {ledger.resumed} "
        f"interrupted uploads resumed, {len(ledger.files)} + {len(ledger.tus_files)} (tus) files, "
        f"{len(ledger.queued)} queued operations, {len(ledger.losses)} losses; exits {exits} "
        f"after {max(stopping):.1f} s at most; "
        f"fsck exit {fsck.returncode}"
    )
    assert ledger.losses == []
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    if stop == signal.SIGTERM:
        assert exits == [0] * rounds  # each stop finished by itself, cleanly
        # ... and did not sit out its grace: what was in flight finished, the idle connections
        # were closed (Hypercorn alone held a stop for the whole grace when a client had sent its
        # next request as the last answer went out, and about one in fifty did when such a
        # request was parsed after the stop closed its connection; 0 of 900 since the fix).
        assert all(seconds < SHUTDOWN_GRACE for seconds in stopping), stopping
        assert sorted(stopping)[len(stopping) // 2] < 2
