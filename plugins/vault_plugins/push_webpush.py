"""The ``webpush`` push provider: Web Push (RFC 8030) to browsers and UnifiedPush distributors.

A device registers the JSON of a ``PushSubscription`` made against the node's VAPID public key.
Each message is a small JSON document, encrypted for that subscription alone (RFC 8291,
aes128gcm, one record) and POSTed to its endpoint with a VAPID authorization (RFC 8292), so
the push service carries it without being able to read it. The endpoint is a URL a stranger
chose: ``webpush_endpoints`` holds the rules that keep the node from posting into its own network.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import http_ece
import httpx
import msgspec
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

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
    status_outcome,
)
from vault_plugins.webpush_endpoints import EndpointRefused, GuardedTransport, plain_http_refusal, url_refusal

# RFC 8291 section 4: one aes128gcm record in at most 4096 bytes of body. The header takes 86
# (16 salt + 4 record size + 1 key-id length + the 65-byte sender key), the record's padding
# delimiter 1 and its AEAD tag 16, which leaves 3993 bytes of plaintext (http_ece frames it so).
MAX_PLAINTEXT = 3993
# Longest a push service may hold a message (RFC 8030 leaves it to the service; 4 weeks is
# what the big ones keep at most).
MAX_TTL = 28 * 86400
# A VAPID JWT lives 12 hours (RFC 8292 allows at most 24 from the request).
JWT_LIFETIME = 12 * 3600
# What is read of an answer at most: enough for an error document, never a body a hostile
# endpoint streams at the node.
MAX_ANSWER = 4096
# The collapse key of sync hints (RFC 8030 section 5.4): a newer one replaces an undelivered one.
SYNC_TOPIC = "sync"

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class WebPushOptions(ProviderOptions, kw_only=True):
    """The ``[push.webpush]`` table."""

    # The VAPID ``sub`` claim: how a push service operator reaches the node's operator.
    subject: Annotated[str, msgspec.Meta(pattern=r"^(mailto:\S+@\S+|https://\S+)$")] = "mailto:admin@localhost"
    # Seconds a push service keeps a message for a device that is offline (the TTL header).
    ttl: Annotated[int, msgspec.Meta(ge=0, le=MAX_TTL)] = 86400
    # Accept http endpoints and private/loopback addresses: LAN-only UnifiedPush, and tests.
    allow_private_endpoints: bool = False
    # Seconds one delivery may take in all: resolving, connecting, sending and the answer.
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # Plaintext bytes of one message at most; longer messages lose ``data``, then body text.
    max_payload: Annotated[int, msgspec.Meta(ge=256, le=MAX_PLAINTEXT)] = MAX_PLAINTEXT


@dataclass(frozen=True)
class Subscription:
    """A parsed ``PushSubscription``: where to post, and the keys to encrypt for."""

    endpoint: httpx.URL
    p256dh: bytes
    auth: bytes


class _SubscriptionKeys(msgspec.Struct):
    p256dh: str
    auth: str


class _SubscriptionJson(msgspec.Struct):
    # Browsers add fields (expirationTime); they are not needed, so they are not refused.
    endpoint: str
    keys: _SubscriptionKeys


def _b64url(text: str) -> bytes | None:
    """Base64url with or without padding (browsers send it bare, some libraries padded)."""
    bare = text.rstrip("=")
    if not _BASE64URL.match(bare):
        return None
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        return None


def parse_subscription(token: str) -> Subscription | str:
    """The subscription in a push token, or why it is not one (a reason naming no key bytes)."""
    try:
        raw = msgspec.json.decode(token, type=_SubscriptionJson)
    except msgspec.DecodeError as exc:
        return f"the push token is not a Web Push subscription (endpoint, keys.p256dh, keys.auth): {exc}"
    try:
        endpoint = httpx.URL(raw.endpoint)
    except httpx.InvalidURL:
        return "the subscription endpoint is not a valid URL"
    p256dh = _b64url(raw.keys.p256dh)
    if p256dh is None or len(p256dh) != 65 or p256dh[0] != 4:
        return "keys.p256dh must be a base64url uncompressed P-256 point (65 bytes)"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        return "keys.p256dh is not a point on P-256"
    auth = _b64url(raw.keys.auth)
    if auth is None or len(auth) != 16:
        return "keys.auth must be a base64url 16-byte secret"
    return Subscription(endpoint, p256dh, auth)


def _iso(created_at: float) -> str:
    return datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encoded(document: dict[str, Any]) -> bytes:
    return msgspec.json.encode(document)


def _fit_text(document: dict[str, Any], field: str, limit: int) -> bytes | None:
    """``document`` with ``field`` cut (at a character, marked with an ellipsis) to fit ``limit``.

    The encoded size grows with the kept prefix (escapes and UTF-8 widths only add), so the
    longest prefix that fits is found by bisection.
    """
    text: str = document[field]
    low, high = 0, len(text)  # the prefix of ``low`` characters is known to fit once checked
    document[field] = ""
    if len(_encoded(document)) > limit:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        document[field] = text[:middle] + "…"
        if len(_encoded(document)) <= limit:
            low = middle
        else:
            high = middle - 1
    document[field] = text[:low] + "…" if low else ""
    encoded = _encoded(document)
    return encoded if len(encoded) <= limit else None


def encode_payload(message: PushMessage, limit: int) -> bytes | None:
    """The message as compact JSON of at most ``limit`` bytes, or ``None`` if even its bare
    category and time do not fit.

    Too long a message loses its ``data`` first (an app can fetch details on its own), then
    the end of its body, then the end of its title: what a person reads survives longest.
    """
    document: dict[str, Any] = {
        "category": message.category,
        "title": message.title,
        "body": message.body,
        "data": message.data,
        "createdAt": _iso(message.created_at),
        "silent": message.silent,
    }
    encoded = _encoded(document)
    if len(encoded) <= limit:
        return encoded
    document["data"] = {}  # kept as an empty object, so a service worker's payload.data.x reads undefined
    encoded = _encoded(document)
    if len(encoded) <= limit:
        return encoded
    fitted = _fit_text(document, "body", limit)
    if fitted is not None:
        return fitted
    return _fit_text(document, "title", limit)


def encrypt(plaintext: bytes, subscription: Subscription) -> bytes:
    """RFC 8291: aes128gcm for this subscription, with a fresh ephemeral key and salt each time."""
    body = http_ece.encrypt(
        plaintext,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=subscription.p256dh,
        auth_secret=subscription.auth,
        version="aes128gcm",
    )
    return bytes(body)


def origin(url: httpx.URL) -> str:
    """``scheme://host[:port]``: the VAPID audience (the port only when it is not the default)."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def vapid_authorization(key: ec.EllipticCurvePrivateKey, public_key: str, audience: str, subject: str) -> str:
    """The RFC 8292 ``Authorization`` header value: ``vapid t=<ES256 JWT>, k=<public key>``.

    py_vapid's ``jwt.sign`` makes the JWT; its ``Vapid.sign`` is not used because its checks
    refuse valid claims (an IPv6 audience, an https ``sub`` with a path).
    """
    claims = {"aud": audience, "exp": int(time.time()) + JWT_LIFETIME, "sub": subject}
    token = vapid_jwt.sign(claims, key)
    return f"vapid t={token}, k={public_key}"


