"""``/devices``: listing, settings, removal, device limits and coarse ``lastActiveAt``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.auth_support import (
    DEVICES,
    REFRESH,
    REGISTER,
    bearer,
    error_code,
    quiet_node,
    register,
    register_body,
)
from vault.clock import rfc3339
from vault.config import Config

SETTING_KEYS = {"autoUpload", "backgroundSync", "wifiOnly", "uploadQuality", "syncFolders", "maxCacheSize"}
DEVICE_KEYS = {
    "id",
    "name",
    "platform",
    "model",
    "osVersion",
    "appVersion",
    "registeredAt",
    "lastActiveAt",
    "isCurrent",
    "settings",
    "syncData",  # beyond the spec's list: lastSyncAt and pendingUploads, as register answers them
}


async def _devices(client: Any, who: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(DEVICES, headers=bearer(who))
    body = await response.get_json()
    assert response.status_code == 200, body
    data: dict[str, Any] = body["data"]
    return data


async def _settings(client: Any, who: dict[str, Any], device_id: str, change: dict[str, Any]) -> Any:
    return await client.put(f"{DEVICES}/{device_id}/settings", headers=bearer(who), json=change)


async def test_list_marks_the_calling_device_and_shows_every_field(client: Any) -> None:
    phone = await register(client)
    ipad = await register(client, device_id="ipad-1", model="iPad Air", platform="ios")
    seen_by_phone = await _devices(client, phone)
    assert seen_by_phone["currentDevice"] == phone["device"]["id"]
    by_id = {d["id"]: d for d in seen_by_phone["devices"]}
    assert set(by_id) == {phone["device"]["id"], ipad["device"]["id"]}
    assert by_id[phone["device"]["id"]]["isCurrent"] is True
    assert by_id[ipad["device"]["id"]]["isCurrent"] is False
    for device in by_id.values():
        assert set(device) == DEVICE_KEYS
        assert set(device["settings"]) == SETTING_KEYS
    ipad_entry = by_id[ipad["device"]["id"]]
    assert ipad_entry["name"] == "John's iPad Air"
    assert (
        ipad_entry["platform"],
        ipad_entry["model"],
        ipad_entry["osVersion"],
        ipad_entry["appVersion"],
    ) == (
        "ios",
        "iPad Air",
        "14",
        "1.2.0",
    )
    seen_by_ipad = await _devices(client, ipad)
    assert seen_by_ipad["currentDevice"] == ipad["device"]["id"]


async def test_default_settings_hold_all_six_keys(client: Any) -> None:
    phone = await register(client)
    settings = (await _devices(client, phone))["devices"][0]["settings"]
    assert settings == {
        "autoUpload": True,
        "backgroundSync": True,
        "wifiOnly": True,
        "uploadQuality": "original",
        "syncFolders": ["/"],
        "maxCacheSize": 1073741824,
    }


async def test_partial_updates_change_only_what_was_sent(client: Any) -> None:
    phone = await register(client)
    device_id = phone["device"]["id"]
    response = await _settings(client, phone, device_id, {"wifiOnly": False})
    assert response.status_code == 200
    device = (await response.get_json())["data"]["device"]
    assert set(device) == DEVICE_KEYS and device["isCurrent"] is True
    assert device["settings"]["wifiOnly"] is False and device["settings"]["autoUpload"] is True
    response = await _settings(client, phone, device_id, {"uploadQuality": "high", "syncFolders": ["/photos/"]})
    settings = (await response.get_json())["data"]["device"]["settings"]
    assert settings["wifiOnly"] is False  # the first change is kept
    assert settings["uploadQuality"] == "high" and settings["syncFolders"] == ["/photos"]
    assert (await _devices(client, phone))["devices"][0]["settings"] == settings


async def test_the_spec_example_update_applies(client: Any) -> None:
    phone = await register(client)
    tablet = await register(client, device_id="tablet-1")
    change = {
        "autoUpload": True,
        "backgroundSync": True,
        "wifiOnly": True,
        "uploadQuality": "original",
        "syncFolders": ["/photos", "/documents"],
        "maxCacheSize": 1073741824,
    }
    # A user manages their other devices too.
    response = await _settings(client, phone, tablet["device"]["id"], change)
    assert response.status_code == 200
    device = (await response.get_json())["data"]["device"]
    assert device["settings"] == change and device["isCurrent"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uploadQuality": "ultra"}, "uploadQuality"),
        ({"syncFolders": ["photos"]}, "syncFolders"),
        ({"syncFolders": ["/a/../b"]}, "syncFolders"),
        ({"syncFolders": ["/a/./b"]}, "syncFolders"),
        ({"syncFolders": ["/a//b"]}, "syncFolders"),
        ({"syncFolders": "/photos"}, "syncFolders"),
        ({"maxCacheSize": -1}, "maxCacheSize"),
        ({"maxCacheSize": 1.5}, "maxCacheSize"),
        ({"autoUpload": "yes"}, "autoUpload"),
        ({"wifiOnly": None}, "wifiOnly"),
        ({"isAdmin": True}, "isAdmin"),
        ({"userId": "user_x"}, "userId"),
        ({"settings": {"wifiOnly": False}}, "settings"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(client: Any, change: dict[str, Any], field: str) -> None:
    phone = await register(client)
    before = (await _devices(client, phone))["devices"][0]["settings"]
    response = await _settings(client, phone, phone["device"]["id"], {"wifiOnly": False, **change})
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["field"].startswith(field)
    assert (await _devices(client, phone))["devices"][0]["settings"] == before


async def test_another_users_device_is_not_found_on_every_id_route(client: Any) -> None:
    alice = await register(client, "alice@example.com")
    mallory = await register(client, "mallory@example.com", device_id="m-1")
    target = alice["device"]["id"]
    for response in (
        await _settings(client, mallory, target, {"wifiOnly": False}),
        await client.delete(f"{DEVICES}/{target}", headers=bearer(mallory)),
        await _settings(client, mallory, "device_doesnotexist0000000000000000", {"wifiOnly": False}),
        await client.delete(f"{DEVICES}/device_doesnotexist0000000000000000", headers=bearer(mallory)),
    ):
        assert response.status_code == 404
        assert await error_code(response) == "NOT_FOUND"
    alices = await _devices(client, alice)
    assert [d["id"] for d in alices["devices"]] == [target]
    assert alices["devices"][0]["settings"]["wifiOnly"] is True
    assert target not in [d["id"] for d in (await _devices(client, mallory))["devices"]]


async def test_removing_a_device_locks_it_out_at_once(client: Any) -> None:
    phone = await register(client)
    tablet = await register(client, device_id="tablet-1")
    response = await client.delete(f"{DEVICES}/{tablet['device']['id']}", headers=bearer(phone))
    assert response.status_code == 200
    assert await response.get_json() == {"success": True, "data": {"removed": tablet["device"]["id"]}}
    locked = await client.get(DEVICES, headers=bearer(tablet))
    assert locked.status_code == 401
    assert await error_code(locked) == "DEVICE_REVOKED"
    refresh = await client.post(
        REFRESH, json={"refreshToken": tablet["tokens"]["refreshToken"], "deviceId": "tablet-1"}
    )
    assert refresh.status_code == 401
    assert await error_code(refresh) == "DEVICE_REVOKED"
    assert [d["id"] for d in (await _devices(client, phone))["devices"]] == [phone["device"]["id"]]
    again = await client.delete(f"{DEVICES}/{tablet['device']['id']}", headers=bearer(phone))
    assert again.status_code == 404
    # Signing in again on the removed tablet makes a new device.
    back = await register(client, device_id="tablet-1")
    assert back["device"]["id"] != tablet["device"]["id"]


async def test_a_device_can_remove_itself(client: Any) -> None:
    phone = await register(client)
    response = await client.delete(f"{DEVICES}/{phone['device']['id']}", headers=bearer(phone))
    assert response.status_code == 200
    assert (await client.get(DEVICES, headers=bearer(phone))).status_code == 401


async def test_free_plan_allows_three_devices_and_re_registration_at_the_limit(client: Any) -> None:
    devices = [await register(client, device_id=f"dev-{i}") for i in range(3)]
    response = await client.post(REGISTER, json=register_body(device_id="dev-3"))
    assert response.status_code == 403
    body = await response.get_json()
    assert body["error"]["code"] == "DEVICE_LIMIT_REACHED"
    assert body["error"]["details"] == {"limit": 3, "plan": "free"}
    # A known device signs in again at the limit.
    again = await register(client, device_id="dev-1")
    assert again["device"]["id"] == devices[1]["device"]["id"]
    # Removing one frees a slot.
    await client.delete(f"{DEVICES}/{devices[0]['device']['id']}", headers=bearer(again))
    await register(client, device_id="dev-3")
    assert len((await _devices(client, again))["devices"]) == 3


async def test_limits_come_from_the_configured_plans(make_config: Callable[..., Config]) -> None:
    config = make_config(plans={"default": "solo", "solo": {"devices": 1, "quota": "1GiB"}})
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        response = await client.post(REGISTER, json=register_body(device_id="second"))
        assert response.status_code == 403
        assert (await response.get_json())["error"]["details"] == {"limit": 1, "plan": "solo"}


async def test_unlimited_plan_has_no_device_limit(make_config: Callable[..., Config]) -> None:
    async with quiet_node(make_config(plans={"default": "enterprise"})) as app:
        client = app.test_client()
        for i in range(5):
            await register(client, device_id=f"dev-{i}")


async def test_last_active_is_kept_current_at_most_once_a_minute(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        phone = await register(client)
        start = app.node.clock.now()
        registered = phone["device"]["registeredAt"]
        assert (await _devices(client, phone))["devices"][0]["lastActiveAt"] == registered
        await trio.sleep(30)
        assert (await _devices(client, phone))["devices"][0]["lastActiveAt"] == registered
        await trio.sleep(31)
        assert (await _devices(client, phone))["devices"][0]["lastActiveAt"] == rfc3339(start + 61)
        await trio.sleep(59)
        assert (await _devices(client, phone))["devices"][0]["lastActiveAt"] == rfc3339(start + 61)
        await trio.sleep(1)
        assert (await _devices(client, phone))["devices"][0]["lastActiveAt"] == rfc3339(start + 121)


async def test_the_list_counts_each_devices_pending_uploads_and_when_it_last_synced(client: Any) -> None:
    phone = await register(client, device_id="phone-9")
    before = await _devices(client, phone)
    (entry,) = before["devices"]
    assert entry["syncData"] == {"lastSyncAt": None, "pendingUploads": 0}
    init = await client.post(
        "/api/mobile/upload/init",
        headers=bearer(phone),
        json={"files": [{"localId": "p", "name": "p.jpg", "size": 10}]},
    )
    assert init.status_code == 200
    await client.get("/api/mobile/sync/status", headers=bearer(phone))
    (after,) = (await _devices(client, phone))["devices"]
    assert after["syncData"]["pendingUploads"] == 1
    assert after["syncData"]["lastSyncAt"] is not None
