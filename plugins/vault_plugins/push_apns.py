"""The ``apns`` push provider: Apple Push Notification service over HTTP/2 with token auth.

APNs speaks only HTTP/2 and is authorised by a provider token: a JWT signed ES256 with the team's
``.p8`` key. Apple refuses a token older than an hour (``ExpiredProviderToken``) and one renewed
more often than every 20 minutes (``TooManyProviderTokenUpdates``), so one token is shared by all
sends and renewed after 50 minutes, never sooner than 20 minutes after the last renewal.

References: https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns,
.../establishing-a-token-based-connection-to-apns and .../handling-notification-responses-from-apns.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
import jwt
import msgspec
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

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

log = logging.getLogger("vault.push.apns")

ENDPOINTS = {"production": "https://api.push.apple.com", "sandbox": "https://api.sandbox.push.apple.com"}
TOKEN_RENEW_AFTER = 50 * 60.0  # well inside Apple's 60-minute limit
TOKEN_MIN_AGE = 20 * 60.0  # Apple's floor between renewals (TooManyProviderTokenUpdates)
ALERT_LIFETIME = 24 * 3600  # APNs keeps an undelivered alert this long after it was made
SYNC_HINT_LIFETIME = 3600  # a stale "changes available" hint is worth nothing
DEVICE_TOKEN_RE = re.compile(r"[0-9A-Fa-f]{64,200}")
# Answers meaning this device token will never work for this app again.
_GONE = {"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"}
_APPLE_ID = Annotated[str, msgspec.Meta(pattern=r"^([A-Z0-9]{10})?$")]  # key and team ids: 10 characters


class ApnsOptions(ProviderOptions, kw_only=True):
    """The ``[push.apns]`` table."""

    key_file: str = ""  # the AuthKey_XXXXXXXXXX.p8 from the Apple developer account; empty = not configured
    key_id: _APPLE_ID = ""
    team_id: _APPLE_ID = ""
    topic: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.\-]*$", max_length=255)] = ""  # the app's bundle id
    environment: Literal["production", "sandbox"] = "production"
    # Overrides the environment's host (tests); scheme, host and port only.
    endpoint: Annotated[str, msgspec.Meta(pattern=r"^(https://[^/?#]+/?)?$")] = ""
    ca_file: str = ""  # an extra CA to trust (tests), besides the usual ones
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


class _ApnsError(msgspec.Struct):
    reason: str = ""


class RedactDeviceTokens(logging.Filter):
    """Masks device tokens in records of the HTTP libraries, which log request URLs and headers.

    httpx logs every request URL at INFO (hpack logs header fields at DEBUG), and an APNs URL ends
    in the device token, which must not reach the node's log.
    """

    _PATTERN = re.compile(r"(/3/device/)[0-9A-Fa-f]+")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self._PATTERN.sub(r"\1[redacted]", text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_LOGGERS_WITH_URLS = ("httpx", "hpack.hpack")


def load_key(raw: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    """The ES256 key of a ``.p8`` file; a ValueError naming ``where`` (never the key) if unusable."""
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: not a PEM private key (an APNs .p8 auth key)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{where}: not a P-256 EC key (APNs auth keys sign ES256)")
    return key


def apns_request(message: PushMessage, topic: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers (less authorization) and JSON body: an alert, or a background push for a silent hint."""
    vault = {**message.data, "category": message.category}
    if message.silent:
        # Background pushes must have priority 5 (APNs refuses 10) and no alert, sound or badge.
        headers = {
            "apns-push-type": "background",
            "apns-priority": "5",
            "apns-collapse-id": "sync",
            "apns-expiration": str(int(message.created_at) + SYNC_HINT_LIFETIME),
        }
        return {"apns-topic": topic, **headers}, {"aps": {"content-available": 1}, "vault": vault}
    headers = {
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(int(message.created_at) + ALERT_LIFETIME),
    }
    aps = {"alert": {"title": message.title, "body": message.body}, "sound": "default"}
    return {"apns-topic": topic, **headers}, {"aps": aps, "vault": vault}


