"""Access tokens on every request: pinned algorithm, signature, issuer/audience, expiry, the key
ring in the data directory, and logout."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio

from tests.auth_support import DEVICES, LOGOUT, REFRESH, bearer, error_code, quiet_node, register
from vault.app import VaultApp
from vault.auth.tokens import KeyRing
from vault.config import Config

pytestmark = pytest.mark.reliability


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    _, payload, signature = token.split(".")
    return jwt.get_unverified_header(token), json.loads(base64.urlsafe_b64decode(payload + "==")), signature


def _ring(app: VaultApp) -> KeyRing:
    ring = KeyRing(app.node.data_dir / "keys.json")
    ring.reload_if_changed()
    return ring


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _status(client: Any, token: str) -> tuple[int, str]:
    response = await client.get(DEVICES, headers=bearer(token))
    body = await response.get_json()
    return response.status_code, body["error"]["code"] if response.status_code != 200 else ""


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic am9objpwdw==", "Token abc", "Bearer not-a-jwt", "Bearer a.b.c"],
)
async def test_missing_or_malformed_bearer_is_unauthorized(client: Any, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.get(DEVICES, headers=headers)
    assert response.status_code == 401
    assert await error_code(response) == "UNAUTHORIZED"


async def test_alg_none_is_unauthorized(app: VaultApp) -> None:
    client = app.test_client()
    token = (await register(client))["tokens"]["accessToken"]
    header, payload, _ = _parts(token)
    for alg in ("none", "None", "NONE"):
        forged = f"{_b64({**header, 'alg': alg})}.{_b64(payload)}."
        assert await _status(client, forged) == (401, "UNAUTHORIZED")


async def test_other_algorithms_are_unauthorized_even_with_the_right_key(app: VaultApp) -> None:
    client = app.test_client()
    token = (await register(client))["tokens"]["accessToken"]
    header, payload, _ = _parts(token)
    key = _ring(app).key(header["kid"])
    assert key is not None
    forged = jwt.encode(payload, key * 2, algorithm="HS512", headers={"kid": header["kid"]})
    assert await _status(client, forged) == (401, "UNAUTHORIZED")


async def test_tampered_tokens_are_unauthorized(app: VaultApp) -> None:
    client = app.test_client()
    alice = (await register(client, "alice@example.com"))["tokens"]["accessToken"]
    bob = await register(client, "bob@example.com")
    _, payload, signature = _parts(alice)
    # Claim to be Bob while keeping Alice's signature.
    as_bob = f"{alice.split('.')[0]}.{_b64({**payload, 'sub': bob['user']['id']})}.{signature}"
    assert await _status(client, as_bob) == (401, "UNAUTHORIZED")
    # Extend the expiry.
    longer = f"{alice.split('.')[0]}.{_b64({**payload, 'exp': payload['exp'] + 10**6})}.{signature}"
    assert await _status(client, longer) == (401, "UNAUTHORIZED")
    # Flip the signature.
    flipped = alice[:-2] + ("AA" if not alice.endswith("AA") else "BB")
    assert await _status(client, flipped) == (401, "UNAUTHORIZED")
    # The genuine token still works.
    assert await _status(client, alice) == (200, "")


async def test_right_key_but_wrong_issuer_or_audience_is_unauthorized(app: VaultApp) -> None:
    client = app.test_client()
    token = (await register(client))["tokens"]["accessToken"]
    header, payload, _ = _parts(token)
    key = _ring(app).key(header["kid"])
    assert key is not None
    for change in ({"iss": "someone-else"}, {"aud": "another-app"}):
        forged = jwt.encode({**payload, **change}, key, algorithm="HS256", headers={"kid": header["kid"]})
        assert await _status(client, forged) == (401, "UNAUTHORIZED")
    unknown_kid = jwt.encode(payload, key, algorithm="HS256", headers={"kid": "k_unknown"})
    assert await _status(client, unknown_kid) == (401, "UNAUTHORIZED")


async def test_access_token_expires_after_its_ttl(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        tokens = (await register(client))["tokens"]
        await trio.sleep(7 * 86400 - 1)
        assert await _status(client, tokens["accessToken"]) == (200, "")
        await trio.sleep(1)
        assert await _status(client, tokens["accessToken"]) == (401, "TOKEN_EXPIRED")
        # The refresh token is what a phone uses next.
        response = await client.post(REFRESH, json={"refreshToken": tokens["refreshToken"], "deviceId": "phone-1"})
        fresh = (await response.get_json())["tokens"]["accessToken"]
        assert await _status(client, fresh) == (200, "")


async def test_key_ring_is_created_at_first_start_private_and_used(app: VaultApp) -> None:
    assert _mode(app.node.data_dir / "keys.json") == 0o600
    token = (await register(app.test_client()))["tokens"]["accessToken"]
    assert jwt.get_unverified_header(token)["kid"] == _ring(app).current_kid


async def test_rotated_key_signs_new_tokens_and_old_tokens_keep_working(app: VaultApp) -> None:
    client = app.test_client()
    before = (await register(client))["tokens"]["accessToken"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = KeyRing(app.node.data_dir / "keys.json").rotate(app.node.clock.now(), keep_retired_for=7 * 86400)
    after = (await register(client, device_id="tablet-1"))["tokens"]["accessToken"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    assert await _status(client, before) == (200, "")
    assert await _status(client, after) == (200, "")


async def test_logout_revokes_the_device_tokens_but_keeps_the_device(client: Any) -> None:
    phone = await register(client)
    tablet = await register(client, device_id="tablet-1")
    response = await client.post(LOGOUT, headers=bearer(phone))
    assert response.status_code == 200
    body = await response.get_json()
    assert body == {"success": True, "data": {"loggedOut": True, "deviceId": phone["device"]["id"]}}
    assert await _status(client, phone["tokens"]["accessToken"]) == (401, "DEVICE_REVOKED")
    refresh = await client.post(REFRESH, json={"refreshToken": phone["tokens"]["refreshToken"], "deviceId": "phone-1"})
    assert refresh.status_code == 401
    assert await error_code(refresh) == "DEVICE_REVOKED"
    # Other devices are untouched, and the logged-out one is still registered.
    listing = await client.get(DEVICES, headers=bearer(tablet))
    ids = [d["id"] for d in (await listing.get_json())["data"]["devices"]]
    assert phone["device"]["id"] in ids
    # Signing in again on the phone works and keeps its device id.
    again = await register(client)
    assert again["device"]["id"] == phone["device"]["id"]
    assert await _status(client, again["tokens"]["accessToken"]) == (200, "")


async def test_logout_needs_a_live_token(client: Any) -> None:
    response = await client.post(LOGOUT)
    assert response.status_code == 401
    phone = await register(client)
    assert (await client.post(LOGOUT, headers=bearer(phone))).status_code == 200
    again = await client.post(LOGOUT, headers=bearer(phone))
    assert again.status_code == 401
    assert await error_code(again) == "DEVICE_REVOKED"


async def test_unknown_kid_and_another_nodes_key_are_unauthorized(app: VaultApp, tmp_path: Path) -> None:
    client = app.test_client()
    token = (await register(client))["tokens"]["accessToken"]
    header, payload, _ = _parts(token)
    key = _ring(app).key(header["kid"])
    assert key is not None
    # A kid this node never made, signed with this node's own key: refused, not looked past.
    unknown = jwt.encode(payload, key, algorithm=header["alg"], headers={"kid": "k-not-ours"})
    assert await _status(client, unknown) == (401, "UNAUTHORIZED")
    # Another node's key ring (another data directory), same kid name and claims: refused.
    other = KeyRing(tmp_path / "other-node-keys.json")
    other.load_or_create(now=0.0)
    other_key = other.key(other.current_kid)
    assert other_key is not None and other_key != key
    for kid in (header["kid"], other.current_kid):
        forged = jwt.encode(payload, other_key, algorithm=header["alg"], headers={"kid": kid})
        assert await _status(client, forged) == (401, "UNAUTHORIZED")


async def test_a_removed_devices_token_stops_working_at_once(app: VaultApp) -> None:
    client = app.test_client()
    phone = await register(client, device_id="phone-1")
    tablet = await register(client, device_id="tablet-1")
    assert await _status(client, tablet["tokens"]["accessToken"]) == (200, "")
    removed = await client.delete(f"{DEVICES}/{tablet['device']['id']}", headers=bearer(phone))
    assert removed.status_code == 200
    status, code = await _status(client, tablet["tokens"]["accessToken"])
    assert status == 401 and code in {"UNAUTHORIZED", "DEVICE_REVOKED"}
    refreshed = await client.post(
        REFRESH, json={"refreshToken": tablet["tokens"]["refreshToken"], "deviceId": "tablet-1"}
    )
    assert refreshed.status_code == 401


def test_verified_tokens_check_a_signature_once_but_the_key_and_expiry_every_time() -> None:
    from vault import errors
    from vault.auth.tokens import AccessClaims, VerifiedTokens, sign_access_token

    claims = AccessClaims(
        user_id="u_1", device_id="d_1", session_id="s_1", token_id="t_1", issued_at=1000, expires_at=2000
    )
    keys = {"k1": b"a" * 32}
    token = sign_access_token(claims, "k1", keys["k1"])
    cache = VerifiedTokens(capacity=2)
    assert cache.verify(token, keys.get, 1500) == claims
    assert cache.verify(token, keys.get, 1500) == claims  # from the cache
    with pytest.raises(errors.TokenExpired):
        cache.verify(token, keys.get, 2000)
    keys["k1"] = b"b" * 32  # the ring changed under the same kid: verified afresh, and refused
    with pytest.raises(errors.Unauthorized):
        cache.verify(token, keys.get, 1500)
    del keys["k1"]
    with pytest.raises(errors.Unauthorized):
        cache.verify(token, keys.get, 1500)
    keys["k1"] = b"a" * 32
    signed_by_another = sign_access_token(claims, "k1", b"c" * 32).rpartition(".")[2]
    forged = token.rpartition(".")[0] + "." + signed_by_another
    for _ in range(2):  # a forged signature is never cached
        with pytest.raises(errors.Unauthorized):
            cache.verify(forged, keys.get, 1500)
    assert cache.verify(token, keys.get, 1500) == claims
    for n in range(3):
        other = AccessClaims(
            user_id=f"u_{n}", device_id="d", session_id="s", token_id="t", issued_at=1000, expires_at=2000
        )
        cache.verify(sign_access_token(other, "k1", keys["k1"]), keys.get, 1500)
    assert len(cache._claims) == 2  # bounded
