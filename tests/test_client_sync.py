"""The sync engine with real folders against a real node in-process: two devices converge; renames
and moves cost no transfer; every conflict is held, surfaced, and resolvable three ways; a
``resetRequired`` answer (a node restored from a backup) is a full resync that loses no local
edit; local changes made while the node is unreachable wait in the durable queue."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.client_support import Rule, Scripted, in_process, signed_in, tree_of
from vault.app import VaultApp, create_app
from vault.clock import TrioClock
from vault.config import config_from_mapping
from vault_client.client import Client
from vault_client.state import State
from vault_client.syncer import ConflictInfo, Syncer

BASE = "http://node.test"


@asynccontextmanager
async def two_devices(app: VaultApp, tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[Syncer, Syncer]]:
    transport = in_process(app)
    a = await signed_in(BASE, tmp_path / "a.sqlite3", transport=transport)
    b = await signed_in(BASE, tmp_path / "b.sqlite3", transport=transport)
    try:
        yield Syncer(a, tmp_path / "A", **kw), Syncer(b, tmp_path / "B", **kw)
    finally:
        await a.aclose()
        await b.aclose()


async def settle(*syncers: Syncer, rounds: int = 2) -> None:
    for _ in range(rounds):
        for syncer in syncers:
            report = await syncer.sync_once()
            assert not report.offline and not report.rejected, report


async def test_two_devices_converge_on_files_folders_edits_and_deletes(app: VaultApp, tmp_path: Path) -> None:
    async with two_devices(app, tmp_path) as (a, b):
        (a.local / "albums" / "2024").mkdir(parents=True)
        (a.local / "albums" / "2024" / "beach.jpg").write_bytes(b"\xff\xd8" + b"sand" * 50_000)
        (a.local / "notes.txt").write_text("first")
        (a.local / "empty folder").mkdir()
        await settle(a, b)
        assert tree_of(b.local) == tree_of(a.local) and (b.local / "empty folder").is_dir()
        (b.local / "notes.txt").write_text("second")
        (a.local / "albums" / "2024" / "beach.jpg").unlink()
        await settle(a, b)
        assert tree_of(a.local) == tree_of(b.local) == {"notes.txt": b"second"}
        listing = await a.client.list_folder("/")
        assert [f.name for f in listing.files] == ["notes.txt"]


async def test_a_rename_or_a_move_on_one_side_moves_the_file_on_the_other_without_a_transfer(
    app: VaultApp, tmp_path: Path
) -> None:
    async with two_devices(app, tmp_path) as (a, b):
        (a.local / "raw.dng").write_bytes(b"R" * 700_000)
        await settle(a, b)
        sent, got = a.client.uploader.bytes_sent, b.client.downloader.bytes_received
        (a.local / "2024").mkdir()
        (a.local / "raw.dng").rename(a.local / "2024" / "renamed.dng")
        await settle(a, b)
        assert tree_of(b.local) == {"2024/renamed.dng": b"R" * 700_000}
        assert a.client.uploader.bytes_sent == sent and b.client.downloader.bytes_received == got
        entry = (await a.client.list_folder("/2024")).files[0]
        assert entry.name == "renamed.dng" and entry.version > 1  # the same file, moved


@pytest.mark.parametrize("resolution", ["keep_local", "keep_remote", "keep_both"])
async def test_edits_on_both_sides_are_a_conflict_held_until_resolved(
    app: VaultApp, tmp_path: Path, resolution: str
) -> None:
    seen: list[ConflictInfo] = []
    async with two_devices(app, tmp_path, on_conflict=seen.append) as (a, b):
        (a.local / "doc.txt").write_text("base")
        await settle(a, b)
        (a.local / "doc.txt").write_text("edited on A")
        (b.local / "doc.txt").write_text("edited on B")
        await a.sync_once()
        report = await b.sync_once()
        assert len(report.new_conflicts) == 1
        assert seen and seen[0].path == "doc.txt" and seen[0].reason == "version_mismatch"
        assert seen[0].remote is not None and seen[0].remote.checksum.startswith("blake3:")
        await b.sync_once()
        assert (b.local / "doc.txt").read_text() == "edited on B"  # held: never overwritten
        await b.resolve(report.new_conflicts[0], resolution)
        await settle(b, a)
        assert tree_of(a.local) == tree_of(b.local)
        contents = set(tree_of(a.local).values())
        expected = {
            "keep_local": {b"edited on B"},
            "keep_remote": {b"edited on A"},
            "keep_both": {b"edited on A", b"edited on B"},
        }[resolution]
        assert contents == expected
        assert not b.conflicts()


async def test_an_edit_of_a_file_deleted_elsewhere_is_a_conflict_and_keep_local_brings_it_back(
    app: VaultApp, tmp_path: Path
) -> None:
    async with two_devices(app, tmp_path, on_conflict=lambda info: "keep_local") as (a, b):
        (a.local / "keep.txt").write_text("v1")
        await settle(a, b)
        (a.local / "keep.txt").unlink()
        await a.sync_once()
        (b.local / "keep.txt").write_text("v2 made offline")
        report = await b.sync_once()
        assert report.new_conflicts  # resolved at once by the callback
        await settle(b, a)
        assert tree_of(a.local) == tree_of(b.local) == {"keep.txt": b"v2 made offline"}


async def test_the_same_new_file_on_both_sides_is_no_conflict_and_different_ones_are(
    app: VaultApp, tmp_path: Path
) -> None:
    async with two_devices(app, tmp_path) as (a, b):
        (a.local / "same.txt").write_text("identical")
        (b.local / "same.txt").write_text("identical")
        (a.local / "clash.txt").write_text("from A")
        (b.local / "clash.txt").write_text("from B")
        await a.sync_once()
        report = await b.sync_once()
        assert len(report.new_conflicts) == 1
        (conflict,) = b.conflicts()
        assert conflict.path == "clash.txt" and conflict.reason == "name_taken"
        await b.resolve(conflict.conflict_id, "keep_both")
        await settle(a, b)
        assert tree_of(a.local) == tree_of(b.local)
        assert sorted(tree_of(a.local).values()) == [b"from A", b"from B", b"identical"]


async def test_changes_made_while_the_node_is_unreachable_wait_in_the_queue_and_go_when_it_is_back(
    app: VaultApp, tmp_path: Path
) -> None:
    down = Rule(lambda r: True, "refuse", times=10_000)
    transport = Scripted(in_process(app), down)
    client = await signed_in(BASE, tmp_path / "a.sqlite3", transport=in_process(app))
    await client.aclose()
    offline = Client(BASE, state=client.state, transport=transport, retry=None)
    offline.session.retry = dataclasses.replace(offline.session.retry, attempts=1)
    syncer = Syncer(offline, tmp_path / "A")
    (syncer.local / "made offline.txt").write_text("kept")
    report = await syncer.sync_once()
    assert report.offline and offline.state.pending_count() == 1
    report = await syncer.sync_once()  # still offline: queued once, not twice
    assert report.offline and offline.state.pending_count() == 1
    down.times = 0  # the node is back
    report = await syncer.sync_once()
    assert not report.offline and report.uploaded == 1 and offline.state.pending_count() == 0
    assert [f.name for f in (await offline.list_folder("/")).files] == ["made offline.txt"]
    await offline.aclose()


async def test_a_node_restored_from_a_backup_answers_reset_required_and_the_resync_loses_no_local_edit(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    state_a, state_b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    folder_a, folder_b = tmp_path / "A", tmp_path / "B"
    folder_a.mkdir()
    (folder_a / "old.txt").write_text("from before the backup")

    async def round_on(node_data: Path, state: Path, folder: Path, *, first: bool = False) -> Any:
        app = create_app(config_from_mapping({"storage": {"data_dir": str(node_data)}}), clock=TrioClock())
        async with app.test_app():
            if first:
                client = await signed_in(BASE, state, transport=in_process(app))
            else:
                client = Client(BASE, state=State(state), transport=in_process(app))
            try:
                return await Syncer(client, folder).sync_once()
            finally:
                await client.aclose()

    await round_on(data, state_a, folder_a, first=True)
    await round_on(data, state_b, folder_b, first=True)
    shutil.copytree(data, tmp_path / "backup")  # the node is stopped: a consistent copy
    (folder_a / "after.txt").write_text("made after the backup")
    await round_on(data, state_a, folder_a)
    await round_on(data, state_b, folder_b)
    assert (folder_b / "after.txt").exists()
    # The node's disk dies; it comes back from the backup, which never heard of after.txt.
    shutil.rmtree(data)
    shutil.copytree(tmp_path / "backup", data)
    (folder_b / "old.txt").write_text("edited while the node was being restored")
    report = await round_on(data, state_b, folder_b)
    assert report.full_listing
    report = await round_on(data, state_a, folder_a)
    await round_on(data, state_b, folder_b)
    assert (
        tree_of(folder_a)
        == tree_of(folder_b)
        == {
            "old.txt": b"edited while the node was being restored",
            "after.txt": b"made after the backup",
        }
    )


async def test_a_full_quota_is_reported_and_the_file_is_tried_again_later(make_config: Any, tmp_path: Path) -> None:
    app = create_app(make_config(plans={"free": {"quota": "1MiB"}}), clock=TrioClock())
    async with app.test_app():
        client = await signed_in(BASE, tmp_path / "a.sqlite3", transport=in_process(app))
        syncer = Syncer(client, tmp_path / "A")
        (syncer.local / "small.txt").write_text("fits")
        (syncer.local / "huge.bin").write_bytes(b"h" * 2_000_000)
        report = await syncer.sync_once()
        assert report.storage_full and report.uploaded == 1 and report.sent == 2  # small.txt went
        assert any("STORAGE_QUOTA_EXCEEDED" in line for line in report.rejected)
        report = await syncer.sync_once()
        assert report.storage_full  # not given up: sent again each round until there is room
        assert [f.name for f in (await client.list_folder("/")).files] == ["small.txt"]
        await client.aclose()


async def test_a_name_the_node_refuses_is_reported_once_and_not_sent_again_unchanged(
    app: VaultApp, tmp_path: Path
) -> None:
    client = await signed_in(BASE, tmp_path / "a.sqlite3", transport=in_process(app))
    syncer = Syncer(client, tmp_path / "A")
    (syncer.local / "fine.txt").write_text("ok")
    (syncer.local / "hidden\u200bspace.txt").write_text("a zero-width space in the name")
    report = await syncer.sync_once()
    assert len(report.rejected) == 1 and "VALIDATION_ERROR" in report.rejected[0]
    report = await syncer.sync_once()
    assert not report.rejected and report.sent == 0
    assert (syncer.local / "hidden\u200bspace.txt").exists()  # never touched here
    await client.aclose()


async def test_a_running_sync_picks_up_the_other_devices_change_through_the_long_poll(
    app: VaultApp, tmp_path: Path
) -> None:
    async with two_devices(app, tmp_path) as (a, b):
        await a.sync_once()
        stop = trio.Event()
        arrived = trio.Event()

        def on_round(report: Any) -> None:
            if (a.local / "from b.txt").exists():
                arrived.set()

        first_round = a.round_done
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: a.run(stop, poll_wait=30, watch=False, on_round=on_round))
            with trio.fail_after(20):
                await first_round.wait()  # its first round is done: now it waits on the long poll
            (b.local / "from b.txt").write_text("sent while A was waiting")
            await b.sync_once()
            with trio.fail_after(20):
                await arrived.wait()
            stop.set()
        assert (a.local / "from b.txt").read_text() == "sent while A was waiting"


async def test_renames_and_deletes_made_offline_go_through_the_nodes_queue_with_their_time(
    app: VaultApp, tmp_path: Path
) -> None:
    down = Rule(lambda r: True, "refuse", times=0)
    transport = Scripted(in_process(app), down)
    a = await signed_in(BASE, tmp_path / "a.sqlite3", transport=transport)
    a.session.retry = dataclasses.replace(a.session.retry, attempts=1)
    device_a = Syncer(a, tmp_path / "A")
    (device_a.local / "old name.txt").write_text("renamed offline")
    (device_a.local / "doomed.txt").write_text("deleted offline")
    await device_a.sync_once()
    down.times = 10_000  # the node goes away
    (device_a.local / "old name.txt").rename(device_a.local / "new name.txt")
    (device_a.local / "doomed.txt").unlink()
    assert (await device_a.sync_once()).offline and a.state.pending_count() == 2
    down.times = 0  # back
    report = await device_a.sync_once()
    assert not report.offline and a.state.pending_count() == 0
    assert transport.count("POST", "/queue/add") >= 1
    queue = await a.queue()
    assert sorted(op.type for op in queue.operations) == ["delete", "rename"]
    assert all(op.status == "done" for op in queue.operations)
    assert [f.name for f in (await a.list_folder("/")).files] == ["new name.txt"]
    b = await signed_in(BASE, tmp_path / "b.sqlite3", transport=in_process(app))
    device_b = Syncer(b, tmp_path / "B")
    await settle(device_a, device_b)
    assert tree_of(device_a.local) == tree_of(device_b.local) == {"new name.txt": b"renamed offline"}
    await a.aclose()
    await b.aclose()
