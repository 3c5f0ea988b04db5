"""The ``fcm`` push provider: Firebase Cloud Messaging's HTTP v1 API, for Android apps.

FCM takes one message per ``POST /v1/projects/{project}/messages:send``, authorised by an OAuth2
access token that the node gets for itself from Google's token endpoint with the JWT bearer grant
(RFC 7523): a JWT signed with the service account's RSA key is traded for a token valid about an
hour. The token is kept until five minutes before it expires and fetched by one send at a time.

References: https://firebase.google.com/docs/cloud-messaging/send/v1-api,
https://firebase.google.com/docs/cloud-messaging/manage-tokens and the v1 ``ErrorCode`` table.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import jwt
import msgspec
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vault.plugin_api import (
    Delivered,
    Failed,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
    RegistrationGone,
    RetryLater,
    retry_after,
)

log = logging.getLogger("vault.push.fcm")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600  # Google refuses assertions meant to live longer than an hour
REFRESH_MARGIN = 300.0  # a token this close to expiry is replaced, so none expires in flight
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# FCM registration tokens are opaque, but URL-safe: this refuses a Web Push subscription's JSON or
# an empty string at register time without guessing at the token's undocumented structure.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_:.\-]{1,4096}")


class FcmOptions(ProviderOptions, kw_only=True):
    """The ``[push.fcm]`` table."""

    # The service-account key JSON downloaded from the Firebase console; empty = not configured.
    service_account_file: str = ""
    # Defaults to the key file's own ``project_id``.
    project_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.:_-]*$", max_length=100)] = ""
    endpoint: Annotated[str, msgspec.Meta(pattern=r"^https?://[^/?#]+/?$")] = "https://fcm.googleapis.com"
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class ServiceAccount(msgspec.Struct, kw_only=True):
    """The fields of a Google service-account key file that the JWT bearer grant needs."""

    type: str = "service_account"
    project_id: str = ""
    private_key_id: str
    private_key: str
    client_email: str
    token_uri: str = DEFAULT_TOKEN_URI


class _TokenAnswer(msgspec.Struct):
    access_token: str
    expires_in: int = ASSERTION_LIFETIME
    token_type: str = "Bearer"


class _OAuthError(msgspec.Struct):
    error: str = ""
    error_description: str = ""


class _FieldViolation(msgspec.Struct):
    field: str = ""
    description: str = ""


class _ErrorDetail(
    msgspec.Struct, rename={"type": "@type", "error_code": "errorCode", "field_violations": "fieldViolations"}
):
    """One of ``error.details``: an FcmError (``errorCode``) or a google.rpc.BadRequest (violations)."""

    type: str = ""
    error_code: str = ""
    field_violations: list[_FieldViolation] = msgspec.field(default_factory=list)


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[_ErrorDetail] = msgspec.field(default_factory=list)


class _ErrorAnswer(msgspec.Struct):
    error: _Error = msgspec.field(default_factory=_Error)


class _NoToken(Exception):
    """No access token could be had; ``outcome`` is what the send answers instead."""

    def __init__(self, outcome: RetryLater | Failed) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def load_service_account(raw: bytes, where: str) -> tuple[ServiceAccount, rsa.RSAPrivateKey]:
    """The key file's fields and its RSA key; a ValueError naming ``where`` (never the key) if unusable."""
    try:
        account = msgspec.json.decode(raw, type=ServiceAccount)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError; neither quotes values
        raise ValueError(f"{where}: not a Google service-account key file ({exc})") from None
    if account.type != "service_account":
        raise ValueError(f"{where}: a {account.type!r} credential, not a service-account key")
    try:
        key = serialization.load_pem_private_key(account.private_key.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: private_key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{where}: private_key is not an RSA key (Google signs with RS256)")
    return account, key


def fcm_data(message: PushMessage) -> dict[str, str]:
    """The message's data as FCM wants it: every value a string (FCM refuses others), plus category."""
    data = {
        key: value if isinstance(value, str) else msgspec.json.encode(value).decode()
        for key, value in message.data.items()
    }
    data["category"] = message.category
    return data


def fcm_body(registration: PushRegistration, message: PushMessage) -> dict[str, Any]:
    """The ``messages:send`` body: a notification unless silent; security alerts wake the device now."""
    android: dict[str, str] = {"priority": "high" if message.category == "security" else "normal"}
    body: dict[str, Any] = {"token": registration.push_token, "data": fcm_data(message), "android": android}
    if message.silent:
        # One pending sync hint per device is enough: newer ones replace older ones in FCM's queue.
        android["collapse_key"] = "sync"
    else:
        body["notification"] = {"title": message.title, "body": message.body}
    return {"message": body}


def _concerns_token(error: _Error) -> bool:
    """Whether an INVALID_ARGUMENT is about the registration token rather than the payload."""
    for detail in error.details:
        if any(violation.field == "message.token" for violation in detail.field_violations):
            return True
    return "registration token" in error.message.lower()


def _scrub(text: str, *secrets: str) -> str:
    """``text`` short enough for one log line, with secrets it might echo masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:200]


def read_error(response: httpx.Response) -> tuple[str, _Error]:
    """An FCM error answer's code (the FcmError ``errorCode``, else the Google ``status``) and body."""
    try:
        error = msgspec.json.decode(response.content, type=_ErrorAnswer).error
    except msgspec.DecodeError:
        error = _Error()
    fcm_codes = [detail.error_code for detail in error.details if detail.type == _FCM_ERROR and detail.error_code]
    return (fcm_codes[0] if fcm_codes else error.status or f"HTTP {response.status_code}"), error


def error_outcome(response: httpx.Response, push_token: str, now: float) -> Outcome:
    """What an FCM error answer means for this delivery (see FCM's v1 ``ErrorCode`` table)."""
    status = response.status_code
    code, error = read_error(response)
    reason = f"FCM {code} (HTTP {status})"
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        # The app was uninstalled or the token expired / belongs to another sender: it never works again.
        return RegistrationGone(reason)
    if code == "INVALID_ARGUMENT":
        if _concerns_token(error):
            return RegistrationGone(reason)
        return Failed(f"{reason}: {_scrub(error.message, push_token)}")
    if code in ("QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL") or status == 429 or status >= 500:
        return RetryLater(reason, retry_after(response.headers.get("retry-after"), now))
    # THIRD_PARTY_AUTH_ERROR (the app's APNs / Web Push credentials in Firebase), PERMISSION_DENIED
    # (the service account may not send for this project), a NOT_FOUND that is not UNREGISTERED:
    # configuration faults that unregistering the device would not mend.
    detail = _scrub(error.message, push_token)
    return Failed(f"{reason}: {detail}" if detail else reason)


class FcmProvider(PushProvider):
    """Sends through FCM HTTP v1 with a cached OAuth2 access token; safe for concurrent sends."""

    Options = FcmOptions
    sync_hints = True

    def __init__(self, options: FcmOptions, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(options)
        self.options: FcmOptions = options
        # Wall-clock seconds: JWT iat/exp and token lifetimes are wall-clock, unlike trio's clock.
        self.clock = clock
        self._client: httpx.AsyncClient | None = None
        self._account: ServiceAccount | None = None
        self._key: rsa.RSAPrivateKey | None = None
        self._send_url = ""
        self._token_lock = trio.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    async def open(self, context: ProviderContext) -> None:
        path = self.options.service_account_file
        if not path:
            raise ValueError("push.fcm.service_account_file is not set: the Firebase service-account key file")
        where = f"push.fcm.service_account_file ({path})"
        try:
            raw = await trio.Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{where}: cannot be read ({exc.strerror})") from None
        self._account, self._key = load_service_account(raw, where)
        project = self.options.project_id or self._account.project_id
        if not project:
            raise ValueError(f"push.fcm.project_id is not set and {where} names no project_id")
        self._send_url = f"{self.options.endpoint.rstrip('/')}/v1/projects/{quote(project, safe='')}/messages:send"
        self._client = httpx.AsyncClient(timeout=self.options.timeout, follow_redirects=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._token = None

    async def check_registration(self, registration: PushRegistration) -> str | None:
        if not _TOKEN_RE.fullmatch(registration.push_token):
            return "not an FCM registration token"
        return None

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        assert self._client is not None, "send before open"
        body = msgspec.json.encode(fcm_body(registration, message))
        for attempt in (1, 2):
            try:
                token = await self._access_token()
            except _NoToken as exc:
                return exc.outcome
            try:
                response = await self._client.post(
                    self._send_url,
                    content=body,
                    headers={"authorization": f"Bearer {token}", "content-type": "application/json; charset=UTF-8"},
                )
            except httpx.HTTPError as exc:
                return RetryLater(f"FCM unreachable ({type(exc).__name__})")
            if response.is_success:
                return Delivered()
            if response.status_code == 401 and attempt == 1 and read_error(response)[0] != "THIRD_PARTY_AUTH_ERROR":
                # Our access token was revoked or expired early: forget it and try once with a new one.
                # (THIRD_PARTY_AUTH_ERROR is about the app's APNs / Web Push credentials, not ours.)
                self._forget(token)
                continue
            return error_outcome(response, registration.push_token, self.clock())
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _forget(self, token: str) -> None:
        # Only the token that failed: a concurrent send may already have fetched its successor.
        if self._token == token:
            self._token = None

    async def _access_token(self) -> str:
        """The cached access token, or a new one (one fetch at a time, however many sends wait)."""
        async with self._token_lock:
            now = self.clock()
            if self._token is not None and now < self._token_expires - REFRESH_MARGIN:
                return self._token
            token, lifetime = await self._fetch_token(now)
            self._token, self._token_expires = token, now + lifetime
            log.debug("FCM access token fetched, valid for %d s", lifetime)
            return token

    def _assertion(self, now: float) -> str:
        assert self._account is not None and self._key is not None
        issued = int(now)
        claims = {
            "iss": self._account.client_email,
            "scope": SCOPE,
            "aud": self._account.token_uri,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._account.private_key_id})

    async def _fetch_token(self, now: float) -> tuple[str, int]:
        assert self._client is not None and self._account is not None
        form = {"grant_type": GRANT_TYPE, "assertion": self._assertion(now)}
        try:
            response = await self._client.post(self._account.token_uri, data=form)
        except httpx.HTTPError as exc:
            raise _NoToken(RetryLater(f"Google OAuth token endpoint unreachable ({type(exc).__name__})")) from None
        status = response.status_code
        if status == 429 or status >= 500:
            delay = retry_after(response.headers.get("retry-after"), now)
            raise _NoToken(RetryLater(f"Google OAuth token endpoint answered HTTP {status}", delay))
        if not response.is_success:
            # invalid_grant / invalid_client: the key was revoked, the account deleted, the clock far off.
            try:
                error = msgspec.json.decode(response.content, type=_OAuthError)
            except msgspec.DecodeError:
                error = _OAuthError()
            what = " ".join(part for part in (error.error, _scrub(error.error_description, form["assertion"])) if part)
            raise _NoToken(Failed(f"Google OAuth refused the service account: HTTP {status} {what}".rstrip()))
        try:
            answer = msgspec.json.decode(response.content, type=_TokenAnswer)
        except msgspec.DecodeError:
            raise _NoToken(RetryLater("Google OAuth token endpoint sent no token")) from None
        return answer.access_token, answer.expires_in
