"""The ``fcm`` provider against a local fake of Google's OAuth token endpoint and FCM HTTP v1.

The fake checks what Google checks: the RS256 assertion (signature with the service account's
public key, iss, scope, aud, a one-hour lifetime), the Bearer access token it issued, and the
message shape, and answers errors with the bodies FCM documents.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import msgspec
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from push_fakes import Reply, Scope, WallClock, refused_url, request_headers, serving
from vault_plugins.push_fcm import FcmOptions, FcmProvider

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

PROJECT = "megavault-test"
EMAIL = "vault-push@megavault-test.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
PHONE = PushRegistration(device_id="phone", platform="android", push_token="fcm-token-of-the-phone:APA91bH")
UPLOAD = PushMessage(
    category="uploads",
    title="Upload finished",
    body="3 photos",
    created_at=1_700_000_000.0,
    data={"n": 3, "album": "Summer", "done": True, "ids": [1, 2]},
)
SYNC_HINT = PushMessage(
    category="sync", title="", body="", created_at=1_700_000_000.0, data={"type": "sync"}, silent=True
)

Answer = tuple[int, Mapping[str, Any], Mapping[str, str]]


def fcm_error(status: int, google_status: str, message: str, *details: Mapping[str, Any]) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": google_status, "details": list(details)}}


def fcm_code(code: str) -> dict[str, str]:
    return {"@type": FCM_ERROR, "errorCode": code}


# The answers FCM documents (bodies as FCM sends them).
UNREGISTERED = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", fcm_code("UNREGISTERED"))
INVALID_TOKEN = fcm_error(
    400,
    "INVALID_ARGUMENT",
    "The registration token is not a valid FCM registration token",
    fcm_code("INVALID_ARGUMENT"),
    {
        "@type": BAD_REQUEST,
        "fieldViolations": [
            {"field": "message.token", "description": "The registration token is not a valid FCM registration token"}
        ],
    },
)
SENDER_MISMATCH = fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", fcm_code("SENDER_ID_MISMATCH"))
QUOTA = fcm_error(
    429,
    "RESOURCE_EXHAUSTED",
    "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service "
    "'fcm.googleapis.com' for consumer 'project_number:123456789'.",
    fcm_code("QUOTA_EXCEEDED"),
)
UNAVAILABLE = fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", fcm_code("UNAVAILABLE"))
INTERNAL = fcm_error(500, "INTERNAL", "Internal error encountered.", fcm_code("INTERNAL"))
THIRD_PARTY = fcm_error(
    401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", fcm_code("THIRD_PARTY_AUTH_ERROR")
)
BAD_PAYLOAD = fcm_error(
    400,
    "INVALID_ARGUMENT",
    "Invalid value at 'message.android.collapse_key' (TYPE_STRING)",
    fcm_code("INVALID_ARGUMENT"),
    {"@type": BAD_REQUEST, "fieldViolations": [{"field": "message.android.collapse_key", "description": "Invalid"}]},
)
UNAUTHENTICATED = fcm_error(
    401,
    "UNAUTHENTICATED",
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
)


class FakeGoogle:
    """Google's token endpoint (``/token``) and FCM's ``messages:send``, in one ASGI handler."""

    def __init__(self, clock: WallClock, public_key: rsa.RSAPublicKey) -> None:
        self.clock = clock
        self.public_key = public_key
        self.token_uri = ""  # set once the server's port is known
        self.issued: dict[str, float] = {}  # access token -> expiry
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # verified (header, claims)
        self.token_answer: tuple[int, str] | None = None  # a scripted token endpoint failure
        self.token_hangs = False
        self.refuse_every_token = False
        self.sends: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # (path, headers, body)
        self.answers: dict[str, Answer] = {}  # push token -> scripted answer
        self.hanging: set[str] = set()

    def tokens_issued(self) -> int:
        return len(self.assertions)

    def attempts(self, push_token: str) -> int:
        return sum(1 for _, _, body in self.sends if body["message"]["token"] == push_token)

    async def __call__(self, scope: Scope, body: bytes) -> Reply:
        if scope["method"] == "POST" and scope["path"] == "/token":
            return await self.token(scope, body)
        if scope["method"] == "POST" and scope["path"].startswith("/v1/projects/"):
            return await self.send(scope, body)
        return self.json(404, fcm_error(404, "NOT_FOUND", "Not Found"))

    @staticmethod
    def json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Reply:
        return status, {"content-type": "application/json; charset=UTF-8", **(headers or {})}, json.dumps(body).encode()

    def oauth_error(self, status: int, error: str, description: str) -> Reply:
        return self.json(status, {"error": error, "error_description": description})

    async def token(self, scope: Scope, body: bytes) -> Reply:
        if self.token_hangs:
            await trio.sleep_forever()
        if self.token_answer is not None:
            status, text = self.token_answer
            return status, {"content-type": "application/json; charset=utf-8"}, text.encode()
        assert request_headers(scope)["content-type"] == "application/x-www-form-urlencoded"
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.oauth_error(400, "unsupported_grant_type", "Invalid grant_type: ")
        assertion = form["assertion"]
        header = jwt.get_unverified_header(assertion)
        try:
            # Lifetime is checked against the test's clock below, not the real one.
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            return self.oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidAudienceError:
            return self.oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        now = self.clock()
        if (
            header.get("kid") != KEY_ID
            or claims["iss"] != EMAIL
            or claims["scope"] != SCOPE
            or claims["exp"] - claims["iat"] != 3600
            or not claims["iat"] - 60 <= now <= claims["exp"]
        ):
            return self.oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        self.assertions.append((header, claims))
        access_token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self.issued[access_token] = now + 3600
        return self.json(200, {"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"})

    async def send(self, scope: Scope, body: bytes) -> Reply:
        headers = request_headers(scope)
        message = json.loads(body)
        self.sends.append((scope["path"], headers, message))
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.refuse_every_token or self.issued.get(bearer, 0) <= self.clock():
            return self.json(401, UNAUTHENTICATED, {"www-authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if scope["path"] != f"/v1/projects/{PROJECT}/messages:send":
            return self.json(
                403,
                fcm_error(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied on resource."),
            )
        assert headers["content-type"].startswith("application/json")
        inner = message["message"]
        assert set(inner) <= {"token", "notification", "data", "android"}
        for index, value in enumerate(inner.get("data", {}).values()):
            if not isinstance(value, str):  # what FCM answers for a number or boolean data value
                return self.json(
                    400,
                    fcm_error(400, "INVALID_ARGUMENT", f"Invalid value at 'message.data[{index}].value' (TYPE_STRING)"),
                )
        if inner["token"] in self.hanging:
            await trio.sleep_forever()
        if inner["token"] in self.answers:
            status, answer, extra = self.answers[inner["token"]]
            return self.json(status, answer, extra)
        return self.json(200, {"name": f"projects/{PROJECT}/messages/0:{len(self.sends)}%{secrets.token_hex(8)}"})


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def google_key() -> rsa.RSAPrivateKey:
    return rsa_key()


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_account(path: Path, key: rsa.RSAPrivateKey, token_uri: str, **fields: str) -> Path:
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem(key),
        "client_email": EMAIL,
        "client_id": "123456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
        **fields,
    }
    path.write_text(json.dumps(account))
    return path


class Setup:
    def __init__(self, fake: FakeGoogle, url: str, account: Path, tmp_path: Path, clock: WallClock) -> None:
        self.fake, self.url, self.account, self.tmp_path, self.clock = fake, url, account, tmp_path, clock

    def provider(self, **options: Any) -> FcmProvider:
        settings: dict[str, Any] = {"service_account_file": str(self.account), "endpoint": self.url, **options}
        return FcmProvider(msgspec.convert(settings, FcmOptions), clock=self.clock)


@pytest.fixture
async def google(tmp_path: Path, google_key: rsa.RSAPrivateKey) -> AsyncIterator[Setup]:
    clock = WallClock()
    fake = FakeGoogle(clock, google_key.public_key())
    async with serving(fake) as url:
        fake.token_uri = f"{url}/token"
        account = write_account(tmp_path / "service-account.json", google_key, fake.token_uri)
        yield Setup(fake, url, account, tmp_path, clock)


@pytest.fixture
async def fcm(google: Setup) -> AsyncIterator[FcmProvider]:
    provider = google.provider()
    await provider.open(sample_context(google.tmp_path))
    try:
        yield provider
    finally:
        await provider.close()


async def test_a_notification_goes_out_as_the_v1_api_documents(google: Setup, fcm: FcmProvider) -> None:
    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    [(header, claims)] = google.fake.assertions  # one verified assertion: RS256, kid, iss, scope, aud
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    assert claims == {
        "iss": EMAIL,
        "scope": SCOPE,
        "aud": google.fake.token_uri,
        "iat": int(google.clock()),
        "exp": int(google.clock()) + 3600,
    }
    [(path, headers, body)] = google.fake.sends
    assert path == f"/v1/projects/{PROJECT}/messages:send"  # the project named in the key file
    assert headers["authorization"].removeprefix("Bearer ") in google.fake.issued
    assert body == {
        "message": {
            "token": PHONE.push_token,
            "notification": {"title": "Upload finished", "body": "3 photos"},
            # FCM takes only string values: numbers, booleans and lists arrive as their JSON text.
            "data": {"n": "3", "album": "Summer", "done": "true", "ids": "[1,2]", "category": "uploads"},
            "android": {"priority": "normal"},
        }
    }


async def test_a_security_alert_is_sent_at_high_priority(google: Setup, fcm: FcmProvider) -> None:
    alert = PushMessage(category="security", title="New sign-in", body="From Firefox", created_at=0.0)
    assert await fcm.send(PHONE, alert) == Delivered()
    body = google.fake.sends[0][2]["message"]
    assert body["android"] == {"priority": "high"}
    assert body["notification"] == {"title": "New sign-in", "body": "From Firefox"}


async def test_a_sync_hint_is_a_collapsible_data_only_message(google: Setup, fcm: FcmProvider) -> None:
    assert fcm.sync_hints is True
    assert await fcm.send(PHONE, SYNC_HINT) == Delivered()
    body = google.fake.sends[0][2]["message"]
    assert "notification" not in body  # nothing shown: the app wakes and syncs
    assert body["data"] == {"type": "sync", "category": "sync"}
    assert body["android"] == {"priority": "normal", "collapse_key": "sync"}


async def test_the_project_id_option_overrides_the_key_files(google: Setup) -> None:
    provider = google.provider(project_id="another-project")
    await provider.open(sample_context(google.tmp_path))
    try:
        outcome = await provider.send(PHONE, UPLOAD)
    finally:
        await provider.close()
    assert google.fake.sends[0][0] == "/v1/projects/another-project/messages:send"
    # A project the service account may not send for is a configuration fault: the device is kept.
    assert isinstance(outcome, Failed) and "PERMISSION_DENIED" in outcome.reason


async def test_the_access_token_is_reused_until_five_minutes_before_it_expires(google: Setup, fcm: FcmProvider) -> None:
    for _ in range(3):
        assert await fcm.send(PHONE, UPLOAD) == Delivered()
    assert google.fake.tokens_issued() == 1
    google.clock.advance(3600 - 300 - 1)
    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    assert google.fake.tokens_issued() == 1
    first = google.fake.sends[0][1]["authorization"]
    assert google.fake.sends[-1][1]["authorization"] == first
    google.clock.advance(2)  # now within five minutes of expiry: a new token before the send
    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    assert google.fake.tokens_issued() == 2
    assert google.fake.sends[-1][1]["authorization"] != first
    assert google.fake.assertions[1][1]["iat"] == int(google.clock())


async def test_concurrent_sends_fetch_a_single_token(google: Setup, fcm: FcmProvider) -> None:
    outcomes: list[object] = []

    async def one(n: int) -> None:
        outcomes.append(
            await fcm.send(PushRegistration(device_id=f"d{n}", platform="android", push_token=f"t{n}"), UPLOAD)
        )

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(one, n)
    assert outcomes == [Delivered()] * 20
    assert google.fake.tokens_issued() == 1
    assert len({headers["authorization"] for _, headers, _ in google.fake.sends}) == 1


async def test_a_revoked_access_token_is_replaced_and_the_send_retried_once(google: Setup, fcm: FcmProvider) -> None:
    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    google.fake.issued.clear()  # Google revoked it before its time
    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    assert google.fake.tokens_issued() == 2
    assert google.fake.attempts(PHONE.push_token) == 3  # delivered, 401, delivered with the new token


async def test_an_access_token_fcm_keeps_refusing_fails_after_one_retry(google: Setup, fcm: FcmProvider) -> None:
    google.fake.refuse_every_token = True
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, Failed) and "UNAUTHENTICATED" in outcome.reason
    assert google.fake.attempts(PHONE.push_token) == 2
    assert google.fake.tokens_issued() == 2


async def test_a_third_party_auth_error_fails_without_replacing_the_token(google: Setup, fcm: FcmProvider) -> None:
    google.fake.answers[PHONE.push_token] = (401, THIRD_PARTY, {})
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, Failed) and "THIRD_PARTY_AUTH_ERROR" in outcome.reason
    assert google.fake.attempts(PHONE.push_token) == 1
    assert google.fake.tokens_issued() == 1


@pytest.mark.parametrize(
    ("status", "answer", "code"),
    [
        (404, UNREGISTERED, "UNREGISTERED"),
        (400, INVALID_TOKEN, "INVALID_ARGUMENT"),
        (403, SENDER_MISMATCH, "SENDER_ID_MISMATCH"),
    ],
    ids=["unregistered", "invalid-token", "sender-id-mismatch"],
)
async def test_a_token_fcm_no_longer_knows_is_gone(
    google: Setup, fcm: FcmProvider, status: int, answer: dict[str, Any], code: str
) -> None:
    google.fake.answers[PHONE.push_token] = (status, answer, {})
    assert await fcm.send(PHONE, UPLOAD) == RegistrationGone(f"FCM {code} (HTTP {status})")


async def test_an_invalid_argument_about_the_payload_fails_and_keeps_the_device(
    google: Setup, fcm: FcmProvider
) -> None:
    google.fake.answers[PHONE.push_token] = (400, BAD_PAYLOAD, {})
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, Failed)
    assert "INVALID_ARGUMENT" in outcome.reason and "collapse_key" in outcome.reason


def http_date(seconds_from_now: float, clock: WallClock) -> str:
    return format_datetime(datetime.fromtimestamp(clock() + seconds_from_now, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("status", "answer", "retry_after", "delay"),
    [
        (429, QUOTA, "30", 30.0),
        (429, QUOTA, None, None),
        (503, UNAVAILABLE, "date:120", 120.0),
        (500, INTERNAL, None, None),
    ],
    ids=["quota-retry-after", "quota-bare", "unavailable-http-date", "internal"],
)
async def test_throttling_and_outages_retry_later_when_fcm_says(
    google: Setup, fcm: FcmProvider, status: int, answer: dict[str, Any], retry_after: str | None, delay: float | None
) -> None:
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = http_date(120, google.clock) if retry_after.startswith("date:") else retry_after
    google.fake.answers[PHONE.push_token] = (status, answer, headers)
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, RetryLater) and outcome.delay == delay
    assert f"HTTP {status}" in outcome.reason


async def test_a_key_google_does_not_know_fails_at_the_token_endpoint(google: Setup) -> None:
    write_account(google.account, rsa_key(), google.fake.token_uri)  # a key from another service account
    provider = google.provider()
    await provider.open(sample_context(google.tmp_path))
    try:
        outcome = await provider.send(PHONE, UPLOAD)
    finally:
        await provider.close()
    assert outcome == Failed("Google OAuth refused the service account: HTTP 400 invalid_grant Invalid JWT Signature.")
    assert google.fake.sends == []


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, '{"error": "invalid_client", "error_description": "The OAuth client was not found."}', Failed),
        (400, '{"error": "invalid_grant", "error_description": "Invalid grant: account not found"}', Failed),
        (503, "Service Unavailable", RetryLater),
        (500, '{"error": "internal_failure", "error_description": "Backend Error"}', RetryLater),
    ],
    ids=["invalid-client", "account-deleted", "unavailable", "backend-error"],
)
async def test_token_endpoint_failures(google: Setup, fcm: FcmProvider, status: int, body: str, kind: type) -> None:
    google.fake.token_answer = (status, body)
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, kind) and isinstance(outcome, RetryLater | Failed)
    assert f"HTTP {status}" in outcome.reason
    assert google.fake.sends == []


async def test_unreachable_services_retry_later(google: Setup) -> None:
    for_fcm = google.provider(endpoint=refused_url())
    await for_fcm.open(sample_context(google.tmp_path))
    try:
        assert await for_fcm.send(PHONE, UPLOAD) == RetryLater("FCM unreachable (ConnectError)")
    finally:
        await for_fcm.close()
    write_account(google.account, google_key_of(google), refused_url() + "/token")
    for_oauth = google.provider()
    await for_oauth.open(sample_context(google.tmp_path))
    try:
        assert await for_oauth.send(PHONE, UPLOAD) == RetryLater(
            "Google OAuth token endpoint unreachable (ConnectError)"
        )
    finally:
        await for_oauth.close()


def google_key_of(google: Setup) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(json.loads(google.account.read_text())["private_key"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.mark.parametrize("where", ["fcm", "oauth"])
async def test_a_service_that_never_answers_times_out_into_retry_later(
    google: Setup, fcm: FcmProvider, idle_jump_clock: trio.testing.MockClock, where: str
) -> None:
    if where == "fcm":
        google.fake.hanging.add(PHONE.push_token)
    else:
        google.fake.token_hangs = True
    started = trio.current_time()
    outcome = await fcm.send(PHONE, UPLOAD)
    assert isinstance(outcome, RetryLater) and "ReadTimeout" in outcome.reason
    assert trio.current_time() - started >= 10  # the default timeout, passed on the mock clock


async def test_options_are_checked_by_name(google: Setup) -> None:
    with pytest.raises(msgspec.ValidationError, match="service_acount_file"):
        msgspec.convert({"service_acount_file": "x.json"}, FcmOptions)
    with pytest.raises(msgspec.ValidationError, match="timeout"):
        msgspec.convert({"timeout": 0}, FcmOptions)
    with pytest.raises(msgspec.ValidationError, match="endpoint"):
        msgspec.convert({"endpoint": "fcm.googleapis.com"}, FcmOptions)
    assert FcmOptions() == msgspec.convert({}, FcmOptions)
    assert (FcmOptions().endpoint, FcmOptions().timeout) == ("https://fcm.googleapis.com", 10.0)


async def test_an_unusable_service_account_is_refused_at_open(google: Setup, tmp_path: Path) -> None:
    context = sample_context(tmp_path)
    with pytest.raises(ValueError, match=r"push\.fcm\.service_account_file is not set"):
        await FcmProvider(FcmOptions()).open(context)
    with pytest.raises(ValueError, match="cannot be read"):
        await google.provider(service_account_file=str(tmp_path / "missing.json")).open(context)
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a Google service-account key file"):
        await google.provider(service_account_file=str(tmp_path / "garbage.json")).open(context)
    write_account(tmp_path / "user.json", google_key_of(google), google.fake.token_uri, type="authorized_user")
    with pytest.raises(ValueError, match="not a service-account key"):
        await google.provider(service_account_file=str(tmp_path / "user.json")).open(context)
    write_account(tmp_path / "no-project.json", google_key_of(google), google.fake.token_uri, project_id="")
    with pytest.raises(ValueError, match=r"push\.fcm\.project_id is not set"):
        await google.provider(service_account_file=str(tmp_path / "no-project.json")).open(context)
    account = json.loads(google.account.read_text())
    account["private_key"] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    (tmp_path / "bad-key.json").write_text(json.dumps(account))
    with pytest.raises(ValueError, match="not a PEM private key") as refused:
        await google.provider(service_account_file=str(tmp_path / "bad-key.json")).open(context)
    assert "bm90IGEga2V5" not in str(refused.value)


async def test_register_time_check_refuses_what_is_no_fcm_token(fcm: FcmProvider) -> None:
    assert await fcm.check_registration(PHONE) is None
    web = PushRegistration(device_id="w", platform="web", push_token='{"endpoint": "https://push.example/x"}')
    assert await fcm.check_registration(web) == "not an FCM registration token"
    assert await fcm.check_registration(PushRegistration(device_id="e", platform="android", push_token="")) is not None


async def test_the_provider_passes_the_provider_check(google: Setup) -> None:
    await check_provider(google.provider())
    assert google.fake.tokens_issued() == 1 and len(google.fake.sends) == 6


async def test_secrets_stay_out_of_logs_and_reasons(
    google: Setup, fcm: FcmProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # ``vault serve`` quietens these loggers (an earlier in-process CLI test may have); here they
    # must speak, to show what they would have said is masked.
    for name in ("httpx", "httpcore", "hpack"):
        caplog.set_level(logging.DEBUG, logger=name)
    echo = fcm_error(
        400, "INVALID_ARGUMENT", f"Invalid value at 'message.data[0].value' (TYPE_STRING), {PHONE.push_token}"
    )
    reasons: list[str] = []

    async def refused() -> None:
        outcome = await fcm.send(PHONE, UPLOAD)
        assert not isinstance(outcome, Delivered)
        reasons.append(outcome.reason)

    assert await fcm.send(PHONE, UPLOAD) == Delivered()
    google.fake.issued.clear()  # a 401 and a second token
    answers: list[Answer] = [(400, echo, {}), (404, UNREGISTERED, {}), (429, QUOTA, {}), (401, THIRD_PARTY, {})]
    for answer in answers:
        google.fake.answers[PHONE.push_token] = answer
        await refused()
    google.fake.token_answer = (400, '{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}')
    google.clock.advance(7200)
    await refused()
    assert "Invalid value at 'message.data[0].value'" in reasons[0]  # the useful part stays
    assert "vault.push.fcm" in caplog.text and "HTTP Request: POST" in caplog.text  # logging was on
    account = json.loads(google.account.read_text())
    key_body = account["private_key"].splitlines()[5]
    secret_values = [PHONE.push_token, key_body, *google.fake.issued]
    for text in [caplog.text, *reasons]:
        for secret in secret_values:
            assert secret not in text
        assert "ya29." not in text and "eyJ" not in text  # no access token, no assertion JWT
