"""The lmdb backend keeps LMDB's lock file (its reader table) in memory, so a frozen chunk disk
cannot stop the node: before this, one chunk PUT waiting on a frozen filesystem hung health,
listings and downloads of every user (a read transaction's end wrote the reader slot in the
mapped lock file while holding Python's interpreter lock)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import blake3
import httpx
import trio
from vault_backends.lmdb_backend import LmdbBackend, LmdbOptions
from vault_backends.lmdb_lockfile import LOCK_NAME, place_lock_file

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.process_node import free_port, serve, wait_healthy
from vault.chunks.ids import ChunkId

MiB = 1024 * 1024


def _id(data: bytes) -> ChunkId:
    return ChunkId(blake3.blake3(data).digest())


async def _store_and_read(backend: LmdbBackend, data: bytes) -> bytes:
    writer = await backend.begin_put()
    await writer.write(data)
    await writer.commit(_id(data))
    return await _read(backend, data)


async def _read(backend: LmdbBackend, data: bytes) -> bytes:
    return b"".join([piece async for piece in backend.read(_id(data))])


async def test_the_lock_file_lives_in_a_private_directory_under_lock_dir(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    backend = LmdbBackend(tmp_path / "chunks", LmdbOptions(lock_dir=str(shm)))
    await backend.open()
    try:
        assert await _store_and_read(backend, b"photo bytes") == b"photo bytes"
        link = tmp_path / "chunks" / LOCK_NAME
        assert link.is_symlink()
        target = Path(os.readlink(link))
        assert target.parent.parent == shm and stat.S_ISREG(os.stat(target).st_mode)
        assert stat.S_IMODE(os.stat(target.parent).st_mode) == 0o700
    finally:
        await backend.close()
    # Reopened (as after a restart), the same link is used and the chunk is still there.
    again = LmdbBackend(tmp_path / "chunks", LmdbOptions(lock_dir=str(shm)))
    await again.open()
    try:
        assert await _read(again, b"photo bytes") == b"photo bytes"
    finally:
        await again.close()


async def test_an_empty_lock_dir_keeps_the_lock_file_beside_the_chunks(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    first = LmdbBackend(tmp_path / "chunks", LmdbOptions(lock_dir=str(shm)))
    await first.open()
    await _store_and_read(first, b"kept")
    await first.close()
    backend = LmdbBackend(tmp_path / "chunks", LmdbOptions(lock_dir=""))
    await backend.open()
    try:
        link = tmp_path / "chunks" / LOCK_NAME
        assert link.is_file() and not link.is_symlink()
        assert await _read(backend, b"kept") == b"kept"
    finally:
        await backend.close()


async def test_a_lock_directory_someone_else_could_write_is_not_used(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    st = os.stat(chunks)
    planted = shm / f"megavault-lmdb-{st.st_dev:x}-{st.st_ino:x}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)  # made by another user of /dev/shm, or left open to everyone
    backend = LmdbBackend(chunks, LmdbOptions(lock_dir=str(shm)))
    await backend.open()
    try:
        assert (chunks / LOCK_NAME).is_file() and not (chunks / LOCK_NAME).is_symlink()
        assert list(planted.iterdir()) == []
    finally:
        await backend.close()


async def test_a_second_process_follows_the_lock_file_of_the_store_open_elsewhere(tmp_path: Path) -> None:
    """Two processes on one store must share one reader table: while the node has it open, another
    process (``vault fsck``) configured with a different lock_dir keeps the link as it is."""
    shm, other = tmp_path / "shm", tmp_path / "other"
    shm.mkdir()
    other.mkdir()
    chunks = tmp_path / "chunks"
    backend = LmdbBackend(chunks, LmdbOptions(lock_dir=str(shm)))
    await backend.open()
    try:
        before = os.readlink(chunks / LOCK_NAME)
        code = (
            "import sys; from pathlib import Path; from vault_backends.lmdb_lockfile import place_lock_file; "
            "print(place_lock_file(Path(sys.argv[1]), sys.argv[2]))"
        )
        result = await trio.run_process([sys.executable, "-c", code, str(chunks), str(other)], capture_stdout=True)
        assert result.stdout.decode().strip() == before
        assert os.readlink(chunks / LOCK_NAME) == before
    finally:
        await backend.close()
    # Once nobody has it open, the new setting takes effect.
    assert place_lock_file(chunks, str(other)).parent.parent == other


@contextlib.contextmanager
def _frozen_able_disk(where: Path, size_mib: int = 96) -> Iterator[Path]:
    """An ext4 filesystem in a loop-mounted image (mounted by the test as root), for fsfreeze."""
    where.parent.mkdir(parents=True, exist_ok=True)
    image = where.parent.parent / "chunks.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    where.mkdir(parents=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["fsfreeze", "-u", str(where)], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(where)], check=False)


def _blocked_on_frozen_fs(pid: int) -> bool:
    """Whether a thread of ``pid`` waits in the kernel for the frozen filesystem to thaw."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            if (task / "wchan").read_text() in ("percpu_rwsem_wait", "__percpu_down_read", "sb_start_write"):
                return True
    return False


async def test_a_frozen_chunk_disk_does_not_stop_the_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _frozen_able_disk(data_dir / "chunks") as chunks:
        config = tmp_path / "vault.toml"
        config.write_text('[storage]\nbackend = "lmdb"\n')
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = serve(config, data_dir, port)
        try:
            await wait_healthy(base, proc)
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                signed = (await http.post("/api/mobile/auth/register", json=register_body(device_id="d1"))).json()
                headers = {"Authorization": f"Bearer {signed['tokens']['accessToken']}"}
                before = os.urandom(3 * MiB)
                file_id = await _upload(http, headers, before, "before.jpg")
                await trio.run_process(["fsfreeze", "-f", str(chunks)])
                late: list[str] = []
                try:
                    async with trio.open_nursery() as nursery:

                        async def upload_while_frozen() -> None:
                            late.append(await _upload(http, headers, os.urandom(2 * MiB), "during.jpg"))

                        nursery.start_soon(upload_while_frozen)
                        with trio.fail_after(30):
                            while not _blocked_on_frozen_fs(proc.pid):  # noqa: ASYNC110 - a kernel state
                                await trio.sleep(0.05)
                        # The upload waits on the disk; everything else answers at once.
                        with trio.fail_after(5):
                            health = await http.get("/api/health")
                            devices = await http.get("/api/mobile/devices", headers=headers)
                            content = await http.get(f"/api/mobile/files/{file_id}/content", headers=headers)
                        assert health.status_code == 200
                        assert devices.status_code == 200
                        assert content.status_code == 200 and content.content == before
                        assert not late  # still waiting: not acknowledged before it is durable
                        await trio.run_process(["fsfreeze", "-u", str(chunks)])
                finally:
                    await trio.run_process(["fsfreeze", "-u", str(chunks)], check=False, capture_stderr=True)
                assert late and late[0].startswith("file_")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def _upload(http: httpx.AsyncClient, headers: dict[str, str], data: bytes, name: str) -> str:
    entry = {"localId": name, "name": name, "size": len(data), "folder": "/", "checksum": b3(data)}
    init = await http.post(
        "/api/mobile/upload/init", headers=headers, json={"files": [entry], "uploadOptions": {"chunkSize": MiB}}
    )
    planned = init.json()["data"]["files"][0]
    for chunk in planned["chunks"]:
        put = await http.put(chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1])
        assert put.status_code == 200, put.text
    done = await http.post(
        "/api/mobile/upload/complete", headers=headers, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200, done.text
    file_id: str = done.json()["data"]["file"]["id"]
    return file_id
