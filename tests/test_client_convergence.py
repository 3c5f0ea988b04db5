"""Property: real clients, each with its own folder, that edit offline (create, edit, delete,
rename, move) and then sync in any order, converge: every folder ends up the same, and every
edit that was still on a device when it synced survives somewhere in that tree (conflicts are
resolved ``keep_both`` by the callback, so nothing waits for a person).

The convergence property of the sync issue, driven by real clients on real folders instead of
simulated devices."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.client_support import in_process, signed_in, tree_of
from vault.app import create_app
from vault.clock import TrioClock
from vault.config import config_from_mapping
from vault_client.syncer import Syncer

NAMES = ["a.txt", "b.txt", "c.txt"]
FOLDERS = ["", "x", "y/z"]

op = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(FOLDERS), st.sampled_from(NAMES)),
    st.tuples(st.just("edit"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("delete"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("rename"), st.integers(0, 9), st.sampled_from(NAMES)),
    st.tuples(st.just("move"), st.integers(0, 9), st.sampled_from(FOLDERS)),
)
scenario = st.tuples(
    st.integers(2, 3),
    st.lists(st.lists(op, max_size=4), min_size=3, max_size=3),
    st.permutations([0, 1, 2]),
)


def _apply(folder: Path, device: int, ops: list[tuple[str, Any, Any]]) -> None:
    for n, (kind, target, value) in enumerate(ops):
        content = f"device {device} edit {n}".encode()
        if kind == "create":
            path = folder / target / value
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            continue
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not files:
            continue
        path = files[target % len(files)]
        if kind == "edit":
            path.write_bytes(content)
        elif kind == "delete":
            path.unlink()
        elif kind == "rename":
            if not (path.parent / value).exists():
                path.rename(path.parent / value)
        else:
            destination = folder / value / path.name
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                path.rename(destination)


async def _run(root: Path, devices: int, edits: list[list[Any]], order: list[int]) -> None:
    config = config_from_mapping({"storage": {"data_dir": str(root / "data")}, "plans": {"free": {"devices": 5}}})
    app = create_app(config, clock=TrioClock(), periodic=False)
    async with app.test_app():
        transport = in_process(app)
        clients = [
            await signed_in("http://node.test", root / f"s{i}.sqlite3", transport=transport) for i in range(devices)
        ]
        syncers = [Syncer(c, root / f"dev{i}", on_conflict=lambda info: "keep_both") for i, c in enumerate(clients)]
        (syncers[0].local / "x").mkdir()
        for n, name in enumerate(NAMES):
            (syncers[0].local / name).write_bytes(f"seed {n}".encode())
            (syncers[0].local / "x" / name).write_bytes(f"seed x {n}".encode())
        for syncer in syncers:
            await syncer.sync_once()
        start = tree_of(syncers[0].local)
        assert all(tree_of(s.local) == start for s in syncers)
        kept: set[bytes] = set()
        for i, syncer in enumerate(syncers):
            _apply(syncer.local, i, edits[i])
            kept |= {c for c in tree_of(syncer.local).values() if c.startswith(b"device")}
        for i in (i for i in order if i < devices):
            await syncers[i].sync_once()
        for _ in range(3):
            for syncer in syncers:
                report = await syncer.sync_once()
                assert not report.offline, report
        final = tree_of(syncers[0].local)
        for syncer in syncers[1:]:
            assert tree_of(syncer.local) == final  # every folder converged
        assert kept <= set(final.values()), kept - set(final.values())  # no local edit lost
        for syncer in syncers:
            assert not syncer.conflicts()
        for client in clients:
            await client.aclose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(scenario)
def test_real_clients_editing_offline_converge_and_lose_no_edit(case: tuple[int, list[list[Any]], list[int]]) -> None:
    devices, edits, order = case
    root = Path(tempfile.mkdtemp(prefix="vault-client-converge-"))
    try:
        trio.run(_run, root, devices, edits, order)
    finally:
        shutil.rmtree(root, ignore_errors=True)
