"""``sync/status``: tokens, coalescing, paging, resets, ETag/304 and the long poll."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.api_helpers import register, upload_file
from tests.conftest import running_app
from vault.app import VaultApp
from vault.config import Config
from vault.files.journal import JOURNAL
from vault.meta import META

STATUS = "/api/mobile/sync/status"
FILES = "/api/mobile/sync/files"


async def _status(client: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = await client.get(f"{STATUS}?{query}", headers=headers)
    body = await response.get_json()
    assert response.status_code == 200, body
    data: dict[str, Any] = body["data"]
    return data


async def _changes(
    client: Any, headers: dict[str, str], changes: list[dict[str, Any]], token: str | None = None
) -> Any:
    body: dict[str, Any] = {"localChanges": changes}
    if token:
        body["syncToken"] = token
    response = await client.post(FILES, headers=headers, json=body)
    answer = await response.get_json()
    assert response.status_code == 200, answer
    return answer["data"]


async def test_without_a_token_the_whole_tree_is_created_then_the_token_gives_only_later_changes(client: Any) -> None:
    headers = await register(client)
    first = await upload_file(client, headers, os.urandom(1000), name="a.jpg", folder="/photos/2024")
    second = await upload_file(client, headers, os.urandom(1000), name="b.txt", folder="/docs")
    await _changes(client, headers, [{"action": "mkdir", "folder": "/empty/inside"}])
    full = await _status(client, headers)
    assert sorted(f["id"] for f in full["changes"]["created"]) == sorted([first["id"], second["id"]])
    assert full["changes"]["updated"] == [] and full["changes"]["deleted"] == []
    assert {"/photos", "/photos/2024", "/docs", "/empty", "/empty/inside"} <= set(full["changes"]["folders"]["created"])
    assert full["hasChanges"] is True and "hasMore" not in full
    token = full["nextSyncToken"]
    assert token.startswith("st_")
    quiet = await _status(client, headers, syncToken=token)
    assert quiet["hasChanges"] is False and quiet["changes"]["created"] == []
    third = await upload_file(client, headers, os.urandom(1000), name="c.jpg")
    later = await _status(client, headers, syncToken=token)
    assert [f["id"] for f in later["changes"]["created"]] == [third["id"]]
    entry = later["changes"]["created"][0]
    assert {k: entry[k] for k in ("name", "folder", "size", "checksum", "version")} == {
        k: third[k] for k in ("name", "folder", "size", "checksum", "version")
    }


async def test_changes_are_coalesced_per_file(client: Any) -> None:
    headers = await register(client)
    kept = await upload_file(client, headers, os.urandom(500), name="old.txt")
    token = (await _status(client, headers))["nextSyncToken"]
    fresh = await upload_file(client, headers, os.urandom(500), name="new.txt")
    await _changes(client, headers, [{"action": "rename", "fileId": fresh["id"], "name": "renamed.txt"}])
    gone = await upload_file(client, headers, os.urandom(500), name="brief.txt")
    await _changes(client, headers, [{"action": "delete", "fileId": gone["id"]}])
    await _changes(client, headers, [{"action": "move", "fileId": kept["id"], "folder": "/archive"}])
    delta = (await _status(client, headers, syncToken=token))["changes"]
    # Created then renamed: once, as created, in its latest state.
    assert [(f["id"], f["name"]) for f in delta["created"]] == [(fresh["id"], "renamed.txt")]
    # Created then deleted: only in deleted.
    assert [d["id"] for d in delta["deleted"]] == [gone["id"]]
    # Existed before the token and moved: updated, with its new folder and version.
    assert [(f["id"], f["folder"], f["version"]) for f in delta["updated"]] == [(kept["id"], "/archive", 2)]


async def test_pages_lose_nothing_and_repeat_nothing_while_another_device_keeps_writing(client: Any) -> None:
    phone = await register(client, device_id="phone")
    tablet = await register(client, device_id="tablet")
    token = (await _status(client, phone))["nextSyncToken"]
    made: list[str] = []
    for i in range(7):
        made.append((await upload_file(client, tablet, os.urandom(300 + i), name=f"f{i}.bin"))["id"])
    seen: list[str] = []
    pages = 0
    while True:
        page = await _status(client, phone, syncToken=token, limit=3)
        pages += 1
        seen += [f["id"] for f in page["changes"]["created"]]
        token = page["nextSyncToken"]
        if pages == 1:  # the tablet goes on writing between the phone's pages
            made.append((await upload_file(client, tablet, os.urandom(99), name="late.bin"))["id"])
        if not page.get("hasMore"):
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    assert pages >= 3


async def test_a_first_sync_pages_through_the_tree_and_continues_from_where_it_began(client: Any) -> None:
    headers = await register(client)
    names = [f"n{i:02d}.bin" for i in range(5)]
    ids = [(await upload_file(client, headers, os.urandom(100 + i), name=n))["id"] for i, n in enumerate(names)]
    page = await _status(client, headers, limit=2)
    seen = [f["id"] for f in page["changes"]["created"]]
    assert page["hasMore"] is True
    later = await upload_file(client, headers, os.urandom(77), name="zz-after-start.bin")
    while page.get("hasMore"):
        page = await _status(client, headers, syncToken=page["nextSyncToken"], limit=2)
        seen += [f["id"] for f in page["changes"]["created"]]
    assert set(ids) <= set(seen)
    # The last listing page's token continues from the journal head the listing began at, so the
    # file made during the listing is reported (again, harmlessly, if the listing saw it).
    delta = await _status(client, headers, syncToken=page["nextSyncToken"])
    assert later["id"] in [f["id"] for f in delta["changes"]["created"]]


async def test_a_garbled_or_another_users_token_is_a_validation_error(client: Any) -> None:
    alice = await register(client, email="alice@example.com")
    bob = await register(client, email="bob@example.com")
    await upload_file(client, alice, os.urandom(100))
    token = (await _status(client, alice))["nextSyncToken"]
    for bad, who in [
        (token, bob),
        (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), alice),
        ("st_nonsense", alice),
    ]:
        response = await client.get(f"{STATUS}?syncToken={bad}", headers=who)
        assert response.status_code == 400
        error = (await response.get_json())["error"]
        assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == "syncToken"


async def test_a_token_from_before_a_journal_rebuild_or_from_a_restored_backup_asks_for_a_reset(
    app: VaultApp, client: Any
) -> None:
    headers = await register(client)
    await upload_file(client, headers, os.urandom(100), name="one.bin")
    token = (await _status(client, headers))["nextSyncToken"]
    # A restored backup: the journal lost entries the token already covered (its head is behind).
    await app.node.meta.write(lambda txn: [txn.delete(JOURNAL, k) for k, _ in list(txn.scan(JOURNAL))])
    behind = await _status(client, headers, syncToken=token)
    assert behind["resetRequired"] is True and behind["hasChanges"] is False
    # A rebuilt journal has a new identity: every older token asks for a reset.
    await upload_file(client, headers, os.urandom(100), name="two.bin")
    fresh = (await _status(client, headers))["nextSyncToken"]
    await app.node.meta.write(lambda txn: txn.put_bytes(META, b"journal_id", b"rebuilt!"))
    assert (await _status(client, headers, syncToken=fresh))["resetRequired"] is True
    # Resyncing from no token works.
    assert (await _status(client, headers))["changes"]["created"]


async def test_a_token_older_than_the_journal_retention_asks_for_a_reset(app: VaultApp, client: Any) -> None:
    headers = await register(client)
    await upload_file(client, headers, os.urandom(100), name="early.bin")
    old = (await _status(client, headers))["nextSyncToken"]
    doomed = await upload_file(client, headers, os.urandom(100), name="doomed.bin")
    await _changes(client, headers, [{"action": "delete", "fileId": doomed["id"]}])
    # Everything so far is past its retention once the clock is a year on.
    from vault.sync.retention import prune

    assert await prune(app.node.meta, app.node.clock.now() + 365 * 86400) >= 3
    answer = await _status(client, headers, syncToken=old)
    assert answer["resetRequired"] is True  # the delete was forgotten: never silently missed
    current = (await _status(client, headers))["nextSyncToken"]
    new = await upload_file(client, headers, os.urandom(100), name="after.bin")
    assert [f["id"] for f in (await _status(client, headers, syncToken=current))["changes"]["created"]] == [new["id"]]


async def test_last_sync_time_works_as_the_spec_shows(client: Any, app: VaultApp) -> None:
    headers = await register(client)
    await upload_file(client, headers, os.urandom(100), name="before.bin")
    from vault.clock import rfc3339

    cut = rfc3339(app.node.clock.now() + 1)
    await trio.lowlevel.checkpoint()
    answer = await _status(client, headers, lastSync=cut)
    assert answer["changes"]["created"] == []
    bad = await client.get(f"{STATUS}?lastSync=yesterday", headers=headers)
    assert bad.status_code == 400


async def test_the_etag_answers_304_until_something_changes(client: Any) -> None:
    headers = await register(client)
    await upload_file(client, headers, os.urandom(100))
    token = (await _status(client, headers))["nextSyncToken"]
    first = await client.get(f"{STATUS}?syncToken={token}", headers=headers)
    etag = first.headers["ETag"]
    again = await client.get(f"{STATUS}?syncToken={token}", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    await upload_file(client, headers, os.urandom(100), name="second.bin")
    changed = await client.get(f"{STATUS}?syncToken={token}", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


async def test_a_long_poll_is_answered_as_soon_as_another_device_changes_something(
    config: Config, idle_jump_clock: trio.testing.MockClock
) -> None:
    async with running_app(config, idle_jump_clock) as app:
        await _long_poll_wakes(app.test_client())


async def _long_poll_wakes(client: Any) -> None:
    phone = await register(client, device_id="phone")
    tablet = await register(client, device_id="tablet")
    token = (await _status(client, phone))["nextSyncToken"]
    answered: dict[str, Any] = {}

    async def poll() -> None:
        started = trio.current_time()
        answered["data"] = await _status(client, phone, syncToken=token, wait=300)
        answered["after"] = trio.current_time() - started

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(100)  # fake time: the poll has waited 100 s with nothing to report
        assert answered == {}
        made = await upload_file(client, tablet, os.urandom(100), name="from-tablet.bin")
    assert [f["id"] for f in answered["data"]["changes"]["created"]] == [made["id"]]
    assert answered["after"] < 300


async def test_a_long_poll_with_nothing_to_report_ends_after_wait(
    config: Config, idle_jump_clock: trio.testing.MockClock
) -> None:
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = await register(client)
        token = (await _status(client, headers))["nextSyncToken"]
        started = trio.current_time()
        answer = await _status(client, headers, syncToken=token, wait=45)
    assert answer["hasChanges"] is False
    assert trio.current_time() - started == pytest.approx(45, abs=1)


@pytest.mark.parametrize("query", ["limit=0", "limit=5001", "wait=301", "wait=-1", "limit=abc"])
async def test_bad_parameters_are_400(client: Any, query: str) -> None:
    headers = await register(client)
    response = await client.get(f"{STATUS}?{query}", headers=headers)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"
