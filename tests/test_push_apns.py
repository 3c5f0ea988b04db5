"""The ``apns`` provider against a local APNs fake: HTTP/2 over TLS, ES256 provider tokens.

The fake runs Hypercorn with a trustme certificate and ALPN, refuses anything but HTTP/2, verifies
each provider token with the public half of the ``.p8`` key the test made (and enforces Apple's
one-hour lifetime and 20-minute renewal floor), checks the headers and payload Apple documents and
answers errors with Apple's ``{"reason": …}`` bodies.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import msgspec
import pytest
import trio
import trio.testing
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from push_fakes import Reply, Scope, WallClock, refused_url, request_headers, serving
from vault_plugins.push_apns import ENDPOINTS, ApnsOptions, ApnsProvider

from vault.plugin_api import (
    Delivered,
    Failed,
    PushMessage,
    PushRegistration,
    RegistrationGone,
    RetryLater,
    check_provider,
    sample_context,
)

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
TOPIC = "com.example.megavault"
IPHONE = PushRegistration(device_id="iphone", platform="ios", push_token="a1b2c3d4" * 8)
UPLOAD = PushMessage(
    category="uploads",
    title="Upload finished",
    body="3 photos",
    created_at=1_700_000_000.0,
    data={"n": 3, "album": "Summer"},
)
SYNC_HINT = PushMessage(
    category="sync", title="", body="", created_at=1_700_000_000.0, data={"type": "sync"}, silent=True
)


@dataclass
class Received:
    http_version: str
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    token_header: dict[str, Any]
    claims: dict[str, Any]


class FakeApns:
    """APNs' ``POST /3/device/<token>`` with token-based authentication."""

    def __init__(self, clock: WallClock, public_key: ec.EllipticCurvePublicKey) -> None:
        self.clock = clock
        self.public_key = public_key
        self.received: list[Received] = []
        self.versions: list[str] = []  # of every request, before any check
        self.tokens: list[str] = []  # provider tokens in the order first seen
        self.last_new_token: float | None = None
        self.expired_before: float | None = None  # tokens issued before this are "expired" (Apple's clock)
        self.answers: dict[str, tuple[int, str, Mapping[str, str]]] = {}  # device token -> scripted answer
        self.hanging: set[str] = set()

    @staticmethod
    def error(status: int, reason: str, headers: Mapping[str, str] | None = None) -> Reply:
        body: dict[str, Any] = {"reason": reason}
        if status == 410:
            body["timestamp"] = 1_700_000_000_000
        answer = {"apns-id": str(uuid.uuid4()).upper(), "content-type": "application/json", **(headers or {})}
        return status, answer, json.dumps(body).encode()

    def authorize(self, headers: dict[str, str]) -> tuple[Reply | None, dict[str, Any], dict[str, Any]]:
        """An error answer for the provider token, or ``None`` and its verified header and claims."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "bearer" or not token:
            return self.error(403, "MissingProviderToken"), {}, {}
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"], options={"verify_iat": False})
        except jwt.InvalidTokenError:
            return self.error(403, "InvalidProviderToken"), {}, {}
        if header != {"alg": "ES256", "kid": KEY_ID} or set(claims) != {"iss", "iat"} or claims["iss"] != TEAM_ID:
            return self.error(403, "InvalidProviderToken"), header, claims
        now = self.clock()
        if now - claims["iat"] > 3600 or (self.expired_before is not None and claims["iat"] < self.expired_before):
            return self.error(403, "ExpiredProviderToken"), header, claims
        if token not in self.tokens:
            if self.last_new_token is not None and now - self.last_new_token < 20 * 60:
                return self.error(429, "TooManyProviderTokenUpdates"), header, claims
            self.tokens.append(token)
            self.last_new_token = now
        return None, header, claims

    async def __call__(self, scope: Scope, body: bytes) -> Reply:
        self.versions.append(scope["http_version"])
        if scope["http_version"] != "2":  # APNs speaks nothing else
            return self.error(505, "HTTP/2 required")
        headers = request_headers(scope)
        refusal, token_header, claims = self.authorize(headers)
        payload = json.loads(body) if body else {}
        self.received.append(
            Received(scope["http_version"], scope["method"], scope["path"], headers, payload, token_header, claims)
        )
        if refusal is not None:
            return refusal
        if scope["method"] != "POST":
            return self.error(405, "MethodNotAllowed")
        prefix, _, device = scope["path"].rpartition("/")
        if prefix != "/3/device":
            return self.error(404, "BadPath")
        if len(device) != 64 or any(c not in "0123456789abcdefABCDEF" for c in device):
            return self.error(400, "BadDeviceToken")
        if headers.get("apns-topic") != TOPIC:
            return self.error(400, "TopicDisallowed" if "apns-topic" in headers else "MissingTopic")
        push_type, priority = headers.get("apns-push-type"), headers.get("apns-priority", "10")
        if push_type not in ("alert", "background"):
            return self.error(400, "InvalidPushType")
        if priority not in ("1", "5", "10") or (push_type == "background" and priority != "5"):
            return self.error(400, "BadPriority")
        if not headers.get("apns-expiration", "0").isdigit():
            return self.error(400, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return self.error(400, "BadCollapseId")
        if not body:
            return self.error(400, "PayloadEmpty")
        if len(body) > 4096:
            return self.error(413, "PayloadTooLarge")
        if device in self.hanging:
            await trio.sleep_forever()
        if device in self.answers:
            status, reason, extra = self.answers[device]
            return self.error(status, reason, extra)
        return 200, {"apns-id": str(uuid.uuid4()).upper()}, b""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


class Setup:
    def __init__(self, fake: FakeApns, url: str, key_file: Path, ca_file: Path, tmp: Path, clock: WallClock) -> None:
        self.fake, self.url, self.key_file, self.ca_file, self.tmp, self.clock = (
            fake,
            url,
            key_file,
            ca_file,
            tmp,
            clock,
        )

    def provider(self, **options: Any) -> ApnsProvider:
        settings: dict[str, Any] = {
            "key_file": str(self.key_file),
            "key_id": KEY_ID,
            "team_id": TEAM_ID,
            "topic": TOPIC,
            "environment": "sandbox",
            "endpoint": self.url,
            "ca_file": str(self.ca_file),
            **options,
        }
        return ApnsProvider(msgspec.convert(settings, ApnsOptions), clock=self.clock)


@pytest.fixture
async def apple(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Setup]:
    clock = WallClock()
    key = ec.generate_private_key(ec.SECP256R1())
    fake = FakeApns(clock, key.public_key())
    key_file = write_key(tmp_path / f"AuthKey_{KEY_ID}.p8", key)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with serving(fake, tls=ca, cert_dir=tmp_path) as url:
        assert url.startswith("https://")
        yield Setup(fake, url, key_file, ca_file, tmp_path, clock)


@pytest.fixture
async def apns(apple: Setup) -> AsyncIterator[ApnsProvider]:
    provider = apple.provider()
    await provider.open(sample_context(apple.tmp))
    try:
        yield provider
    finally:
        await provider.close()


async def test_an_alert_goes_out_over_http2_as_apple_documents(apple: Setup, apns: ApnsProvider) -> None:
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    [request] = apple.fake.received
    assert request.http_version == "2"
    assert (request.method, request.path) == ("POST", f"/3/device/{IPHONE.push_token}")
    assert request.token_header == {"alg": "ES256", "kid": KEY_ID}  # verified with the .p8's public key
    assert request.claims == {"iss": TEAM_ID, "iat": int(apple.clock())}
    assert request.headers["apns-topic"] == TOPIC
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "10"
    assert request.headers["apns-expiration"] == str(int(UPLOAD.created_at) + 24 * 3600)
    assert "apns-collapse-id" not in request.headers
    assert request.body == {
        "aps": {"alert": {"title": "Upload finished", "body": "3 photos"}, "sound": "default"},
        "vault": {"n": 3, "album": "Summer", "category": "uploads"},
    }


async def test_a_security_alert_is_delivered_at_once(apple: Setup, apns: ApnsProvider) -> None:
    alert = PushMessage(category="security", title="New sign-in", body="From Safari", created_at=0.0)
    assert await apns.send(IPHONE, alert) == Delivered()
    [request] = apple.fake.received
    assert (request.headers["apns-push-type"], request.headers["apns-priority"]) == ("alert", "10")
    assert request.body["aps"]["alert"] == {"title": "New sign-in", "body": "From Safari"}


async def test_a_sync_hint_is_a_background_push_at_priority_5(apple: Setup, apns: ApnsProvider) -> None:
    assert apns.sync_hints is True
    assert await apns.send(IPHONE, SYNC_HINT) == Delivered()
    [request] = apple.fake.received
    assert request.headers["apns-push-type"] == "background"
    assert request.headers["apns-priority"] == "5"  # APNs refuses background pushes at 10
    assert request.headers["apns-collapse-id"] == "sync"
    assert request.headers["apns-expiration"] == str(int(SYNC_HINT.created_at) + 3600)
    assert request.body == {"aps": {"content-available": 1}, "vault": {"type": "sync", "category": "sync"}}


async def test_the_provider_token_is_shared_and_renewed_after_50_minutes(apple: Setup, apns: ApnsProvider) -> None:
    for _ in range(3):
        assert await apns.send(IPHONE, UPLOAD) == Delivered()
    apple.clock.advance(50 * 60 - 1)
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    assert len(apple.fake.tokens) == 1
    apple.clock.advance(1)
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    assert len(apple.fake.tokens) == 2  # and no TooManyProviderTokenUpdates: 50 minutes apart
    assert apple.fake.received[-1].claims["iat"] == int(apple.clock())


async def test_an_expired_provider_token_old_enough_is_renewed_once_for_a_burst(
    apple: Setup, apns: ApnsProvider
) -> None:
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    apple.clock.advance(25 * 60)
    apple.fake.expired_before = apple.clock()  # Apple's clock says the 25-minute-old token is stale
    outcomes: list[object] = []

    async def one() -> None:
        outcomes.append(await apns.send(IPHONE, UPLOAD))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(one)
    assert outcomes == [Delivered()] * 10
    assert len(apple.fake.tokens) == 2  # one renewal, not ten (which Apple would answer with 429)


async def test_an_expired_provider_token_too_young_to_renew_retries_later(apple: Setup, apns: ApnsProvider) -> None:
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    apple.clock.advance(5 * 60)
    apple.fake.expired_before = apple.clock()
    assert await apns.send(IPHONE, UPLOAD) == RetryLater("APNs ExpiredProviderToken (HTTP 403)", 15 * 60.0)
    assert len(apple.fake.tokens) == 1  # not renewed: Apple would refuse a renewal within 20 minutes
    apple.clock.advance(15 * 60)
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    assert len(apple.fake.tokens) == 2


@pytest.mark.parametrize(
    ("status", "reason"),
    [(410, "Unregistered"), (410, "ExpiredToken"), (400, "BadDeviceToken"), (400, "DeviceTokenNotForTopic")],
)
async def test_a_device_token_apple_no_longer_takes_is_gone(
    apple: Setup, apns: ApnsProvider, status: int, reason: str
) -> None:
    apple.fake.answers[IPHONE.push_token] = (status, reason, {})
    assert await apns.send(IPHONE, UPLOAD) == RegistrationGone(f"APNs {reason} (HTTP {status})")


@pytest.mark.parametrize(
    ("status", "reason", "retry_after", "delay"),
    [
        (429, "TooManyRequests", None, None),
        (429, "TooManyRequests", "60", 60.0),
        (500, "InternalServerError", None, None),
        (503, "ServiceUnavailable", "30", 30.0),
        (503, "Shutdown", None, None),
    ],
)
async def test_throttling_and_outages_retry_later(
    apple: Setup, apns: ApnsProvider, status: int, reason: str, retry_after: str | None, delay: float | None
) -> None:
    headers = {"retry-after": retry_after} if retry_after else {}
    apple.fake.answers[IPHONE.push_token] = (status, reason, headers)
    assert await apns.send(IPHONE, UPLOAD) == RetryLater(f"APNs {reason} (HTTP {status})", delay)


async def test_a_key_apple_does_not_know_fails(apple: Setup) -> None:
    write_key(apple.key_file, ec.generate_private_key(ec.SECP256R1()))  # revoked, or another team's key
    provider = apple.provider()
    await provider.open(sample_context(apple.tmp))
    try:
        assert await provider.send(IPHONE, UPLOAD) == Failed("APNs InvalidProviderToken (HTTP 403)")
    finally:
        await provider.close()


async def test_a_wrong_topic_fails_and_keeps_the_device(apple: Setup) -> None:
    wrong_topic = apple.provider(topic="com.example.other")
    await wrong_topic.open(sample_context(apple.tmp))
    try:
        assert await wrong_topic.send(IPHONE, UPLOAD) == Failed("APNs TopicDisallowed (HTTP 400)")
    finally:
        await wrong_topic.close()


async def test_a_payload_over_4_kib_fails(apple: Setup, apns: ApnsProvider) -> None:
    huge = PushMessage(category="uploads", title="Upload finished", body="x" * 5000, created_at=0.0)
    assert await apns.send(IPHONE, huge) == Failed("APNs PayloadTooLarge (HTTP 413)")


async def test_a_404_is_a_bad_path_not_a_gone_device(apple: Setup, apns: ApnsProvider) -> None:
    apple.fake.answers[IPHONE.push_token] = (404, "BadPath", {})
    assert await apns.send(IPHONE, UPLOAD) == Failed("APNs BadPath (HTTP 404)")


async def test_a_refused_connection_retries_later(apple: Setup) -> None:
    provider = apple.provider(endpoint=refused_url("https"))
    await provider.open(sample_context(apple.tmp))
    try:
        assert await provider.send(IPHONE, UPLOAD) == RetryLater("APNs unreachable (ConnectError)")
    finally:
        await provider.close()


async def test_apns_never_answering_times_out_into_retry_later(
    apple: Setup, apns: ApnsProvider, idle_jump_clock: trio.testing.MockClock
) -> None:
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    apple.fake.hanging.add(IPHONE.push_token)
    started = trio.current_time()
    assert await apns.send(IPHONE, UPLOAD) == RetryLater("APNs unreachable (ReadTimeout)")
    assert trio.current_time() - started >= 10  # the default timeout, passed on the mock clock


async def test_http1_is_never_spoken_even_to_a_server_that_offers_only_http1(
    apple: Setup, ca: trustme.CA, tmp_path: Path
) -> None:
    # A second server on the same fake whose ALPN offers only http/1.1: the client still speaks h2.
    async with serving(apple.fake, tls=ca, cert_dir=tmp_path, alpn=["http/1.1"]) as url:
        provider = apple.provider(endpoint=url)
        await provider.open(sample_context(apple.tmp))
        try:
            assert await provider.send(IPHONE, UPLOAD) == Delivered()  # h2 with prior knowledge
        finally:
            await provider.close()
    assert apple.fake.versions and set(apple.fake.versions) == {"2"}


async def test_options_are_checked_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="keyfile"):
        msgspec.convert({"keyfile": "AuthKey.p8"}, ApnsOptions)
    with pytest.raises(msgspec.ValidationError, match="environment"):
        msgspec.convert({"environment": "development"}, ApnsOptions)
    with pytest.raises(msgspec.ValidationError, match="key_id"):
        msgspec.convert({"key_id": "abc"}, ApnsOptions)
    with pytest.raises(msgspec.ValidationError, match="timeout"):
        msgspec.convert({"timeout": -1}, ApnsOptions)
    with pytest.raises(msgspec.ValidationError, match="endpoint"):
        msgspec.convert({"endpoint": "https://api.push.apple.com/3/device"}, ApnsOptions)
    defaults = ApnsOptions()
    assert (defaults.environment, defaults.endpoint, defaults.timeout) == ("production", "", 10.0)


async def test_the_environment_picks_apples_host() -> None:
    assert ENDPOINTS == {"production": "https://api.push.apple.com", "sandbox": "https://api.sandbox.push.apple.com"}


async def test_an_incomplete_or_unusable_configuration_is_refused_at_open(apple: Setup, tmp_path: Path) -> None:
    context = sample_context(tmp_path)
    with pytest.raises(ValueError, match=r"push\.apns\.key_file is not set"):
        await ApnsProvider(ApnsOptions()).open(context)
    for name in ("key_id", "team_id", "topic"):
        with pytest.raises(ValueError, match=rf"push\.apns\.{name} is not set"):
            await apple.provider(**{name: ""}).open(context)
    with pytest.raises(ValueError, match="cannot be read"):
        await apple.provider(key_file=str(tmp_path / "missing.p8")).open(context)
    (tmp_path / "garbage.p8").write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="not a PEM private key") as refused:
        await apple.provider(key_file=str(tmp_path / "garbage.p8")).open(context)
    assert "bm90IGEga2V5" not in str(refused.value)
    rsa_file = write_key(tmp_path / "rsa.p8", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(ValueError, match="not a P-256 EC key"):
        await apple.provider(key_file=str(rsa_file)).open(context)
    p384 = write_key(tmp_path / "p384.p8", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="not a P-256 EC key"):
        await apple.provider(key_file=str(p384)).open(context)


async def test_only_hex_device_tokens_are_taken(apple: Setup, apns: ApnsProvider) -> None:
    def ios(token: str) -> PushRegistration:
        return PushRegistration(device_id="d", platform="ios", push_token=token)

    assert await apns.check_registration(ios("ab" * 32)) is None
    assert await apns.check_registration(ios("AB" * 100)) is None
    for bad in ("ab" * 31 + "a", "a" * 201, "g" * 64, "ab" * 31 + "/.", ""):
        assert await apns.check_registration(ios(bad)) == "not an APNs device token (64 to 200 hexadecimal digits)"
    # A malformed token stored anyway never reaches the URL path.
    assert await apns.send(ios("../../x" + "a" * 60), UPLOAD) == Failed("not an APNs device token")
    assert apple.fake.versions == []


async def test_the_provider_passes_the_provider_check(apple: Setup) -> None:
    await check_provider(apple.provider())
    assert len(apple.fake.received) == 2  # only the iOS sample is a device token; both messages went


async def test_secrets_stay_out_of_logs_and_reasons(
    apple: Setup, apns: ApnsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # ``vault serve`` quietens these loggers (an earlier in-process CLI test may have); here they
    # must speak, to show what they would have said is masked.
    for name in ("httpx", "httpcore", "hpack"):
        caplog.set_level(logging.DEBUG, logger=name)
    reasons = []
    assert await apns.send(IPHONE, UPLOAD) == Delivered()
    for status, reason in ((410, "Unregistered"), (429, "TooManyRequests"), (403, "InvalidProviderToken")):
        apple.fake.answers[IPHONE.push_token] = (status, reason, {})
        outcome = await apns.send(IPHONE, UPLOAD)
        assert not isinstance(outcome, Delivered)
        reasons.append(outcome.reason)
    # The fake's own HPACK decoder logs the request headers it received: that is Apple's side.
    ours = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not (record.name == "hpack.hpack" and record.funcName in {"decode", "_decode_literal", "decode_integer"})
    )
    assert "HTTP Request: POST" in ours and "/3/device/[redacted]" in ours  # httpx did log the URL, masked
    assert "b':path'=b'/3/device/[redacted]'" in ours  # and so did hpack, encoding the request
    key_body = apple.key_file.read_text().splitlines()[1]
    provider_token = apple.fake.received[0].headers["authorization"].removeprefix("bearer ")
    for text in [ours, *reasons]:
        for secret in (IPHONE.push_token, key_body, provider_token, provider_token.split(".")[2]):
            assert secret not in text
