"""``POST /auth/refresh``: rotation, reuse detection, the retry grace window and expiry.

Clock-driven tests use ``autojump_clock`` and a node without periodic tasks (``quiet_node``), so
``trio.sleep`` moves the node's clock exactly and instantly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.auth_support import DEVICES, REFRESH, bearer, error_code, quiet_node, register
from vault.config import Config


async def _refresh(client: Any, token: str, device_id: str = "phone-1") -> Any:
    return await client.post(REFRESH, json={"refreshToken": token, "deviceId": device_id})


async def _tokens(response: Any) -> dict[str, str]:
    body = await response.get_json()
    assert response.status_code == 200, body
    assert set(body) == {"success", "tokens"} and body["success"] is True
    tokens: dict[str, str] = body["tokens"]
    return tokens


@pytest.fixture
async def quiet_client(config: Config) -> Any:
    """Tests using it also take ``autojump_clock``: pytest-trio runs a test with the clock it is given."""
    async with quiet_node(config) as app:
        yield app.test_client()


async def test_refresh_rotates_and_the_new_pair_works(quiet_client: Any, autojump_clock: Any) -> None:
    first = (await register(quiet_client))["tokens"]
    new = await _tokens(await _refresh(quiet_client, first["refreshToken"]))
    assert set(new) == {"accessToken", "refreshToken", "expiresIn"}
    assert new["refreshToken"] != first["refreshToken"] and new["refreshToken"].startswith("rt_")
    assert new["accessToken"] != first["accessToken"]
    assert new["expiresIn"] == "7d"
    assert (await quiet_client.get(DEVICES, headers=bearer(new["accessToken"]))).status_code == 200
    newer = await _tokens(await _refresh(quiet_client, new["refreshToken"]))
    assert newer["refreshToken"] not in (first["refreshToken"], new["refreshToken"])


async def test_replay_after_the_grace_window_revokes_the_whole_family(quiet_client: Any, autojump_clock: Any) -> None:
    first = (await register(quiet_client))["tokens"]
    second = await _tokens(await _refresh(quiet_client, first["refreshToken"]))
    await trio.sleep(11)  # past the default 10 s grace
    replay = await _refresh(quiet_client, first["refreshToken"])
    assert replay.status_code == 401
    assert await error_code(replay) == "TOKEN_REUSED"
    # The thief's and the owner's newest tokens are dead alike: the family is revoked.
    newest = await _refresh(quiet_client, second["refreshToken"])
    assert newest.status_code == 401
    assert await error_code(newest) == "DEVICE_REVOKED"
    access = await quiet_client.get(DEVICES, headers=bearer(second["accessToken"]))
    assert access.status_code == 401
    assert await error_code(access) == "DEVICE_REVOKED"
    # Signing in again starts a new family on the same device.
    again = await register(quiet_client)
    assert (await quiet_client.get(DEVICES, headers=bearer(again))).status_code == 200


async def test_a_lost_answer_can_be_retried_within_the_grace_window(quiet_client: Any, autojump_clock: Any) -> None:
    first = (await register(quiet_client))["tokens"]
    lost = await _tokens(await _refresh(quiet_client, first["refreshToken"]))
    await trio.sleep(5)
    retry = await _tokens(await _refresh(quiet_client, first["refreshToken"]))
    assert retry == lost  # the same pair, not a third one
    assert (await quiet_client.get(DEVICES, headers=bearer(retry["accessToken"]))).status_code == 200
    # Once the successor has been used, the old token is a replay even within the window.
    await _tokens(await _refresh(quiet_client, retry["refreshToken"]))
    late = await _refresh(quiet_client, first["refreshToken"])
    assert await error_code(late) == "TOKEN_REUSED"


async def test_retry_grace_is_configurable(make_config: Callable[..., Config], autojump_clock: Any) -> None:
    async with quiet_node(make_config(auth={"refresh_retry_grace": "2s"})) as app:
        client = app.test_client()
        first = (await register(client))["tokens"]
        await _tokens(await _refresh(client, first["refreshToken"]))
        await trio.sleep(3)
        assert await error_code(await _refresh(client, first["refreshToken"])) == "TOKEN_REUSED"


async def test_concurrent_refreshes_with_one_token_get_the_same_pair(quiet_client: Any, autojump_clock: Any) -> None:
    first = (await register(quiet_client))["tokens"]
    answers: list[dict[str, str]] = []

    async def one() -> None:
        answers.append(await _tokens(await _refresh(quiet_client, first["refreshToken"])))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert len(answers) == 3 and answers[0] == answers[1] == answers[2]


async def test_wrong_device_id_is_unauthorized_and_leaves_the_token_usable(
    quiet_client: Any, autojump_clock: Any
) -> None:
    phone = (await register(quiet_client))["tokens"]
    await register(quiet_client, device_id="tablet-1")
    for device_id in ("someone-else", "tablet-1"):
        response = await _refresh(quiet_client, phone["refreshToken"], device_id=device_id)
        assert response.status_code == 401
        assert await error_code(response) == "UNAUTHORIZED"
    await _tokens(await _refresh(quiet_client, phone["refreshToken"]))


async def test_the_server_device_id_is_accepted_too(quiet_client: Any, autojump_clock: Any) -> None:
    body = await register(quiet_client)
    await _tokens(await _refresh(quiet_client, body["tokens"]["refreshToken"], device_id=body["device"]["id"]))


@pytest.mark.parametrize("token", ["rt_" + "A" * 43, "garbage", "eyJhbGciOiJIUzI1NiJ9.e30.x"])
async def test_unknown_or_malformed_tokens_are_unauthorized(quiet_client: Any, autojump_clock: Any, token: str) -> None:
    response = await _refresh(quiet_client, token)
    assert response.status_code == 401
    assert await error_code(response) == "UNAUTHORIZED"


async def test_expired_refresh_token_is_token_expired(quiet_client: Any, autojump_clock: Any) -> None:
    tokens = (await register(quiet_client))["tokens"]
    await trio.sleep(90 * 86400 - 60)
    still = await _tokens(await _refresh(quiet_client, tokens["refreshToken"]))
    await trio.sleep(90 * 86400)
    response = await _refresh(quiet_client, still["refreshToken"])
    assert response.status_code == 401
    assert await error_code(response) == "TOKEN_EXPIRED"


async def test_refresh_unknown_field_is_a_validation_error(quiet_client: Any, autojump_clock: Any) -> None:
    response = await quiet_client.post(REFRESH, json={"refreshToken": "rt_x", "deviceId": "d", "userId": "u"})
    assert response.status_code == 400
    assert await error_code(response) == "VALIDATION_ERROR"