class ProviderToken:
    """The shared provider JWT: made on first use, renewed after 50 min, never within 20 min."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, clock: Callable[[], float]):
        self._key, self._key_id, self._team_id, self._clock = key, key_id, team_id, clock
        self.value = ""
        self.issued_at = 0.0

    def current(self) -> str:
        if not self.value or self._clock() - self.issued_at >= TOKEN_RENEW_AFTER:
            self._renew()
        return self.value

    def refused(self, token: str) -> float | None:
        """APNs called ``token`` expired: renew if allowed; else the seconds until renewing is.

        A send that used an older token just retries with the current one, so a burst of
        ExpiredProviderToken answers renews once.
        """
        if token != self.value:
            return None
        wait = self.issued_at + TOKEN_MIN_AGE - self._clock()
        if wait > 0:
            return wait
        self._renew()
        return None

    def _renew(self) -> None:
        now = self._clock()
        # pyjwt adds "typ": "JWT" unless told not to; Apple documents the header as alg and kid.
        headers = {"kid": self._key_id, "typ": None}
        self.value = jwt.encode({"iss": self._team_id, "iat": int(now)}, self._key, algorithm="ES256", headers=headers)
        self.issued_at = now
        log.debug("APNs provider token renewed")


class ApnsProvider(PushProvider):
    """Sends through APNs over one HTTP/2 connection (multiplexed); safe for concurrent sends."""

    Options = ApnsOptions
    sync_hints = True

    def __init__(self, options: ApnsOptions, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(options)
        self.options: ApnsOptions = options
        self.clock = clock  # wall-clock seconds, for the token's iat and age
        self._client: httpx.AsyncClient | None = None
        self._token: ProviderToken | None = None
        self._filter = RedactDeviceTokens()
        self._base = ""

    async def open(self, context: ProviderContext) -> None:
        opts = self.options
        if not opts.key_file:
            raise ValueError("push.apns.key_file is not set: the APNs auth key (.p8)")
        for name in ("key_id", "team_id", "topic"):
            if not getattr(opts, name):
                raise ValueError(f"push.apns.{name} is not set (required with push.apns.key_file)")
        where = f"push.apns.key_file ({opts.key_file})"
        try:
            raw = await trio.Path(opts.key_file).read_bytes()
        except OSError as exc:
            raise ValueError(f"{where}: cannot be read ({exc.strerror})") from None
        self._token = ProviderToken(load_key(raw, where), opts.key_id, opts.team_id, self.clock)
        tls = await trio.to_thread.run_sync(self._tls_context)
        self._base = (opts.endpoint or ENDPOINTS[opts.environment]).rstrip("/")
        for name in _LOGGERS_WITH_URLS:
            logging.getLogger(name).addFilter(self._filter)
        # http1=False: offer only h2 in ALPN and speak HTTP/2 whatever the server picks.
        self._client = httpx.AsyncClient(
            http1=False, http2=True, verify=tls, timeout=opts.timeout, follow_redirects=False
        )

    def _tls_context(self) -> ssl.SSLContext:
        context = httpx.create_ssl_context()
        if self.options.ca_file:
            try:
                context.load_verify_locations(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"push.apns.ca_file ({self.options.ca_file}): not a CA file ({exc})") from None
        return context

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for name in _LOGGERS_WITH_URLS:
            logging.getLogger(name).removeFilter(self._filter)

    async def check_registration(self, registration: PushRegistration) -> str | None:
        if not DEVICE_TOKEN_RE.fullmatch(registration.push_token):
            return "not an APNs device token (64 to 200 hexadecimal digits)"
        return None

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        assert self._client is not None and self._token is not None, "send before open"
        if not DEVICE_TOKEN_RE.fullmatch(registration.push_token):
            # Never put anything but hex in the URL path; register-time checks make this rare.
            return Failed("not an APNs device token")
        headers, body = apns_request(message, self.options.topic)
        content = msgspec.json.encode(body)
        url = f"{self._base}/3/device/{registration.push_token}"
        for attempt in (1, 2):
            token = self._token.current()
            try:
                response = await self._client.post(
                    url, content=content, headers={**headers, "authorization": f"bearer {token}"}
                )
            except httpx.HTTPError as exc:
                return RetryLater(f"APNs unreachable ({type(exc).__name__})")
            if response.status_code == 200:
                return Delivered()
            reason = self._reason(response)
            if response.status_code == 403 and reason == "ExpiredProviderToken":
                wait = self._token.refused(token)
                if wait is None and attempt == 1:
                    continue  # renewed (here or by a concurrent send): once more with the new token
                # Too new to renew (Apple's clock is ahead, or it just was): wait until renewing is allowed.
                return RetryLater("APNs ExpiredProviderToken (HTTP 403)", wait)
            return self._outcome(response, reason)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    @staticmethod
    def _reason(response: httpx.Response) -> str:
        try:
            return msgspec.json.decode(response.content, type=_ApnsError).reason
        except msgspec.DecodeError:
            return ""

    def _outcome(self, response: httpx.Response, reason: str) -> Outcome:
        status = response.status_code
        what = f"APNs {reason or 'error'} (HTTP {status})"
        if status == 410 or (status == 400 and reason in _GONE):
            return RegistrationGone(what)
        if status == 429 or status >= 500:  # TooManyRequests (this device), InternalServerError, ServiceUnavailable
            return RetryLater(what, retry_after(response.headers.get("retry-after"), self.clock()))
        # InvalidProviderToken, BadTopic, TopicDisallowed, PayloadTooLarge, BadPath, …: our fault, not
        # the device's; retrying the same request would get the same answer.
        return Failed(what)
