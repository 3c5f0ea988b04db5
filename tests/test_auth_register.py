"""``POST /auth/register``: accounts, sign-in, device registration and what it answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.auth_support import (
    DEVICES,
    PASSWORD,
    REFRESH,
    REGISTER,
    bearer,
    error_code,
    quiet_node,
    register,
    register_body,
)
from vault.app import VaultApp
from vault.auth import accounts
from vault.auth.passwords import make_hasher
from vault.config import Config
from vault.notifications.records import NOTIFICATIONS

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_register_answers_exactly_the_spec_fields(client: Any) -> None:
    body = await register(client, " John@Example.com ")
    assert set(body) == {"success", "user", "tokens", "device", "syncData"}
    assert body["success"] is True
    assert set(body["user"]) == {"id", "email", "name"}
    assert body["user"]["id"].startswith("user_")
    assert body["user"]["email"] == "john@example.com"
    assert body["user"]["name"] == "John Doe"
    assert set(body["tokens"]) == {"accessToken", "refreshToken", "expiresIn"}
    assert body["tokens"]["refreshToken"].startswith("rt_")
    assert body["tokens"]["accessToken"].count(".") == 2
    assert body["tokens"]["expiresIn"] == "7d"
    assert set(body["device"]) == {"id", "name", "registeredAt"}
    assert body["device"]["id"].startswith("device_")
    assert body["device"]["name"] == "John's Pixel 7"
    assert RFC3339.match(body["device"]["registeredAt"])
    assert body["syncData"] == {"lastSyncAt": None, "pendingUploads": 0, "cacheSize": 0}


async def test_known_email_signs_in_to_the_same_account(client: Any) -> None:
    first = await register(client, "john@example.com")
    again = await register(client, "JOHN@example.com ", device_id="tablet-1", model="Galaxy Tab")
    assert again["user"]["id"] == first["user"]["id"]
    assert again["device"]["id"] != first["device"]["id"]
    assert again["device"]["name"] == "John's Galaxy Tab"


async def test_without_a_name_the_email_local_part_names_things(client: Any) -> None:
    body = await register(client, "alice@example.com", name=None, model="iPhone 15 Pro", platform="ios")
    assert body["user"]["name"] == "alice"
    assert body["device"]["name"] == "alice's iPhone 15 Pro"


async def test_wrong_password_is_invalid_credentials(client: Any) -> None:
    await register(client)
    response = await client.post(REGISTER, json=register_body(password="not the password"))
    assert response.status_code == 401
    assert await error_code(response) == "INVALID_CREDENTIALS"


async def test_expires_in_follows_the_configured_ttl(make_config: Callable[..., Config]) -> None:
    async with quiet_node(make_config(auth={"access_token_ttl": "1h"})) as app:
        body = await register(app.test_client())
    assert body["tokens"]["expiresIn"] == "1h"


async def test_closed_signup_refuses_new_emails_but_admits_existing_accounts(
    make_config: Callable[..., Config],
) -> None:
    async with quiet_node(make_config(auth={"signup": "closed"})) as app:
        client = app.test_client()
        response = await client.post(REGISTER, json=register_body("new@example.com"))
        assert response.status_code == 403
        assert await error_code(response) == "SIGNUP_DISABLED"
        await _add_user(app, "admin@example.com", PASSWORD)
        body = await register(client, "admin@example.com")
        assert body["user"]["email"] == "admin@example.com"


async def _add_user(app: VaultApp, email: str, password: str, hasher: Any = None) -> None:
    password_hash = (hasher or make_hasher()).hash(password)
    now = app.node.clock.now()
    await app.node.meta.write(
        lambda txn: accounts.create_user(txn, email=email, name="", password_hash=password_hash, plan="free", now=now)
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": 42}, "email"),
        ({"password": "short"}, "password"),
        ({"password": None}, "password"),
        ({"deviceInfo": {"platform": "toaster", "deviceId": "x"}}, "deviceInfo.platform"),
        ({"deviceInfo": {"platform": "ios"}}, "deviceInfo.deviceId"),
        ({"deviceInfo": {"platform": "ios", "deviceId": ""}}, "deviceInfo.deviceId"),
        ({"deviceInfo": {"platform": "ios", "deviceId": "a b"}}, "deviceInfo.deviceId"),
    ],
)
async def test_invalid_bodies_are_validation_errors(client: Any, change: dict[str, Any], field: str) -> None:
    response = await client.post(REGISTER, json={**register_body(), **change})
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"plan": "enterprise"}, "plan"),
        ({"userId": "user_123"}, "userId"),
        ({"isAdmin": True}, "isAdmin"),
    ],
)
async def test_mass_assignment_is_refused(client: Any, extra: dict[str, Any], field: str) -> None:
    response = await client.post(REGISTER, json={**register_body(), **extra})
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"]["field"] == field
    nested = register_body(sessionId="session_x")
    response = await client.post(REGISTER, json=nested)
    assert (await response.get_json())["error"]["details"]["field"] == "deviceInfo.sessionId"


async def test_same_device_id_is_the_same_device_and_its_old_tokens_stop(client: Any) -> None:
    first = await register(client)
    second = await register(client, model="Pixel 8")
    assert second["device"]["id"] == first["device"]["id"]
    assert second["device"]["registeredAt"] == first["device"]["registeredAt"]
    assert second["device"]["name"] == "John's Pixel 8"
    old_refresh = await client.post(
        REFRESH, json={"refreshToken": first["tokens"]["refreshToken"], "deviceId": "phone-1"}
    )
    assert old_refresh.status_code == 401
    assert await error_code(old_refresh) == "DEVICE_REVOKED"
    assert (await client.get(DEVICES, headers=bearer(first))).status_code == 401
    listing = await client.get(DEVICES, headers=bearer(second))
    devices = (await listing.get_json())["data"]["devices"]
    assert [(d["id"], d["model"]) for d in devices] == [(first["device"]["id"], "Pixel 8")]


async def test_a_new_device_makes_a_security_notification_for_the_others(app: VaultApp) -> None:
    client = app.test_client()
    phone = await register(client)
    await register(client)  # the same device again: nothing new to tell
    tablet = await register(client, device_id="tablet-1", model="Galaxy Tab")
    with app.node.meta.read() as txn:
        stored = [n for _, n in txn.scan(NOTIFICATIONS)]
    assert len(stored) == 1
    note = stored[0]
    assert note.user_id == phone["user"]["id"]
    assert note.category == "security"
    assert note.title == "New device login detected"
    assert "John's Galaxy Tab" in note.body
    assert note.exclude_device_id == tablet["device"]["id"]
    assert [d.device_id for d in note.deliveries] == [phone["device"]["id"]]
    assert note.data["deviceId"] == tablet["device"]["id"]


async def test_passwords_are_argon2id_with_at_least_owasp_parameters(app: VaultApp) -> None:
    await register(app.test_client())
    with app.node.meta.read() as txn:
        user = accounts.find_by_email(txn, "john@example.com")
    assert user is not None
    match = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", user.password_hash)
    assert match, user.password_hash
    assert int(match.group(1)) >= 19 * 1024 and int(match.group(2)) >= 2


async def test_an_old_hash_is_upgraded_transparently_at_sign_in(app: VaultApp) -> None:
    weak = make_hasher(memory_kib=8 * 1024, time_cost=1)
    await _add_user(app, "old@example.com", PASSWORD, hasher=weak)
    with app.node.meta.read() as txn:
        before = accounts.find_by_email(txn, "old@example.com")
    assert before is not None and ",t=1," in before.password_hash
    await register(app.test_client(), "old@example.com")
    with app.node.meta.read() as txn:
        after = accounts.find_by_email(txn, "old@example.com")
    assert after is not None and "m=19456,t=2," in after.password_hash
    await register(app.test_client(), "old@example.com")  # the new hash verifies the same password
