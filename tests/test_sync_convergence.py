"""Property: devices that edit offline and then sync in any order converge on the server's state,
and every local edit is applied, present as a conflict, or refused with a reason; never dropped.

Each example runs a fresh node with two or three devices of one account. The files' contents come
from a pool the account already holds, so every change applies at once (no chunk uploads needed)
and the test can predict the server: applying, in the order the node answered them, exactly the
changes it reports as applied must give the tree it ends up with.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_helpers import register, upload_file
from vault.app import create_app
from vault.clock import TrioClock
from vault.config import config_from_mapping

POOL = [bytes([i]) * (100 + i) for i in range(4)]  # contents the account holds from the start
NAMES = ["a.txt", "b.txt", "c.txt"]
FOLDERS = ["/", "/x", "/y"]
STATUS = "/api/mobile/sync/status"

Tree = dict[str, tuple[str, str, str]]  # file id -> (folder, name, checksum)

op = st.one_of(
    st.tuples(st.just("rename"), st.integers(0, 9), st.sampled_from(NAMES)),
    st.tuples(st.just("move"), st.integers(0, 9), st.sampled_from(FOLDERS)),
    st.tuples(st.just("delete"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("update"), st.integers(0, 9), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("upload"), st.sampled_from(FOLDERS), st.tuples(st.sampled_from(NAMES), st.integers(0, 3))),
)
scenario = st.tuples(
    st.integers(2, 3),  # devices
    st.lists(st.lists(op, max_size=5), min_size=3, max_size=3),  # each device's offline edits
    st.permutations([0, 1, 2]),  # the order they come back online
)


def _b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@dataclass
class Device:
    headers: dict[str, str]
    token: str = ""
    tree: Tree = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)


async def _pull(client: Any, device: Device) -> None:
    """Apply what changed on the server since the device's token to its own copy of the tree."""
    while True:
        query = f"?syncToken={device.token}&limit=2" if device.token else "?limit=2"
        body = (await (await client.get(STATUS + query, headers=device.headers)).get_json())["data"]
        if body.get("resetRequired"):
            device.token, device.tree = "", {}
            continue
        for entry in body["changes"]["created"] + body["changes"]["updated"]:
            device.tree[entry["id"]] = (entry["folder"], entry["name"], entry["checksum"])
        for gone in body["changes"]["deleted"]:
            device.tree.pop(gone["id"], None)
        device.token = body["nextSyncToken"]
        if not body.get("hasMore"):
            return


def _offline_edits(device: Device, ops: list[tuple[str, Any, Any]]) -> None:
    """Turn random edits into local changes against what the device last saw."""
    ids = sorted(i for i, (folder, _, _) in device.tree.items() if folder != "/seed")  # seeds stay put
    for i, (kind, target, value) in enumerate(ops):
        local = f"l{i}"
        if kind == "upload":
            name, content = value
            change = {"action": "upload", "folder": target, "name": name, "size": len(POOL[content])}
            device.changes.append({**change, "checksum": _b3(POOL[content]), "localId": local})
            continue
        if not ids:
            continue
        file_id = ids[target % len(ids)]
        if kind == "rename":
            device.changes.append({"action": "rename", "fileId": file_id, "name": value, "localId": local})
        elif kind == "move":
            device.changes.append({"action": "move", "fileId": file_id, "folder": value, "localId": local})
        elif kind == "delete":
            device.changes.append({"action": "delete", "fileId": file_id, "localId": local})
        else:
            data = POOL[value]
            update = {"action": "update", "fileId": file_id, "size": len(data), "checksum": _b3(data)}
            device.changes.append({**update, "localId": local})


def _expect(tree: Tree, change: dict[str, Any], result: dict[str, Any]) -> None:
    """What an applied change does to the server's tree (the test's own model of it)."""
    action = change["action"]
    if action == "upload":
        tree[result["fileId"]] = (change["folder"], change["name"], change["checksum"])
        return
    file_id = change["fileId"]
    if action == "delete":
        tree.pop(file_id, None)
        return
    folder, name, checksum = tree[file_id]
    if action == "rename":
        tree[file_id] = (folder, change["name"], checksum)
    elif action == "move":
        tree[file_id] = (change["folder"], name, checksum)
    else:
        tree[file_id] = (folder, name, change["checksum"])


async def _run(root: Path, devices: int, edits: list[list[tuple[str, Any, Any]]], order: list[int]) -> None:
    config = config_from_mapping({"storage": {"data_dir": str(root)}, "plans": {"free": {"devices": 5}}})
    app = create_app(config, clock=TrioClock(), periodic=False)
    async with app.test_app():
        client = app.test_client()
        phones = [Device(await register(client, device_id=f"device-{i}")) for i in range(devices)]
        for i, content in enumerate(POOL):
            # One untouched copy of each content (so every edit finds it held), one to edit.
            await upload_file(client, phones[0].headers, content, name=f"seed{i}.bin", folder="/seed")
            copy = {"action": "upload", "name": f"file{i}.bin", "folder": "/", "size": len(content)}
            made = await client.post(
                "/api/mobile/sync/files",
                headers=phones[0].headers,
                json={"localChanges": [{**copy, "checksum": _b3(content)}]},
            )
            assert (await made.get_json())["data"]["results"][0]["status"] == "applied"
        for phone in phones:
            await _pull(client, phone)
        server: Tree = dict(phones[0].tree)
        assert len(server) == 2 * len(POOL)
        for phone, ops in zip(phones, edits, strict=False):
            _offline_edits(phone, ops)
        for index in (i for i in order if i < devices):
            phone = phones[index]
            if not phone.changes:
                continue
            response = await client.post(
                "/api/mobile/sync/files",
                headers=phone.headers,
                json={"syncToken": phone.token, "localChanges": phone.changes},
            )
            assert response.status_code == 200, await response.get_json()
            results = (await response.get_json())["data"]["results"]
            assert [r["localId"] for r in results] == [c["localId"] for c in phone.changes]
            listed = {
                c["conflictId"]
                for c in (await (await client.get(STATUS, headers=phone.headers)).get_json())["data"]["conflicts"]
            }
            for change, result in zip(phone.changes, results, strict=True):
                # Never dropped: applied, or a conflict the user can see, or refused with a reason.
                assert result["status"] in ("applied", "conflict", "rejected"), result
                if result["status"] == "applied":
                    _expect(server, change, result)
                elif result["status"] == "conflict":
                    assert result["conflictId"] in listed
                else:
                    assert result["error"]["code"] in ("NOT_FOUND", "CONFLICT"), result
        for phone in phones:
            await _pull(client, phone)
            assert phone.tree == server  # every device converged on the server's state
        everything = Device(phones[0].headers)
        await _pull(client, everything)
        assert everything.tree == server  # ... which is what the applied changes predict


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(scenario)
def test_devices_editing_offline_converge_and_lose_no_edit(case: tuple[int, list[list[Any]], list[int]]) -> None:
    devices, edits, order = case
    root = Path(tempfile.mkdtemp(prefix="vault-converge-"))
    try:
        trio.run(_run, root, devices, edits, order)
    finally:
        shutil.rmtree(root, ignore_errors=True)
