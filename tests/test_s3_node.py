"""A node with ``backend = "s3"`` against a real gateway: the API round trip, refusals, the lease,
throttling, the gateway going away in the middle of an upload, fsck, gc and migrate-chunks."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from vault_backends.s3_backend import S3Backend

from tests.api_helpers import b3, init_upload, local_path, register, upload_file
from tests.s3_support import (
    BUCKET,
    CEPH_DIR,
    ENDPOINT,
    ceph,
    keys_under,
    needs_s3,
    new_prefix,
    options,
    raw_client,
    remove_prefix,
)
from tests.s3_support import s3_prefix as s3_prefix
from vault import plugins
from vault.app import VaultApp, create_app
from vault.chunks import ChunkStore, StorageRefused
from vault.cli import main
from vault.clock import TrioClock
from vault.config import Config, config_from_mapping

pytestmark = needs_s3
MiB = 1024 * 1024
SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "")


def s3_config(data_dir: Path, prefix: str, **extra: Any) -> Config:
    return config_from_mapping(
        {
            "storage": {"data_dir": str(data_dir), "backend": "s3", "s3": options(prefix, **extra)},
            "uploads": {"gc_grace": "0s"},
        }
    )


def write_toml(path: Path, data_dir: Path, backend: str, table: dict[str, Any] | None = None) -> Path:
    lines = ["[storage]", f'data_dir = "{data_dir}"', f'backend = "{backend}"']
    if table is not None:
        lines.append(f"[storage.{backend}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")  # JSON's strings, numbers and booleans are TOML's
    path.write_text("\n".join(lines) + "\n")
    return path


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[VaultApp]:
    application = create_app(config, clock=TrioClock(), periodic=False)
    async with application.test_app():
        yield application


def vault(*argv: str) -> tuple[int, str, str]:
    """``vault ARGV`` in this process (its own ``trio.run``), with what it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


