"""Pure pieces of auth, tested without a node: limiter, refresh-token codec, key ring, JWT checks."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jwt
import pytest

from vault import errors
from vault.auth import refresh
from vault.auth.accounts import normalise_email
from vault.auth.ratelimit import FailureWindow, LoginLimiter
from vault.auth.tokens import (
    AUDIENCE,
    ISSUER,
    AccessClaims,
    KeyRing,
    sign_access_token,
    verify_access_token,
)
from vault.devices.activity import ActivityTracker
from vault.devices.records import device_name
from vault.devices.settings import DeviceSettings, SettingsPatch, apply_patch

# -- failed-login window -------------------------------------------------------------------------


def test_window_refuses_after_limit_and_reopens_after_a_minute() -> None:
    window = FailureWindow(3)
    for t in (0.0, 1.0, 2.0):
        assert window.retry_after("k", t) is None
        window.record_failure("k", t)
    assert window.retry_after("k", 2.5) == 58  # the oldest failure leaves the window at t=60
    assert window.retry_after("k", 59.9) == 1
    assert window.retry_after("k", 60.0) is None


def test_window_slides_rather_than_resetting() -> None:
    window = FailureWindow(2)
    window.record_failure("k", 0.0)
    window.record_failure("k", 50.0)
    assert window.retry_after("k", 55.0) == 5
    assert window.retry_after("k", 61.0) is None
    window.record_failure("k", 61.0)
    assert window.retry_after("k", 62.0) == 48  # 50 + 60 - 62


def test_window_memory_is_bounded_under_a_flood_of_keys() -> None:
    window = FailureWindow(10, max_keys=100)
    for i in range(10_000):
        window.record_failure(f"user{i}@example.com", float(i) / 1000)
    assert len(window) == 100
    for _ in range(50):
        window.record_failure("same@example.com", 10.0)
    assert len(window._failures["same@example.com"]) == 10  # at most `limit` stamps per key


def test_window_keeps_recently_touched_keys_when_evicting() -> None:
    window = FailureWindow(5, max_keys=2)
    window.record_failure("a", 0.0)
    window.record_failure("b", 0.0)
    window.record_failure("a", 1.0)  # a is now the most recent
    window.record_failure("c", 2.0)  # evicts b
    assert "a" in window._failures and "c" in window._failures and "b" not in window._failures


def test_zero_limit_disables_the_window() -> None:
    window = FailureWindow(0)
    for t in range(100):
        window.record_failure("k", float(t))
    assert window.retry_after("k", 100.0) is None
    assert len(window) == 0


def test_login_limiter_counts_address_and_account_and_success_clears_only_account() -> None:
    limiter = LoginLimiter(2)
    limiter.record_failure("10.0.0.1", "a@x.io", 0.0)
    limiter.record_failure("10.0.0.2", "a@x.io", 0.0)
    assert limiter.retry_after("10.0.0.3", "a@x.io", 1.0) is not None  # account over the limit
    assert limiter.retry_after("10.0.0.1", "b@x.io", 1.0) is None  # the address had only one
    limiter.record_success("a@x.io")
    assert limiter.retry_after("10.0.0.3", "a@x.io", 1.0) is None
    limiter.record_failure("10.0.0.1", "c@x.io", 2.0)
    assert limiter.retry_after("10.0.0.1", None, 3.0) is not None


# -- refresh tokens ------------------------------------------------------------------------------


def test_refresh_tokens_are_prefixed_256_bit_and_round_trip() -> None:
    secret = refresh.new_secret()
    token = refresh.encode_token(secret)
    assert token.startswith("rt_") and len(secret) == 32
    assert refresh.decode_token(token) == secret
    assert refresh.new_secret() != secret


@pytest.mark.parametrize(
    "token",
    ["", "rt_", "rt_short", "xx_" + "A" * 43, "rt_" + "A" * 44, "rt_" + "!" * 43, "rt_" + "A" * 42 + "B"],
)
def test_malformed_refresh_tokens_are_refused(token: str) -> None:
    assert refresh.decode_token(token) is None


def test_token_hash_does_not_reveal_the_seal_pad() -> None:
    presented, successor = refresh.new_secret(), refresh.new_secret()
    sealed = refresh.seal(successor, presented)
    assert sealed != successor
    assert refresh.unseal(sealed, presented) == successor
    assert refresh.unseal(sealed, refresh.new_secret()) != successor
    # Neither the stored hash nor the sealed bytes equal or contain the secrets.
    stored = refresh.token_hash(presented) + refresh.token_hash(successor) + sealed
    assert presented not in stored and successor not in stored
    assert refresh.token_hash(presented) != bytes(a ^ b for a, b in zip(sealed, successor, strict=True))


# -- key ring and JWTs ---------------------------------------------------------------------------


def test_key_ring_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path)
    ring.load_or_create(1000.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyRing(path)
    again.load_or_create(2000.0)
    assert again.current_kid == ring.current_kid
    assert again.key(ring.current_kid) == ring.key(ring.current_kid)
    assert len(ring.key(ring.current_kid) or b"") == 32


def test_rotation_keeps_old_keys_until_their_tokens_expired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path)
    ring.load_or_create(0.0)
    first = ring.current_kid
    second = ring.rotate(100.0, keep_retired_for=1000.0)
    assert ring.current_kid == second != first
    assert ring.key(first) is not None  # tokens signed with it still verify
    third = ring.rotate(2000.0, keep_retired_for=1000.0)  # `first` retired at 100, expired by 1100
    assert ring.key(first) is None and ring.key(second) is not None and ring.current_kid == third
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_second_ring_notices_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    node_ring, cli_ring = KeyRing(path), KeyRing(path)
    node_ring.load_or_create(0.0)
    assert node_ring.reload_if_changed() is False
    new_kid = cli_ring.rotate(10.0, keep_retired_for=100.0)
    assert node_ring.reload_if_changed() is True
    assert node_ring.current_kid == new_kid


def _claims(**over: object) -> AccessClaims:
    base: dict[str, object] = {
        "user_id": "user_1",
        "device_id": "device_1",
        "session_id": "session_1",
        "token_id": "t1",
        "issued_at": 1000,
        "expires_at": 2000,
    }
    base.update(over)
    return AccessClaims(**base)  # type: ignore[arg-type]


KEY = b"k" * 64  # long enough for HS512 too, so only the algorithm differs


def test_signing_is_deterministic_and_verifies() -> None:
    token = sign_access_token(_claims(), "kid1", KEY)
    assert token == sign_access_token(_claims(), "kid1", KEY)
    assert verify_access_token(token, {"kid1": KEY}.get, 1500.0) == _claims()
    assert jwt.get_unverified_header(token)["kid"] == "kid1"


def test_expiry_follows_the_given_clock() -> None:
    token = sign_access_token(_claims(), "kid1", KEY)
    with pytest.raises(errors.TokenExpired):
        verify_access_token(token, {"kid1": KEY}.get, 2000.0)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _payload() -> dict[str, object]:
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user_1",
        "did": "device_1",
        "sid": "session_1",
        "jti": "t1",
        "iat": 1000,
        "exp": 2000,
    }


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda: f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'kid1'})}.{_b64(_payload())}.", id="alg-none"
        ),
        pytest.param(lambda: jwt.encode(_payload(), KEY, algorithm="HS512", headers={"kid": "kid1"}), id="alg-hs512"),
        pytest.param(
            lambda: jwt.encode(_payload(), b"x" * 32, algorithm="HS256", headers={"kid": "kid1"}),
            id="bad-key",
        ),
        pytest.param(
            lambda: jwt.encode(_payload(), KEY, algorithm="HS256", headers={"kid": "other"}), id="unknown-kid"
        ),
        pytest.param(lambda: jwt.encode(_payload(), KEY, algorithm="HS256"), id="no-kid"),
        pytest.param(
            lambda: jwt.encode({**_payload(), "iss": "evil"}, KEY, algorithm="HS256", headers={"kid": "kid1"}),
            id="wrong-issuer",
        ),
        pytest.param(
            lambda: jwt.encode({**_payload(), "aud": "web"}, KEY, algorithm="HS256", headers={"kid": "kid1"}),
            id="wrong-audience",
        ),
        pytest.param(
            lambda: jwt.encode(
                {k: v for k, v in _payload().items() if k != "sid"},
                KEY,
                algorithm="HS256",
                headers={"kid": "kid1"},
            ),
            id="no-session",
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_forged_or_foreign_tokens_are_unauthorized(forge: object) -> None:
    token = forge()  # type: ignore[operator]
    with pytest.raises(errors.Unauthorized):
        verify_access_token(token, {"kid1": KEY}.get, 1500.0)


def test_tampered_payload_is_unauthorized() -> None:
    header, _, signature = sign_access_token(_claims(), "kid1", KEY).split(".")
    forged = f"{header}.{_b64({**_payload(), 'sub': 'user_2'})}.{signature}"
    with pytest.raises(errors.Unauthorized):
        verify_access_token(forged, {"kid1": KEY}.get, 1500.0)


# -- small rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" John@Example.COM ", "john@example.com"),
        ("a@b.c", "a@b.c"),
        ("x.y+tag@mail.example.org", "x.y+tag@mail.example.org"),
    ],
)
def test_emails_are_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "plain", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@b..c", "a@" + "b" * 260 + ".c"])
def test_bad_emails_are_validation_errors(raw: str) -> None:
    with pytest.raises(errors.ValidationError) as info:
        normalise_email(raw)
    assert info.value.details == {"field": "email"}


def test_device_names() -> None:
    assert device_name("John Doe", "john@example.com", "Pixel 7", "android") == "John's Pixel 7"
    assert device_name("", "alice@example.com", "iPhone 15 Pro", "ios") == "alice's iPhone 15 Pro"
    assert device_name("Bo", "bo@example.com", "", "ios") == "Bo's iPhone"


def test_activity_is_written_at_most_once_a_minute() -> None:
    tracker = ActivityTracker()
    assert tracker.due("d", 1000.0, stored=1000.0) is False
    assert tracker.due("d", 1059.0, stored=1000.0) is False
    assert tracker.due("d", 1060.0, stored=1000.0) is True
    assert tracker.due("d", 1061.0, stored=1000.0) is False  # claimed in memory before the write lands
    tracker.forget("d")
    assert tracker.due("d", 1061.0, stored=1000.0) is True


def test_settings_patch_applies_only_given_keys_and_normalises_folders() -> None:
    patch = SettingsPatch(wifi_only=False, sync_folders=["/photos/", "/photos", "/Docs/2024"])
    settings = apply_patch(DeviceSettings(), patch)
    assert settings.wifi_only is False and settings.auto_upload is True
    assert settings.sync_folders == ["/photos", "/Docs/2024"]
    with pytest.raises(errors.ValidationError):
        apply_patch(settings, SettingsPatch(sync_folders=["/a/../b"]))
