"""The offline operation queue: ``POST /queue/add`` and ``GET /queue``.

Idempotent ids per device, server-side operations run in priority order by the node's background
runner with the conflict rules of ``sync/files``, upload operations done when their upload
completes at ``remotePath``, retries of passing failures with backoff, the queue surviving a
restart, the per-device cap, scoping to the calling user and device, malformed input, and
``syncData.pendingUploads``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
import trio.testing

from tests.api_helpers import b3, init_upload, put_chunks, register, upload_file
from tests.auth_support import REGISTER, register_body
from tests.conftest import running_app
from vault.app import VaultApp, create_app
from vault.clock import TrioClock, rfc3339
from vault.config import Config
from vault.files import journal

ADD = "/api/mobile/queue/add"
QUEUE = "/api/mobile/queue"
STATUS = "/api/mobile/sync/status"


def _op(op_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("createdAt", "2030-01-01T00:00:00Z")  # after every change the tests make
    return {"id": op_id, "type": kind, **fields}


async def _add(client: Any, headers: dict[str, str], *ops: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    response = await client.post(ADD, headers=headers, json={"operations": list(ops), **extra})
    body = await response.get_json()
    assert response.status_code == 200, body
    results: list[dict[str, Any]] = body["data"]["operations"]
    return results


async def _queue(client: Any, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"{QUEUE}?{query}", headers=headers)
    body = await response.get_json()
    assert response.status_code == 200, body
    data: dict[str, Any] = body["data"]
    return data


async def _ops(client: Any, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {op["id"]: op for op in (await _queue(client, headers))["operations"]}


async def _file(client: Any, headers: dict[str, str], file_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/mobile/files/{file_id}", headers=headers)
    if response.status_code == 404:
        return None
    entry: dict[str, Any] = (await response.get_json())["data"]["file"]
    return entry


async def _settled(app: VaultApp) -> None:
    with trio.fail_after(30):
        await app.node.queue.runner.wait_idle()


def _user_of(app: VaultApp, file_id: str) -> str:
    from vault.files.records import FILES

    with app.node.meta.read() as txn:
        record = txn.get(FILES, file_id.encode())
    assert record is not None
    return record.user_id


def _journal(app: VaultApp, user_id: str) -> list[journal.JournalEntry]:
    with app.node.meta.read() as txn:
        return journal.since(txn, user_id, 0)


async def _sign_in(client: Any, email: str = "alice@example.com", device_id: str = "phone-1") -> dict[str, Any]:
    response = await client.post(REGISTER, json=register_body(email, name="Alice", device_id=device_id))
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == 200, body
    return body


async def _pending(client: Any, device_id: str, email: str = "alice@example.com") -> tuple[int, dict[str, str]]:
    """``syncData.pendingUploads`` of signing in again, and the new headers (the old ones end)."""
    body = await _sign_in(client, email, device_id)
    return body["syncData"]["pendingUploads"], {"Authorization": f"Bearer {body['tokens']['accessToken']}"}


# -- server-side operations ----------------------------------------------------------------------


async def test_server_side_operations_are_queued_then_run(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(100), name="a.txt", folder="/")
    results = await _add(
        client,
        headers,
        _op("op_1", "mkdir", folder="/docs/2024"),
        _op("op_2", "rename", fileId=entry["id"], name="b.txt"),
        _op("op_3", "move", fileId=entry["id"], folder="/docs/2024"),
    )
    assert results == [
        {"id": f"op_{i}", "status": "queued", **({"fileId": entry["id"]} if i > 1 else {})} for i in (1, 2, 3)
    ]
    await _settled(app)
    ops = await _ops(client, headers)
    assert {k: v["status"] for k, v in ops.items()} == {"op_1": "done", "op_2": "done", "op_3": "done"}
    assert ops["op_2"]["fileId"] == entry["id"] and ops["op_2"]["type"] == "rename" and ops["op_2"]["name"] == "b.txt"
    assert ops["op_1"]["priority"] == "normal" and ops["op_1"]["createdAt"] == "2030-01-01T00:00:00Z"
    now = await _file(client, headers, entry["id"])
    assert now is not None and (now["name"], now["folder"]) == ("b.txt", "/docs/2024")
    delete = await _add(client, headers, _op("op_4", "delete", fileId=entry["id"]))
    assert delete[0]["status"] == "queued"
    await _settled(app)
    assert (await _ops(client, headers))["op_4"]["status"] == "done"
    assert await _file(client, headers, entry["id"]) is None


async def test_operations_run_by_priority_then_created_at_then_the_order_added(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(10), name="x.bin", folder="/")
    user_id = _user_of(app, entry["id"])
    before = len(_journal(app, user_id))
    # One request: every operation is stored before the runner sees any of them.
    await _add(
        client,
        headers,
        _op("a", "mkdir", folder="/low", priority="low", createdAt="2024-01-01T00:00:00Z"),
        _op("b", "mkdir", folder="/normal-late", createdAt="2024-01-03T00:00:00Z"),
        _op("c", "mkdir", folder="/high-late", priority="high", createdAt="2024-01-05T00:00:00Z"),
        _op("d", "mkdir", folder="/normal-early-1", priority="normal", createdAt="2024-01-02T00:00:00Z"),
        _op("e", "rename", fileId=entry["id"], name="y.bin", priority="high", createdAt="2024-01-04T00:00:00Z"),
        _op("f", "mkdir", folder="/normal-early-2", createdAt="2024-01-02T00:00:00Z"),
    )
    await _settled(app)
    applied = [(e.op, e.folder if e.op == "folder_created" else e.name) for e in _journal(app, user_id)[before:]]
    assert applied == [
        ("moved", "y.bin"),
        ("folder_created", "/high-late"),
        ("folder_created", "/normal-early-1"),
        ("folder_created", "/normal-early-2"),
        ("folder_created", "/normal-late"),
        ("folder_created", "/low"),
    ]


# -- idempotency ---------------------------------------------------------------------------------


async def test_the_same_id_again_is_the_same_operation(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(10), name="x.bin", folder="/")
    rename = _op("op_1", "rename", fileId=entry["id"], name="y.bin", priority="high")
    async with app.node.queue.runner.paused():
        first = await _add(client, headers, rename)
        again = await _add(client, headers, rename, rename)
    assert first == [{"id": "op_1", "status": "queued", "fileId": entry["id"]}]
    assert again == first * 2
    await _settled(app)
    after = await _add(client, headers, rename)
    assert after == [{"id": "op_1", "status": "done", "fileId": entry["id"]}]
    listed = (await _queue(client, headers))["operations"]
    assert [op["id"] for op in listed] == ["op_1"]
    renames = [e for e in _journal(app, _user_of(app, entry["id"])) if e.op == "moved"]
    assert len(renames) == 1


async def test_the_same_id_for_another_operation_fails_and_changes_nothing(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(10), name="x.bin", folder="/")
    async with app.node.queue.runner.paused():
        await _add(client, headers, _op("op_1", "rename", fileId=entry["id"], name="y.bin"))
        variants = [
            _op("op_1", "rename", fileId=entry["id"], name="z.bin"),
            _op("op_1", "rename", fileId=entry["id"], name="y.bin", priority="low"),
            _op("op_1", "rename", fileId=entry["id"], name="y.bin", createdAt="2031-01-01T00:00:00Z"),
            _op("op_1", "delete", fileId=entry["id"]),
        ]
        for variant in variants:
            (result,) = await _add(client, headers, variant)
            assert result["status"] == "failed" and result["error"]["code"] == "VALIDATION_ERROR", result
            assert "op_1" in result["error"]["message"]
        stored = (await _ops(client, headers))["op_1"]
        assert (stored["status"], stored["type"], stored["name"], stored["priority"]) == (
            "queued",
            "rename",
            "y.bin",
            "normal",
        )
    await _settled(app)
    now = await _file(client, headers, entry["id"])
    assert now is not None and now["name"] == "y.bin"
    assert [op["id"] for op in (await _queue(client, headers))["operations"]] == ["op_1"]


async def test_a_retry_without_created_at_is_the_same_operation(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    mkdir = {"id": "op_1", "type": "mkdir", "folder": "/a"}
    async with app.node.queue.runner.paused():
        first = await _add(client, headers, mkdir)
        again = await _add(client, headers, mkdir)  # received later: another "now", the same operation
    assert first == again == [{"id": "op_1", "status": "queued"}]


# -- conflicts -----------------------------------------------------------------------------------


async def _rename_on(client: Any, headers: dict[str, str], file_id: str, name: str) -> None:
    body = {"localChanges": [{"action": "rename", "fileId": file_id, "name": name}]}
    response = await client.post("/api/mobile/sync/files", headers=headers, json=body)
    answer = await response.get_json()
    assert response.status_code == 200 and answer["data"]["results"][0]["status"] == "applied", answer


async def _phone_and_tablet(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    return await register(client, device_id="phone"), await register(client, device_id="tablet")


async def test_an_operation_on_a_file_changed_elsewhere_after_its_sync_token_is_a_conflict(
    app: VaultApp, client: Any
) -> None:
    phone, tablet = await _phone_and_tablet(client)
    entry = await upload_file(client, phone, os.urandom(100), name="a.txt", folder="/")
    token = (await (await client.get(STATUS, headers=phone)).get_json())["data"]["nextSyncToken"]
    await _rename_on(client, tablet, entry["id"], "tablet.txt")
    await _add(client, phone, _op("op_del", "delete", fileId=entry["id"]), syncToken=token)
    await _settled(app)
    op = (await _ops(client, phone))["op_del"]
    assert op["status"] == "failed" and op["error"]["code"] == "CONFLICT"
    conflict_id = op["error"]["conflictId"]
    assert conflict_id in op["error"]["message"]
    conflicts = (await (await client.get(STATUS, headers=phone)).get_json())["data"]["conflicts"]
    assert [(c["conflictId"], c["fileId"], c["localId"]) for c in conflicts] == [(conflict_id, entry["id"], "op_del")]
    still = await _file(client, phone, entry["id"])
    assert still is not None and still["name"] == "tablet.txt"


async def test_without_a_token_the_base_is_the_journal_at_created_at(app: VaultApp, client: Any) -> None:
    phone, tablet = await _phone_and_tablet(client)
    entry = await upload_file(client, phone, os.urandom(100), name="a.txt", folder="/")
    made_at = app.node.clock.now()
    await _rename_on(client, tablet, entry["id"], "tablet.txt")
    # Made offline before the tablet's rename: a conflict. Made after it: applied.
    await _add(
        client, phone, _op("early", "rename", fileId=entry["id"], name="phone.txt", createdAt=rfc3339(made_at - 1))
    )
    await _settled(app)
    early = (await _ops(client, phone))["early"]
    assert early["status"] == "failed" and early["error"]["code"] == "CONFLICT"
    await _add(
        client, phone, _op("late", "rename", fileId=entry["id"], name="phone.txt", createdAt=rfc3339(made_at + 60))
    )
    await _settled(app)
    assert (await _ops(client, phone))["late"]["status"] == "done"
    now = await _file(client, phone, entry["id"])
    assert now is not None and now["name"] == "phone.txt"


async def test_a_permanent_error_fails_the_operation(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    await _add(
        client,
        headers,
        _op("gone", "delete", fileId="file_does_not_exist"),
        _op("taken", "mkdir", folder="/after"),
    )
    await _settled(app)
    ops = await _ops(client, headers)
    assert ops["gone"]["status"] == "failed" and ops["gone"]["error"]["code"] == "NOT_FOUND"
    assert ops["taken"]["status"] == "done"


# -- uploads -------------------------------------------------------------------------------------


async def test_an_upload_operation_waits_for_its_upload_and_is_done_when_it_completes(
    app: VaultApp, client: Any
) -> None:
    phone, tablet = await _phone_and_tablet(client)
    op = _op("up_1", "upload", localPath="/storage/IMG_1.jpg", remotePath="/photos/IMG_1.jpg", priority="high")
    assert await _add(client, phone, op) == [{"id": "up_1", "status": "waiting"}]
    listed = (await _ops(client, phone))["up_1"]
    assert (listed["status"], listed["remotePath"], listed["localPath"]) == (
        "waiting",
        "/photos/IMG_1.jpg",
        "/storage/IMG_1.jpg",
    )
    await upload_file(client, phone, os.urandom(100), name="other.jpg", folder="/photos")  # another path
    assert (await _ops(client, phone))["up_1"]["status"] == "waiting"
    data = os.urandom(70 * 1024)  # two chunks
    planned = await init_upload(client, phone, data, name="IMG_1.jpg", folder="/photos")
    await put_chunks(client, phone, planned, data)
    assert (await _ops(client, phone))["up_1"]["status"] == "waiting"  # not complete yet
    done = await client.post(
        "/api/mobile/upload/complete", headers=phone, json={"uploadId": planned["uploadId"], "checksum": b3(data)}
    )
    made = (await done.get_json())["data"]["file"]
    listed = (await _ops(client, phone))["up_1"]
    assert (listed["status"], listed["fileId"]) == ("done", made["id"])
    assert await _add(client, phone, op) == [{"id": "up_1", "status": "done", "fileId": made["id"]}]
    # An upload by another device of the account counts too.
    await _add(client, phone, _op("up_2", "upload", remotePath="/photos/IMG_2.jpg"))
    second = await upload_file(client, tablet, os.urandom(50), name="IMG_2.jpg", folder="/photos")
    assert (await _ops(client, phone))["up_2"]["fileId"] == second["id"]


async def test_an_upload_operation_for_a_file_already_there_is_done_at_once(client: Any) -> None:
    headers = await register(client)
    entry = await upload_file(client, headers, os.urandom(100), name="IMG_1.jpg", folder="/photos")
    assert await _add(client, headers, _op("up", "upload", remotePath="/photos/IMG_1.jpg")) == [
        {"id": "up", "status": "done", "fileId": entry["id"]}
    ]


async def test_another_users_upload_at_the_same_path_does_not_count(client: Any) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    await _add(client, alice, _op("up", "upload", remotePath="/photos/IMG_1.jpg"))
    bobs = await upload_file(client, bob, os.urandom(100), name="IMG_1.jpg", folder="/photos")
    assert (await _ops(client, alice))["up"]["status"] == "waiting"
    assert await _add(client, bob, _op("up", "upload", remotePath="/photos/IMG_1.jpg")) == [
        {"id": "up", "status": "done", "fileId": bobs["id"]}
    ]


# -- time: retries, upload waits, forgetting (Trio's fake clock) ----------------------------------


async def test_a_passing_failure_is_retried_with_backoff(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(queue={"retry_backoff": "5s", "retry_backoff_max": "1h"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        real = app.node.sync.apply_changes
        tried: list[float] = []

        async def flaky(*args: Any, **kw: Any) -> Any:
            tried.append(trio.current_time())
            if len(tried) <= 2:
                raise OSError("disk briefly unavailable")
            return await real(*args, **kw)

        app.node.sync.apply_changes = flaky  # type: ignore[method-assign]
        started = trio.current_time()
        await _add(client, headers, _op("op", "mkdir", folder="/later"))
        await _settled(app)
        assert (await _ops(client, headers))["op"]["status"] == "queued"
        await trio.sleep(4)
        assert len(tried) == 1
        await trio.sleep(30)
        assert (await _ops(client, headers))["op"]["status"] == "done"
    gaps = [round(t - started) for t in tried]
    assert gaps == [0, 5, 15]  # then 5 s, then 10 s later


async def test_retries_end_after_max_attempts(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(queue={"retry_backoff": "1s", "max_attempts": 3})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)

        async def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("a bug")

        app.node.sync.apply_changes = broken  # type: ignore[method-assign]
        await _add(client, headers, _op("op", "mkdir", folder="/never"))
        await trio.sleep(60)
        op = (await _ops(client, headers))["op"]
    assert op["status"] == "failed" and op["error"]["code"] == "INTERNAL_ERROR"


async def test_waiting_uploads_run_out_and_finished_operations_are_forgotten(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(queue={"upload_wait": "1h", "keep_finished": "2h"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        await _add(client, headers, _op("up", "upload", remotePath="/a.jpg"), _op("dir", "mkdir", folder="/d"))
        await _settled(app)
        await trio.sleep(3600 + 5)
        ops = await _ops(client, headers)
        assert ops["dir"]["status"] == "done"
        assert ops["up"]["status"] == "failed" and ops["up"]["error"]["code"] == "UPLOAD_EXPIRED"
        await trio.sleep(2 * 3600 - 60)  # 2 h after the mkdir ran: forgotten; the upload's 2 h not yet
        assert set(await _ops(client, headers)) == {"up"}
        await trio.sleep(3600)
        assert await _ops(client, headers) == {}
        # A forgotten id may be used again.
        assert (await _add(client, headers, _op("dir", "mkdir", folder="/e")))[0]["status"] == "queued"


# -- restart -------------------------------------------------------------------------------------


async def test_the_queue_survives_a_restart_and_runs_there(config: Config) -> None:
    first = create_app(config, clock=TrioClock())
    async with AsyncExitStack() as stack:
        # Held from before the node starts until after it stopped: nothing runs in the first life.
        await stack.enter_async_context(first.node.queue.runner.paused())
        await stack.enter_async_context(first.test_app())
        client = first.test_client()
        headers = await register(client)
        entry = await upload_file(client, headers, os.urandom(100), name="a.txt", folder="/")
        await _add(
            client,
            headers,
            _op("ren", "rename", fileId=entry["id"], name="b.txt"),
            _op("up", "upload", remotePath="/photos/later.jpg"),
            _op("dir", "mkdir", folder="/made-after-restart"),
        )
        statuses = {k: v["status"] for k, v in (await _ops(client, headers)).items()}
        assert statuses == {"ren": "queued", "up": "waiting", "dir": "queued"}
    second = create_app(config, clock=TrioClock())
    async with second.test_app():
        client = second.test_client()
        await _settled(second)
        ops = await _ops(client, headers)
        assert {k: v["status"] for k, v in ops.items()} == {"ren": "done", "up": "waiting", "dir": "done"}
        now = await _file(client, headers, entry["id"])
        assert now is not None and now["name"] == "b.txt"
        made = await upload_file(client, headers, os.urandom(100), name="later.jpg", folder="/photos")
        up = (await _ops(client, headers))["up"]
        assert (up["status"], up["fileId"]) == ("done", made["id"])


# -- limits and scoping --------------------------------------------------------------------------


async def test_open_operations_per_device_are_capped(make_config: Callable[..., Config]) -> None:
    app = create_app(make_config(queue={"max_open_per_device": 3}), clock=TrioClock())
    async with app.test_app():
        client = app.test_client()
        phone = await register(client, device_id="phone")
        tablet = await register(client, device_id="tablet")
        ops = [_op(f"up_{i}", "upload", remotePath=f"/p/{i}.jpg") for i in range(4)]
        results = await _add(client, phone, *ops)
        assert [r["status"] for r in results] == ["waiting", "waiting", "waiting", "failed"]
        assert results[3]["error"]["code"] == "VALIDATION_ERROR"
        assert "too many open operations" in results[3]["error"]["message"]
        assert set(await _ops(client, phone)) == {"up_0", "up_1", "up_2"}  # the refused one is not kept
        assert (await _add(client, tablet, ops[3]))[0]["status"] == "waiting"  # per device
        # A finished operation frees its place; the refused id can be sent again.
        await upload_file(client, phone, os.urandom(10), name="0.jpg", folder="/p")
        assert (await _add(client, phone, ops[3]))[0]["status"] == "waiting"
        assert (await _add(client, phone, _op("one_more", "mkdir", folder="/x")))[0]["status"] == "failed"


async def test_operations_are_scoped_to_the_calling_user_and_device(app: VaultApp, client: Any) -> None:
    phone = await register(client, "alice@example.com", device_id="phone")
    tablet = await register(client, "alice@example.com", device_id="tablet")
    bob = await register(client, "bob@example.com", device_id="phone")
    bobs = await upload_file(client, bob, os.urandom(100), name="bob.txt", folder="/")
    async with app.node.queue.runner.paused():
        await _add(client, phone, _op("op_1", "mkdir", folder="/phone"))
        # The same id on another device, and for another user, is an operation of its own.
        assert (await _add(client, tablet, _op("op_1", "delete", fileId=bobs["id"])))[0]["status"] == "queued"
        assert (await _add(client, bob, _op("op_1", "rename", fileId=bobs["id"], name="x.txt")))[0][
            "status"
        ] == "queued"
    await _settled(app)
    assert [(o["id"], o["type"]) for o in (await _queue(client, phone))["operations"]] == [("op_1", "mkdir")]
    tablets = (await _ops(client, tablet))["op_1"]
    assert tablets["status"] == "failed" and tablets["error"]["code"] == "NOT_FOUND"
    assert [(o["id"], o["type"], o["status"]) for o in (await _queue(client, bob))["operations"]] == [
        ("op_1", "rename", "done")
    ]
    still = await _file(client, bob, bobs["id"])
    assert still is not None and still["name"] == "x.txt"


async def test_the_listing_is_newest_first_and_paged(client: Any) -> None:
    headers = await register(client)
    for i in range(5):
        await _add(client, headers, _op(f"up_{i}", "upload", remotePath=f"/p/{i}.jpg"))
    seen: list[str] = []
    page = await _queue(client, headers, "limit=2")
    pages = 1
    while True:
        seen += [op["id"] for op in page["operations"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        page = await _queue(client, headers, f"limit=2&cursor={page['nextCursor']}")
        pages += 1
    assert seen == ["up_4", "up_3", "up_2", "up_1", "up_0"] and pages == 3


@pytest.mark.parametrize(
    "body,field",
    [
        ({"operations": []}, "operations"),
        ({}, "operations"),
        ({"operations": [{"id": "a", "type": "teleport"}]}, "operations[0].type"),
        ({"operations": [{"id": "a", "type": "delete"}]}, "operations[0].fileId"),
        ({"operations": [{"type": "delete", "fileId": "f"}]}, "operations[0].id"),
        ({"operations": [{"id": "", "type": "mkdir", "folder": "/a"}]}, "operations[0].id"),
        ({"operations": [{"id": "a\nb", "type": "mkdir", "folder": "/a"}]}, "operations[0].id"),
        ({"operations": [{"id": "x" * 129, "type": "mkdir", "folder": "/a"}]}, "operations[0].id"),
        (
            {"operations": [{"id": "a", "type": "mkdir", "folder": "/a", "priority": "urgent"}]},
            "operations[0].priority",
        ),
        (
            {"operations": [{"id": "a", "type": "mkdir", "folder": "/a", "createdAt": "yesterday"}]},
            "operations[0].createdAt",
        ),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "/a", "createdAt": 5}]}, "operations[0].createdAt"),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "relative"}]}, "operations[0].folder"),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "/a/../b"}]}, "operations[0].folder"),
        ({"operations": [{"id": "a", "type": "move", "fileId": "f", "folder": "a//b"}]}, "operations[0].folder"),
        ({"operations": [{"id": "a", "type": "rename", "fileId": "f", "name": "a/b"}]}, "operations[0].name"),
        ({"operations": [{"id": "a", "type": "upload", "remotePath": "photos/a.jpg"}]}, "operations[0].remotePath"),
        ({"operations": [{"id": "a", "type": "upload", "remotePath": "/photos/"}]}, "operations[0].remotePath"),
        ({"operations": [{"id": "a", "type": "upload"}]}, "operations[0].remotePath"),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "/a", "extra": 1}]}, "operations[0].extra"),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "/a"}], "syncToken": "forged"}, "syncToken"),
        ({"operations": [{"id": "a", "type": "mkdir", "folder": "/a"}] * 1001}, "operations"),
    ],
)
async def test_malformed_operations_are_400_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    headers = await register(client)
    response = await client.post(ADD, headers=headers, json=body)
    answer = await response.get_json()
    assert response.status_code == 400, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert answer["error"]["details"]["field"] == field
    assert (await _queue(client, headers))["operations"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=5001", "limit=abc", "cursor=%%%", "cursor=bm90LWEtbnVtYmVy"])
async def test_bad_listing_parameters_are_400(client: Any, query: str) -> None:
    headers = await register(client)
    response = await client.get(f"{QUEUE}?{query}", headers=headers)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


async def test_the_queue_needs_a_signed_in_device(client: Any) -> None:
    assert (await client.get(QUEUE)).status_code == 401
    response = await client.post(ADD, json={"operations": [_op("a", "mkdir", folder="/a")]})
    assert response.status_code == 401


async def test_not_json_is_400(client: Any) -> None:
    headers = await register(client)
    response = await client.post(ADD, headers={**headers, "Content-Type": "application/json"}, data=b"{nope")
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


# -- pendingUploads ------------------------------------------------------------------------------


async def test_pending_uploads_counts_open_sessions_and_waiting_operations(client: Any) -> None:
    count, phone = await _pending(client, "phone")
    assert count == 0
    data = os.urandom(100)
    open_one = await init_upload(client, phone, data, name="open.jpg", folder="/p")
    aborted = await init_upload(client, phone, os.urandom(100), name="aborted.jpg", folder="/p")
    assert (await client.delete(f"/api/mobile/upload/{aborted['uploadId']}", headers=phone)).status_code == 200
    await _add(client, phone, _op("up", "upload", remotePath="/p/waiting.jpg"))
    count, phone = await _pending(client, "phone")
    assert count == 2  # the open session and the waiting operation; not the aborted session
    count, tablet = await _pending(client, "tablet")
    assert count == 0  # per device
    await init_upload(client, tablet, os.urandom(100), name="tablet.jpg", folder="/p")
    await put_chunks(client, phone, open_one, data)
    done = await client.post(
        "/api/mobile/upload/complete", headers=phone, json={"uploadId": open_one["uploadId"], "checksum": b3(data)}
    )
    assert done.status_code == 200
    count, phone = await _pending(client, "phone")
    assert count == 1
    await upload_file(client, tablet, os.urandom(100), name="waiting.jpg", folder="/p")  # the op is done
    count, phone = await _pending(client, "phone")
    assert count == 0


async def test_pending_uploads_leaves_out_expired_sessions(
    make_config: Callable[..., Config], idle_jump_clock: trio.testing.MockClock
) -> None:
    config = make_config(uploads={"session_ttl": "1h", "gc_interval": "100d"})
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        # Time stands still while the session is made and counted: on a busy machine a worker
        # thread can take longer than the clock's idle threshold, and it would leap past the hour.
        threshold, idle_jump_clock.autojump_threshold = idle_jump_clock.autojump_threshold, math.inf
        _, phone = await _pending(client, "phone")
        await init_upload(client, phone, os.urandom(100), name="a.jpg", folder="/p")
        assert (await _pending(client, "phone"))[0] == 1
        idle_jump_clock.autojump_threshold = threshold
        await trio.sleep(3601)  # past its expiry; the node has not swept it yet
        assert (await _pending(client, "phone"))[0] == 0


async def test_open_sessions_of_data_from_before_the_index_are_counted(config: Config) -> None:
    first = create_app(config, clock=TrioClock())
    async with first.test_app():
        client = first.test_client()
        _, phone = await _pending(client, "phone")
        await init_upload(client, phone, os.urandom(100), name="a.jpg", folder="/p")
        from vault.meta import META
        from vault.uploads.by_device import OPEN_UPLOADS

        def wipe(txn: Any) -> None:  # as a node before this index left its data
            for key in list(txn.keys(OPEN_UPLOADS)):
                txn.delete_key(OPEN_UPLOADS, key)
            txn.delete_key(META, b"uploads_open_by_device_built")

        await first.node.meta.write(wipe)
    second = create_app(config, clock=TrioClock())
    async with second.test_app():
        assert (await _pending(second.test_client(), "phone"))[0] == 1


async def test_the_openapi_document_describes_the_queue(client: Any) -> None:
    doc = await (await client.get("/api/mobile/openapi.json")).get_json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    assert "post" in paths["/api/mobile/queue/add"] and "get" in paths["/api/mobile/queue"]
    assert {"QueueUpload", "QueueDelete", "QueueMove", "QueueRename", "QueueMkdir"} <= set(schemas)
    assert [p["name"] for p in paths["/api/mobile/queue"]["get"]["parameters"]] == ["limit", "cursor"]


def test_queue_config_is_checked_by_key() -> None:
    from vault.config import ConfigError, config_from_mapping

    with pytest.raises(ConfigError, match=r"queue\.max_open_per_device"):
        config_from_mapping({"queue": {"max_open_per_device": 0}})
    with pytest.raises(ConfigError, match=r"queue\.retry_backof"):
        config_from_mapping({"queue": {"retry_backof": "5s"}})
    assert config_from_mapping({"queue": {"keep_finished": "1d"}}).queue.keep_finished == 86400