def urgency(message: PushMessage) -> str:
    """RFC 8030 section 5.3: a phone on battery saver delivers ``low`` whenever it wakes anyway."""
    if message.category == "security":
        return "high"
    return "low" if message.silent else "normal"


# Set while this provider's request is in flight, so the httpx request log line of that request
# (INFO, with the full URL, whose path is the subscription's secret) is redacted to the origin.
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("webpush_sending", default=False)


class _RedactEndpoints(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _sending.get() and isinstance(record.args, tuple):
            record.args = tuple(f"{origin(a)}/…" if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_REDACT = _RedactEndpoints()


class WebPushProvider(PushProvider):
    """Sends each message encrypted to its subscription's endpoint; one HTTP client for all."""

    Options: ClassVar[type[ProviderOptions]] = WebPushOptions
    sync_hints: ClassVar[bool] = True

    def __init__(self, options: ProviderOptions) -> None:
        if not isinstance(options, WebPushOptions):
            raise TypeError(f"WebPushProvider takes WebPushOptions, not {type(options).__name__}")
        super().__init__(options)
        self.settings = options
        self._client: httpx.AsyncClient | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._public_key = ""

    async def open(self, context: ProviderContext) -> None:
        self._key = context.vapid.private_key
        self._public_key = context.vapid.public_key
        logging.getLogger("httpx").addFilter(_REDACT)  # idempotent: one filter for every instance
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allow_private=self.settings.allow_private_endpoints),
            follow_redirects=False,
            timeout=self.settings.timeout,
            trust_env=False,  # a proxy from the environment would bypass the address rules
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check_registration(self, registration: PushRegistration) -> str | None:
        subscription = parse_subscription(registration.push_token)
        if isinstance(subscription, str):
            return subscription
        return await self._refusal(subscription.endpoint)

    async def _refusal(self, endpoint: httpx.URL) -> str | None:
        allow_private = self.settings.allow_private_endpoints
        refusal = url_refusal(endpoint, allow_private=allow_private)
        if refusal is None and allow_private:
            refusal = await plain_http_refusal(endpoint)
        return refusal

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        if self._client is None or self._key is None:
            raise RuntimeError("WebPushProvider.send before open")
        subscription = parse_subscription(registration.push_token)
        if isinstance(subscription, str):
            return Failed(subscription)
        # Checked again: the registration may be older than the rules or the options.
        refusal = await self._refusal(subscription.endpoint)
        if refusal is not None:
            return Failed(refusal)
        try:
            plaintext = encode_payload(message, self.settings.max_payload)
        except (ValueError, OverflowError, TypeError) as exc:  # a created_at or data value JSON cannot hold
            return Failed(f"the message cannot be encoded ({type(exc).__name__})")
        if plaintext is None:
            return Failed(f"the message does not fit in max_payload ({self.settings.max_payload} bytes)")
        headers = {
            "TTL": str(self.settings.ttl),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": urgency(message),
            "Authorization": vapid_authorization(
                self._key, self._public_key, origin(subscription.endpoint), self.settings.subject
            ),
        }
        if message.silent and message.category == "sync":
            headers["Topic"] = SYNC_TOPIC
        return await self._post(self._client, subscription.endpoint, headers, encrypt(plaintext, subscription))

    async def _post(self, client: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str], body: bytes) -> Outcome:
        """POST once, within ``timeout`` in all; every answer and network failure is an outcome."""
        reset = _sending.set(True)
        try:
            with trio.move_on_after(self.settings.timeout):
                async with client.stream("POST", url, headers=headers, content=body) as response:
                    await _drain(response)
                    return _outcome(response.status_code, response.headers.get("retry-after"), time.time())
            return RetryLater("the push service did not answer in time")
        except EndpointRefused as exc:
            return Failed(exc.reason)
        except httpx.TimeoutException:
            return RetryLater("the push service did not answer in time")
        except httpx.ConnectError as exc:  # refused, unresolvable: the message is the OS's, no URL in it
            return RetryLater(f"the push service is unreachable: {exc}")
        except httpx.TransportError as exc:  # reset, broken answer: the service may be back
            return RetryLater(f"the push service connection failed ({type(exc).__name__})")
        finally:
            _sending.reset(reset)


async def _drain(response: httpx.Response) -> None:
    """Read (and drop) at most ``MAX_ANSWER`` bytes, undecoded, so a short answer frees the
    connection for reuse and a long or compressed one costs nothing."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= MAX_ANSWER:
            break


def _outcome(status: int, retry_after_value: str | None, now: float) -> Outcome:
    """What a push service's status means (RFC 8030 section 6 and the services' documentation)."""
    if 200 <= status < 300:
        return Delivered()
    shared = status_outcome(status, retry_after_value, now)
    if isinstance(shared, RegistrationGone):
        return RegistrationGone(f"HTTP {status}: the subscription expired or was unsubscribed")
    if shared is not None:
        return shared
    if 300 <= status < 400:
        return Failed(f"HTTP {status}: the push service answered a redirect, which is not followed")
    if status == 413:
        return Failed("HTTP 413: the push service refused the payload as too large")
    if status in (401, 403):
        return Failed(f"HTTP {status}: the push service refused the VAPID authorization")
    if status == 400:
        return Failed("HTTP 400: the push service refused the request as malformed")
    return Failed(f"HTTP {status}")