async def vault_process(*argv: str) -> tuple[int, str, str]:
    """``vault ARGV`` in a process of its own (beside a node of this process: LMDB opens an
    environment once per process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = await trio.run_process(
        [sys.executable, "-m", "vault.cli", *argv], capture_stdout=True, capture_stderr=True, check=False, env=env
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


# -- the entry point -------------------------------------------------------------------------------


def test_s3_is_registered_in_pyproject_as_a_backend_entry_point() -> None:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["vault.backends"]["s3"] == "vault_backends.s3_backend:S3Backend"
    if "s3" in plugins.available(plugins.BACKENDS):  # the installed metadata may predate this checkout
        assert plugins.load(plugins.BACKENDS, "s3") is S3Backend


def test_the_secret_never_shows_in_the_options_repr() -> None:
    opts = S3Backend.Options(bucket="b", access_key="AKIAEXAMPLE", secret_key="very-secret-value")
    assert "very-secret-value" not in repr(opts) and "AKIAEXAMPLE" not in repr(opts)


# -- the API round trip ----------------------------------------------------------------------------


async def test_api_round_trip_on_s3(tmp_path: Path, s3_prefix: str) -> None:
    """Register, upload in chunks, sync, download whole and by range, delete, then gc reclaims it."""
    config = s3_config(tmp_path / "data", s3_prefix, attempts=3)
    config.files.trash_retention = 0  # type: ignore[assignment]
    data = os.urandom(3 * MiB + 123)
    keep = os.urandom(200_000)
    async with running(config) as app:
        client = app.test_client()
        headers = await register(client)
        entry = await upload_file(client, headers, data, name="video.mp4", chunk_size=MiB)
        kept = await upload_file(client, headers, keep, name="keep.jpg", chunk_size=MiB)
        # Four chunks of the first file and one of the second are objects under the prefix.
        chunk_keys = [k for k in keys_under(s3_prefix) if not k.endswith("lease.json")]
        assert len(chunk_keys) == 5
        status = await (await client.get("/api/mobile/sync/status", headers=headers)).get_json()
        assert sorted(f["id"] for f in status["data"]["changes"]["created"]) == sorted([entry["id"], kept["id"]])
        url = f"/api/mobile/files/{entry['id']}/content"
        whole = await client.get(url, headers=headers)
        assert whole.status_code == 200 and await whole.get_data() == data
        lo, hi = MiB - 10, 2 * MiB + 10  # across two chunks
        part = await client.get(url, headers={**headers, "Range": f"bytes={lo}-{hi}"})
        assert part.status_code == 206 and await part.get_data() == data[lo : hi + 1]
        assert (await client.delete(f"/api/mobile/files/{entry['id']}", headers=headers)).status_code == 200
        await app.node.reclaim()  # trash retention 0: the deleted file's chunks lose their references
    code, out, _ = await trio.to_thread.run_sync(
        vault,
        "gc",
        "--yes",
        "--data-dir",
        str(tmp_path / "data"),
        "--config",
        str(write_toml(tmp_path / "v.toml", tmp_path / "data", "s3", options(s3_prefix))),
    )
    assert code == 0, out
    assert "reclaimed 4 unreferenced chunk(s)" in out
    remaining = [k for k in keys_under(s3_prefix) if not k.endswith("lease.json")]
    assert remaining == [f"{s3_prefix}{b3(keep).removeprefix('blake3:')}"]
    assert not any(k.endswith("lease.json") for k in keys_under(s3_prefix)), "gc left its lease behind"
    async with running(config) as app:
        client = app.test_client()
        headers = await register(client)
        again = await client.get(f"/api/mobile/files/{kept['id']}/content", headers=headers)
        assert await again.get_data() == keep


# -- refusals at start -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"secret_key": "not-the-secret"}, "refused the credentials (SignatureDoesNotMatch)"),
        ({"access_key": "NOSUCHKEY", "secret_key": "whatever"}, "refused the credentials (InvalidAccessKeyId)"),
        ({"endpoint": "http://127.0.0.1:9", "attempts": 2}, "cannot reach S3 at http://127.0.0.1:9"),
        ({"bucket": "vault-no-such-bucket", "create_bucket": False}, "bucket 'vault-no-such-bucket' does not exist"),
    ],
    ids=["wrong-secret", "unknown-key", "unreachable", "no-bucket"],
)
def test_a_misconfigured_bucket_is_refused_with_one_line(
    tmp_path: Path, s3_prefix: str, change: dict[str, Any], expected: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    table = {**options(s3_prefix), "access_key": os.environ["AWS_ACCESS_KEY_ID"], **change}
    code, _out, err = vault("gc", "--config", str(write_toml(tmp_path / "v.toml", data_dir, "s3", table)))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("vault:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert SECRET not in err and "not-the-secret" not in err and "Traceback" not in err


@pytest.mark.skipif(not CEPH_DIR, reason="S3_CEPH_DIR is not set: a second gateway user is made with radosgw-admin")
def test_credentials_without_permission_on_the_bucket_are_refused_with_one_line(tmp_path: Path, s3_prefix: str) -> None:
    admin = ["radosgw-admin", "-c", f"{CEPH_DIR}/ceph.conf"]
    if subprocess.run([*admin, "user", "info", "--uid=stranger"], capture_output=True, timeout=60).returncode != 0:
        subprocess.run(
            [*admin, "user", "create", "--uid=stranger", "--display-name=stranger",
             "--access-key=STRANGERACCESSKEY001", "--secret-key=strangersecret000000000000000000000000001"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
    raw_client().head_bucket(Bucket=BUCKET)  # the bucket exists, owned by the CI user
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    table = {
        **options(s3_prefix),
        "access_key": "STRANGERACCESSKEY001",
        "secret_key": "strangersecret000000000000000000000000001",
    }
    code, _, err = vault("gc", "--config", str(write_toml(tmp_path / "v.toml", data_dir, "s3", table)))
    assert code == 2
    assert err.strip() == (
        f"vault: S3 credentials have no permission to list the bucket in s3://{BUCKET}/{s3_prefix} (AccessDenied): "
        "grant them list, read, write and delete on the bucket"
    )


def test_vault_serve_refuses_wrong_credentials_with_one_line(tmp_path: Path, s3_prefix: str) -> None:
    table = {**options(s3_prefix), "secret_key": "not-the-secret"}
    config = write_toml(tmp_path / "v.toml", tmp_path / "data", "s3", table)
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "vault.cli", "serve", "--config", str(config), "--bind", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vault: the node could not start: S3 at ") and "refused the credentials" in last, done.stderr
    assert "not-the-secret" not in done.stderr and "Traceback" not in done.stderr


# -- the lease -------------------------------------------------------------------------------------


async def test_a_second_node_and_gc_elsewhere_refuse_the_same_prefix(tmp_path: Path, s3_prefix: str) -> None:
    async with running(s3_config(tmp_path / "one", s3_prefix)):
        other = S3Backend(tmp_path / "two" / "chunks", options(s3_prefix))
        with pytest.raises(StorageRefused, match=r"is in use by another node on .*lease renewed \d+ s ago"):
            await other.open()
        (tmp_path / "three").mkdir()
        toml = write_toml(tmp_path / "v.toml", tmp_path / "three", "s3", options(s3_prefix))
        code, _, err = await vault_process("gc", "--yes", "--config", str(toml))
        assert code == 2 and "one node per bucket prefix" in err
        # Another prefix in the same bucket is another store.
        elsewhere = new_prefix()
        try:
            async with running(s3_config(tmp_path / "four", elsewhere)):
                pass
        finally:
            remove_prefix(elsewhere)
    # Once the first node has stopped, its lease is gone and the other node starts.
    async with running(s3_config(tmp_path / "two", s3_prefix)):
        pass


async def test_a_node_restarted_after_a_crash_takes_its_own_lease_back(tmp_path: Path, s3_prefix: str) -> None:
    opts = options(s3_prefix)
    backend = S3Backend(tmp_path / "chunks", opts)
    await backend.open()
    lease_key = f"{s3_prefix}lease.json"
    left = raw_client().get_object(Bucket=BUCKET, Key=lease_key)["Body"].read()
    await backend.close()
    # kill -9 leaves the lease, freshly renewed, behind.
    raw_client().put_object(Bucket=BUCKET, Key=lease_key, Body=left)
    stranger = S3Backend(tmp_path / "elsewhere", opts)
    with pytest.raises(StorageRefused, match="in use by another node"):
        await stranger.open()
    restarted = S3Backend(tmp_path / "chunks", opts)
    await restarted.open()  # the same data directory: its own lease, taken back at once
    await restarted.close()


async def test_a_node_whose_lease_was_taken_stops_deleting(tmp_path: Path, s3_prefix: str) -> None:
    """Renewal rewrites the lease; once another node has replaced it, this one deletes nothing."""
    backend = S3Backend(tmp_path / "chunks", options(s3_prefix))
    store = ChunkStore(backend)
    await store.open()
    try:
        kept = await store.put_bytes(os.urandom(1000))
        lease = backend.store.lease
        assert lease is not None
        before = lease.etag
        await lease.renew()
        assert lease.etag != before and lease.held
        raw_client().put_object(Bucket=BUCKET, Key=f"{s3_prefix}lease.json", Body=b'{"owner": "someone else"}')
        with pytest.raises(StorageRefused, match="taken by another node"):
            await lease.renew()
        with pytest.raises(StorageRefused, match="lost to another node: not deleting"):
            await store.delete_many([kept.chunk_id])
        assert await store.has_many([kept.chunk_id]) == {kept.chunk_id}
    finally:
        await store.close()
    # Closing does not delete a lease that is no longer ours.
    assert (
        raw_client().get_object(Bucket=BUCKET, Key=f"{s3_prefix}lease.json")["Body"].read()
        == b'{"owner": "someone else"}'
    )


async def test_fsck_beside_a_running_node_reads_without_touching_the_lease(tmp_path: Path, s3_prefix: str) -> None:
    config = s3_config(tmp_path / "data", s3_prefix)
    toml = write_toml(tmp_path / "v.toml", tmp_path / "data", "s3", options(s3_prefix))
    async with running(config) as app:
        client = app.test_client()
        headers = await register(client)
        await upload_file(client, headers, os.urandom(300_000), chunk_size=64 * 1024)
        lease = raw_client().get_object(Bucket=BUCKET, Key=f"{s3_prefix}lease.json")["ETag"]
        code, out, _ = await vault_process("fsck", "--config", str(toml))
        assert code == 0 and "5 chunks (293.0 KiB) verified; no problems" in out, out
        assert raw_client().get_object(Bucket=BUCKET, Key=f"{s3_prefix}lease.json")["ETag"] == lease
        # A chunk rotted in the bucket is reported by fsck.
        victim = next(k for k in keys_under(s3_prefix) if not k.endswith("lease.json"))
        body = bytearray(raw_client().get_object(Bucket=BUCKET, Key=victim)["Body"].read())
        body[0] ^= 1
        raw_client().put_object(Bucket=BUCKET, Key=victim, Body=bytes(body))
        code, out, _ = await vault_process("fsck", "--config", str(toml))
        assert code == 1 and f"corrupt    {victim.removeprefix(s3_prefix)}" in out, out


# -- throttling and a gateway that goes away -------------------------------------------------------


class ThrottlingProxy:
    """A tiny HTTP proxy in front of the gateway that answers the first ``throttle`` requests with
    ``503 SlowDown``, as a busy S3 does, and forwards everything else (one request per connection)."""

    def __init__(self, upstream: str, throttle: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.throttle = throttle
        self.throttled = 0
        self.forwarded = 0
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = await client.receive_some(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
            if self.throttled < self.throttle:
                self.throttled += 1
                if fields.get(b"expect", b"").lower() != b"100-continue":
                    length = int(fields.get(b"content-length", b"0"))
                    while len(rest) < length:
                        data = await client.receive_some(65536)
                        if not data:
                            return
                        rest += data
                body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
                await client.send_all(
                    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                return
            self.forwarded += 1
            kept = [line for line in lines if not line.lower().startswith(b"connection:")]
            upstream = await trio.open_tcp_stream(*self.upstream)
            async with upstream:
                await upstream.send_all(b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + rest)

                async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                    while data := await source.receive_some(1 << 20):
                        await sink.send_all(data)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump, client, upstream)
                    await pump(upstream, client)
                    nursery.cancel_scope.cancel()


async def test_throttling_is_retried_and_the_chunk_lands(tmp_path: Path, s3_prefix: str) -> None:
    data = os.urandom(2 * MiB + 1)
    async with trio.open_nursery() as nursery:
        proxy = ThrottlingProxy(ENDPOINT, throttle=0)
        await nursery.start(proxy.serve)
        backend = S3Backend(tmp_path / "chunks", options(s3_prefix, endpoint=f"http://127.0.0.1:{proxy.port}"))
        store = ChunkStore(backend)
        with trio.fail_after(120):
            await store.open()
            proxy.throttle = proxy.throttled + 3  # the next three requests: 503 SlowDown
            put = await store.put_bytes(data)
            assert proxy.throttled == 3
            assert sum(backend.retries.values()) == 3
            proxy.throttle = proxy.throttled + 2
            assert await store.read_all(put.chunk_id) == data
            assert sum(backend.retries.values()) == 5
            await store.close()
        nursery.cancel_scope.cancel()
    assert keys_under(s3_prefix) == [f"{s3_prefix}{put.chunk_id.hex()}"]


needs_ceph_dir = pytest.mark.skipif(
    not CEPH_DIR, reason="S3_CEPH_DIR is not set: only `make test-s3` and CI may stop and restart their gateway"
)


@pytest.fixture
def gateway_restarts() -> Iterator[None]:
    """The gateway is running again after the test, whatever happened in it."""
    yield
    port = ENDPOINT.rsplit(":", 1)[1]
    ceph("start", CEPH_DIR, port)


@needs_ceph_dir
async def test_gateway_stopped_in_the_middle_of_an_upload(
    tmp_path: Path, s3_prefix: str, gateway_restarts: None
) -> None:
    """503 with Retry-After while it is down, the node recovers by itself, nothing acknowledged is lost."""
    data = os.urandom(4 * MiB)
    config = s3_config(tmp_path / "data", s3_prefix, attempts=3, connect_timeout=2.0, read_timeout=10.0)
    async with running(config) as app:
        client = app.test_client()
        headers = await register(client)
        planned = await init_upload(client, headers, data, name="clip.mov", chunk_size=MiB)
        chunks = planned["chunks"]

        async def put(chunk: dict[str, Any]) -> Any:
            return await client.put(
                local_path(chunk["uploadUrl"]), headers=headers, data=data[chunk["start"] : chunk["end"] + 1]
            )

        for chunk in chunks[:2]:
            assert (await put(chunk)).status_code == 200
        await trio.to_thread.run_sync(ceph, "stop", CEPH_DIR)
        down = await put(chunks[2])
        body = await down.get_json()
        assert down.status_code == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE", body
        assert down.headers["Retry-After"] == "5"
        assert "storage" in body["error"]["message"]
        health = await client.get("/api/health")
        assert health.status_code == 503
        with trio.fail_after(300):
            await trio.to_thread.run_sync(ceph, "start", CEPH_DIR, ENDPOINT.rsplit(":", 1)[1])
        # The same node, not restarted: the chunk goes in now, and the rest after it.
        for chunk in chunks[2:]:
            answer = await put(chunk)
            assert answer.status_code == 200, await answer.get_json()
        done = await client.post(
            "/api/mobile/upload/complete",
            headers=headers,
            json={"uploadId": planned["uploadId"], "checksum": b3(data)},
        )
        assert done.status_code == 200, await done.get_json()
        file_id = (await done.get_json())["data"]["file"]["id"]
        back = await client.get(f"/api/mobile/files/{file_id}/content", headers=headers)
        assert await back.get_data() == data
        assert (await client.get("/api/health")).status_code == 200


# -- migrate-chunks --------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["lmdb", "fs"])
async def test_migrate_to_s3_and_back_loses_nothing(tmp_path: Path, s3_prefix: str, start: str) -> None:
    data_dir = tmp_path / "data"
    local = config_from_mapping({"storage": {"data_dir": str(data_dir), "backend": start}})
    # Few chunks per file: Quart's test client stalls on responses of more than ten body pieces.
    files = [os.urandom(n) for n in (1, 70_000, 1_500_000)]
    async with running(local) as app:
        client = app.test_client()
        headers = await register(client)
        entries = [
            await upload_file(client, headers, d, name=f"f{i}", chunk_size=1024 * 1024) for i, d in enumerate(files)
        ]
    local_toml = write_toml(tmp_path / "local.toml", data_dir, start)
    s3_toml = write_toml(tmp_path / "s3.toml", data_dir, "s3", options(s3_prefix))

    code, out, err = await trio.to_thread.run_sync(
        vault, "migrate-chunks", "--config", str(local_toml), "--to", str(s3_toml)
    )
    assert code == 0, out + err
    assert "4 chunk(s) (1.5 MiB) copied to the s3 backend, 0 already there" in out
    assert "4/4 chunks" in err  # the progress line
    # Interrupted or not, a second run copies nothing and confirms everything is there.
    code, out, _ = await trio.to_thread.run_sync(
        vault, "migrate-chunks", "--config", str(local_toml), "--to", str(s3_toml)
    )
    assert code == 0 and "0 chunk(s) (0 B) copied to the s3 backend, 4 already there" in out

    # The node now runs on S3 and serves every file; fsck agrees.
    for path in (data_dir / "chunks").iterdir():
        if path.name not in {"spool", ".s3-owner", ".s3-owner.lock"}:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    code, out, _ = await vault_process("fsck", "--config", str(s3_toml))
    assert code == 0 and "4 chunks" in out and "no problems" in out, out
    async with running(s3_config(data_dir, s3_prefix)) as app:
        client = app.test_client()
        headers = await register(client)
        for entry, content in zip(entries, files, strict=True):
            got = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
            assert await got.get_data() == content

    # And back to a local store: the same bytes.
    code, out, _ = await trio.to_thread.run_sync(
        vault, "migrate-chunks", "--config", str(s3_toml), "--to", str(local_toml)
    )
    assert code == 0 and "4 chunk(s) (1.5 MiB) copied" in out, out
    code, out, _ = await vault_process("fsck", "--config", str(local_toml))
    assert code == 0 and "no problems" in out
    async with running(local) as app:
        client = app.test_client()
        headers = await register(client)
        for entry, content in zip(entries, files, strict=True):
            got = await client.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
            assert await got.get_data() == content


def test_migrate_names_a_missing_target_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    local_toml = write_toml(tmp_path / "local.toml", data_dir, "fs")
    code, _, err = vault("migrate-chunks", "--config", str(local_toml), "--to", str(tmp_path / "missing.toml"))
    assert code == 2 and "missing.toml does not exist" in err
