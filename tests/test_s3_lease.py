"""The lease on a bucket prefix against a real gateway: what a node killed with SIGKILL leaves
behind, and a running node's renewals.

The lease's age is the server's clock (its ``Date``) minus the lease's ``Last-Modified``, and
``s3_lease.server_now`` reads that clock: the tests move it on instead of waiting out a ttl. A
node renews on its own clock (``trio.sleep``), which Trio's mock clock moves here. No test sleeps
for a lease's timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from vault_backends import s3_lease
from vault_backends.s3_backend import S3Backend

from tests.process_node import free_port, serve, wait_healthy
from tests.s3_support import BUCKET, needs_s3, options, raw_client
from tests.s3_support import s3_prefix as s3_prefix
from tests.test_s3_node import vault, write_toml
from vault.chunks import StorageRefused

pytestmark = needs_s3
TTL = 60.0  # the default lease_ttl


def lease_of(prefix: str) -> tuple[dict[str, Any], str] | None:
    """The lease object's body and ETag, or ``None`` without one."""
    client = raw_client()
    try:
        answer = client.get_object(Bucket=BUCKET, Key=f"{prefix}{s3_lease.LEASE_NAME}")
    except client.exceptions.NoSuchKey:
        return None
    return json.loads(answer["Body"].read()), str(answer["ETag"])


def server_clock_moved_on(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The server's clock as the lease reads it, ``seconds`` later than it is."""
    real = s3_lease.server_now
    monkeypatch.setattr(s3_lease, "server_now", lambda answer: real(answer) + seconds)


async def renewed(lease: s3_lease.Lease, *, within: float = 30.0) -> bool:
    """Whether the renewing task ended an attempt within ``within`` seconds of real time (the
    mock clock stands still: a renewal that never comes would otherwise wait forever)."""
    attempted = False
    async with trio.open_nursery() as nursery:

        async def give_up() -> None:
            await trio.to_thread.run_sync(time.sleep, within, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()

        nursery.start_soon(give_up)
        await lease.wait_for_renewal()
        attempted = True
        nursery.cancel_scope.cancel()
    return attempted


async def open_and_close(backend: S3Backend) -> dict[str, Any] | None:
    """Open ``backend`` (taking the prefix's lease) and close it; the lease it held."""
    await backend.open()
    try:
        held = await trio.to_thread.run_sync(lease_of, backend.store.prefix)
        return None if held is None else held[0]
    finally:
        await backend.close()


def test_a_killed_nodes_lease_holds_the_prefix_until_it_is_stale(
    tmp_path: Path, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = options(s3_prefix)
    # A real node, in its own process, killed with SIGKILL once it runs: no chance to let go.
    port = free_port()
    node = serve(write_toml(tmp_path / "node.toml", tmp_path / "node", "s3", opts), tmp_path / "node", port)
    try:
        trio.run(wait_healthy, f"http://127.0.0.1:{port}", node)
        found = lease_of(s3_prefix)
        assert found is not None and found[0]["pid"] == node.pid
        os.kill(node.pid, signal.SIGKILL)
        assert node.wait(timeout=30) == -signal.SIGKILL
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=30)
    dead, dead_etag = found
    assert lease_of(s3_prefix) == (dead, dead_etag)  # left behind, as a crash leaves it
    named = rf"in use by another node on {re.escape(socket.gethostname())} \(pid {node.pid}, "
    stranger = S3Backend(tmp_path / "stranger" / "chunks", opts)
    gc_config = write_toml(tmp_path / "gc.toml", tmp_path / "gc", "s3", opts)  # gc from another machine
    (tmp_path / "gc").mkdir()

    # Fresh: a node of another data directory and gc refuse, naming the dead node.
    with pytest.raises(StorageRefused, match=named + r".*lease renewed \d+ s ago"):
        trio.run(open_and_close, stranger)
    code, _, err = vault("gc", "--yes", "--config", str(gc_config))
    assert code == 2 and re.search(named, err) and "one node per bucket prefix" in err, err
    # Still fresh just short of the ttl.
    server_clock_moved_on(monkeypatch, TTL - 5)
    with pytest.raises(StorageRefused, match=named):
        trio.run(open_and_close, stranger)
    code, _, err = vault("gc", "--yes", "--config", str(gc_config))
    assert code == 2, err
    assert lease_of(s3_prefix) == (dead, dead_etag)  # refusing touched nothing

    # A ttl without renewal: stale. gc takes it over, says so, collects, and lets it go.
    server_clock_moved_on(monkeypatch, TTL + 1)
    code, out, err = vault("gc", "--yes", "--config", str(gc_config))
    assert code == 0 and out.startswith("gc: reclaimed"), err
    assert re.search(rf"taking over the lease of node on .* \(pid {node.pid}, .*not renewed for \d+ s", err), err
    assert lease_of(s3_prefix) is None
    # So does a node: the dead node's lease again (a second kill -9, as it left it), taken over.
    raw_client().put_object(Bucket=BUCKET, Key=f"{s3_prefix}{s3_lease.LEASE_NAME}", Body=json.dumps(dead).encode())
    held = trio.run(open_and_close, stranger)
    assert held is not None and held["pid"] == os.getpid() and held["owner"] != dead["owner"]
    assert lease_of(s3_prefix) is None  # closed: released


async def test_a_running_node_rewrites_its_lease_every_quarter_of_its_ttl(
    tmp_path: Path, s3_prefix: str, mock_clock: trio.testing.MockClock
) -> None:
    backend = S3Backend(tmp_path / "chunks", options(s3_prefix, lease_ttl=TTL))
    await backend.open()
    try:
        lease = backend.store.lease
        assert lease is not None and lease.held
        first = await trio.to_thread.run_sync(lease_of, s3_prefix)
        assert first is not None and first[1] == lease.etag
        seen = [first[1]]
        # Not before a quarter of the ttl has passed on the node's clock.
        mock_clock.jump(TTL / 4 - 1)
        await trio.testing.wait_all_tasks_blocked()
        assert lease.renewals == 0
        assert await trio.to_thread.run_sync(lease_of, s3_prefix) == first
        # Then once a quarter, past the ttl: each renewal rewrites the object, and it stays ours.
        for renewal in range(1, 6):
            mock_clock.jump(1 if renewal == 1 else TTL / 4)
            assert await renewed(lease), f"no renewal {renewal} after {TTL / 4:.0f} s of the node's clock"
            assert lease.renewals == renewal and lease.held
            now = await trio.to_thread.run_sync(lease_of, s3_prefix)
            assert now is not None and now[0]["session"] == first[0]["session"]
            assert now[1] == lease.etag and now[1] not in seen
            seen.append(now[1])
        # 75 s of the node's clock later, another node finds the lease just renewed.
        with pytest.raises(StorageRefused, match=r"lease renewed (\d+) s ago") as refused:
            await S3Backend(tmp_path / "other" / "chunks", options(s3_prefix)).open()
        age = re.search(r"lease renewed (\d+) s ago", str(refused.value))
        assert age is not None and int(age.group(1)) < TTL / 4
    finally:
        await backend.close()
    assert await trio.to_thread.run_sync(lease_of, s3_prefix) is None
