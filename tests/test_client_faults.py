"""The client against real faults over loopback: a proxy that drops connections mid-chunk, and a
node (a ``vault serve`` process) killed with ``kill -9`` in the middle of a sync. Each time the
local folders and the node converge, with nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import trio

from tests.client_support import PASSWORD, signed_in, tree_of
from tests.conftest import LiveNode
from tests.test_crash_resume import _free_port, _node, _wait_healthy
from vault_client.client import Client
from vault_client.hashing import checksum_of_bytes
from vault_client.retry import RetryPolicy
from vault_client.state import State
from vault_client.syncer import Syncer

KiB, MiB = 1024, 1024 * 1024
# Enough patience for a proxy that cuts a connection every 2 MiB of traffic (waits stay short).
PATIENT = RetryPolicy(attempts=12, base=0.01, cap=0.1)


class FlakyProxy:
    """A TCP proxy in front of the node that cuts the connection carrying the traffic each time
    another ``period`` bytes have crossed it (in either direction, over all connections): mid-chunk
    for uploads, mid-body for downloads. Counting bytes rather than connections makes the number of
    faults independent of how many connections the client happens to keep alive."""

    def __init__(self, target_port: int, *, period: int = 2 * MiB) -> None:
        self.target_port = target_port
        self.period = period
        self.crossed = 0
        self.next_drop = period
        self.dropped = 0

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, downstream: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await downstream.aclose()
            return
        async with downstream, upstream, trio.open_nursery() as nursery:

            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                try:
                    while data := await source.receive_some(64 * KiB):
                        self.crossed += len(data)
                        if self.crossed >= self.next_drop:
                            self.next_drop = self.crossed + self.period
                            await sink.send_all(data[: len(data) // 2])
                            self.dropped += 1
                            nursery.cancel_scope.cancel()  # both sides closed mid-message
                            return
                        await sink.send_all(data)
                    await sink.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    nursery.cancel_scope.cancel()

            nursery.start_soon(pump, downstream, upstream)
            nursery.start_soon(pump, upstream, downstream)


def _photos(folder: Path, seed: int, count: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = rng.choice([40 * KiB, 300 * KiB, 700 * KiB, 1 * MiB + 5])
        sub = folder / f"{2020 + i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"IMG_{i:04d}.jpg").write_bytes(rng.randbytes(size))


async def test_uploads_downloads_and_sync_through_a_proxy_that_drops_connections_mid_chunk(
    live_node: LiveNode, tmp_path: Path, nursery: trio.Nursery
) -> None:
    port = int(live_node.base_url.rsplit(":", 1)[1])
    proxy = FlakyProxy(port)
    proxy_port = await nursery.start(proxy.serve)
    base = f"http://127.0.0.1:{proxy_port}"

    data = os.urandom(3 * MiB + 11)
    path = tmp_path / "movie.mp4"
    path.write_bytes(data)
    client = await signed_in(base, tmp_path / "a.sqlite3", retry=PATIENT, chunk_size=256 * KiB, parallel=3)
    entry = await client.upload(path, folder="/films")
    assert entry.checksum == checksum_of_bytes(data)
    target = tmp_path / "back" / "movie.mp4"
    await client.download(entry, target)
    assert target.read_bytes() == data

    device_a = Syncer(client, tmp_path / "A")
    _photos(device_a.local, seed=5, count=12)
    other = await signed_in(base, tmp_path / "b.sqlite3", retry=PATIENT, chunk_size=256 * KiB)
    device_b = Syncer(other, tmp_path / "B")
    for _ in range(2):
        for device in (device_a, device_b):
            report = await device.sync_once()
            assert not report.offline and not report.rejected, report
    assert proxy.dropped >= 3  # the faults really happened
    assert tree_of(device_b.local) == tree_of(device_a.local)
    assert tree_of(device_b.local)["films/movie.mp4"] == data and len(tree_of(device_b.local)) == 13
    await client.aclose()
    await other.aclose()


async def test_a_node_killed_with_kill_9_mid_sync_restarts_and_the_folders_converge_with_nothing_lost(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    quick = RetryPolicy(attempts=3, base=0.01, cap=0.02)
    folder_a, folder_b = tmp_path / "A", tmp_path / "B"
    _photos(folder_a, seed=9, count=20)
    (folder_a / "notes.txt").write_text("written before the crash")

    class KillAfter:
        """Progress that kills the node (SIGKILL) once ``limit`` bytes moved."""

        def __init__(self, proc: subprocess.Popen[bytes], limit: int) -> None:
            self.proc, self.limit, self.moved, self.killed = proc, limit, 0, False

        def start(self, key: str, label: str, total: int) -> None:
            pass

        def advance(self, key: str, n: int) -> None:
            self.moved += max(0, n)
            if not self.killed and self.moved >= self.limit:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.killed = True

        def finish(self, key: str) -> None:
            pass

    with _node(data_dir, port, "lmdb") as proc:
        await _wait_healthy(base, proc)
        for state in ("a", "b"):
            signer = Client(base, state=State(tmp_path / f"{state}.sqlite3"))
            await signer.sign_in("dana@example.com", PASSWORD)
            await signer.aclose()
        killer = KillAfter(proc, 4 * MiB)
        a = Client(base, state=State(tmp_path / "a.sqlite3"), retry=quick, chunk_size=256 * KiB, progress=killer)
        report = await Syncer(a, folder_a).sync_once()
        assert killer.killed and report.offline  # killed mid-sync: some files up, some not
        await a.aclose()
        with trio.fail_after(30):
            await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)
    (folder_a / "edited while the node was down.txt").write_text("must not be lost")

    with _node(data_dir, port, "lmdb") as proc:
        await _wait_healthy(base, proc)
        a = Client(base, state=State(tmp_path / "a.sqlite3"), retry=quick, chunk_size=256 * KiB)
        report = await Syncer(a, folder_a).sync_once()
        assert not report.offline and not report.rejected, report
        killer = KillAfter(proc, 3 * MiB)
        b = Client(base, state=State(tmp_path / "b.sqlite3"), retry=quick, progress=killer)
        report = await Syncer(b, folder_b).sync_once()
        assert killer.killed and report.offline  # and again, while the other device downloads
        await b.aclose()
        await a.aclose()
        with trio.fail_after(30):
            await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)

    with _node(data_dir, port, "lmdb") as proc:
        await _wait_healthy(base, proc)
        a = Client(base, state=State(tmp_path / "a.sqlite3"), retry=quick)
        b = Client(base, state=State(tmp_path / "b.sqlite3"), retry=quick)
        for device in (Syncer(a, folder_a), Syncer(b, folder_b), Syncer(a, folder_a)):
            report = await device.sync_once()
            assert not report.offline and not report.rejected, report
        assert tree_of(folder_b) == tree_of(folder_a)
        assert (folder_b / "edited while the node was down.txt").read_text() == "must not be lost"
        names = {
            f"{f.folder.rstrip('/')}/{f.name}"
            for folder in ("/", "/2020", "/2021", "/2022")
            for f in (await a.list_folder(folder)).files
        }
        assert names == {"/" + p for p in tree_of(folder_a)}
        assert not list(folder_b.rglob("*.vault-partial"))
        await a.aclose()
        await b.aclose()
