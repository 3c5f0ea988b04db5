"""The ``webpush`` provider against a local push service that does what a real one does.

The fake service (hypercorn on 127.0.0.1) checks each request the way Mozilla's autopush and
the other RFC 8030 services do: the TTL and Content-Encoding headers, the VAPID JWT (ES256,
verified with the key in ``k=``, its ``aud``, ``exp`` and ``sub``) and the 4096-byte body
limit, and answers refusals with autopush's JSON error bodies. Then it decrypts the body as the
subscribing browser would, with the browser's own private key and auth secret, so a test sees
exactly what the service worker would get.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

import http_ece
import jwt
import msgspec
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from vault_plugins.push_webpush import MAX_PLAINTEXT, WebPushOptions, WebPushProvider

from vault.plugin_api import (
    Delivered,
    Failed,
    Outcome,
    ProviderContext,
    PushMessage,
    PushRegistration,
    RegistrationGone,
    RetryLater,
    check_provider,
    sample_context,
)

MORE_INFO = "http://autopush.readthedocs.io/en/latest/http.html#error-codes"


def autopush_error(code: int, errno: int, error: str, message: str) -> bytes:
    """An error body as autopush sends it."""
    return json.dumps(
        {"code": code, "errno": errno, "error": error, "message": message, "more_info": MORE_INFO}
    ).encode()


def b64url(data: bytes, *, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


class Browser:
    """One subscribing user agent: its P-256 key pair and 16-byte auth secret (RFC 8291)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription(self, endpoint: str, *, padded: bool = False) -> str:
        """``JSON.stringify(pushSubscription)``, as a page sends it to the node."""
        keys = {"p256dh": b64url(self.p256dh, padded=padded), "auth": b64url(self.auth, padded=padded)}
        return json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": keys})

    def decrypt(self, body: bytes) -> bytes:
        return bytes(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


@dataclass
class Seen:
    """One request as the push service received it, and what it made of it."""

    path: str
    headers: dict[str, str]
    body: bytes
    claims: dict[str, Any] | None = None
    plaintext: bytes | None = None
    problems: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        assert self.plaintext is not None, self.problems
        document: dict[str, Any] = json.loads(self.plaintext)
        return document


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    endless: bool = False  # after ``body``, stream 64 KiB chunks until the client hangs up


class FakePushService:
    """An RFC 8030 push service for the subscriptions it hands out (an ASGI app)."""

    def __init__(self, node_public_key: str) -> None:
        self.node_public_key = node_public_key
        self.origin = ""  # set once bound
        self.browsers: dict[str, Browser] = {}
        self.answers: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        self.streamed = 0  # bytes of endless answers sent

    def subscribe(self) -> tuple[Browser, str, str]:
        """A new subscription: the browser, its endpoint path (the secret part) and its JSON."""
        browser = Browser()
        path = f"/wpush/v2/{secrets.token_urlsafe(32)}"
        self.browsers[path] = browser
        return browser, path, browser.subscription(self.origin + path)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        seen = Seen(scope["path"], headers, body)
        self.seen.append(seen)
        answer = self.check(seen, scope["method"])
        await send({"type": "http.response.start", "status": answer.status, "headers": _raw(answer.headers)})
        if not answer.endless:
            await send({"type": "http.response.body", "body": answer.body})
            return
        async with trio.open_nursery() as nursery:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_disconnect)
            for _ in range(2048):  # 128 MiB at most, so a broken client cannot make the test spin
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                self.streamed += 65536
            await send({"type": "http.response.body", "body": b""})

    def check(self, seen: Seen, method: str) -> Answer:
        """Validate as the service would, decrypt as the browser would, then answer as scripted."""
        if method != "POST":
            return Answer(405)
        if seen.path not in self.browsers:
            return Answer(404, JSON, autopush_error(404, 102, "Not Found", "Request did not validate invalid token"))
        if not seen.headers.get("ttl", "").isdigit():
            seen.problems.append("no TTL")
            return Answer(400, JSON, autopush_error(400, 111, "Bad Request", "Missing TTL Header"))
        if seen.headers.get("content-encoding") != "aes128gcm":
            seen.problems.append("not aes128gcm")
            return Answer(400, JSON, autopush_error(400, 110, "Bad Request", "Unknown Content-Encoding"))
        try:
            seen.claims = self.verify_vapid(seen.headers.get("authorization", ""))
        except (ValueError, KeyError, jwt.InvalidTokenError) as exc:
            seen.problems.append(f"VAPID: {exc}")
            return Answer(
                401,
                JSON,
                autopush_error(401, 109, "Unauthorized", "Request did not validate Invalid Authorization Header"),
            )
        if len(seen.body) > 4096:
            seen.problems.append("body over 4096 bytes")
            return Answer(413, JSON, autopush_error(413, 104, "Payload Too Large", "Body too large"))
        try:
            seen.plaintext = self.browsers[seen.path].decrypt(seen.body)
        except http_ece.ECEException as exc:
            seen.problems.append(f"decrypt: {exc.message}")
        scripted = self.answers.get(seen.path)
        if scripted is not None:
            return scripted
        return Answer(201, [("location", f"{self.origin}/m/{secrets.token_urlsafe(16)}"), ("ttl", seen.headers["ttl"])])

    def verify_vapid(self, header: str) -> dict[str, Any]:
        """RFC 8292: ``vapid t=<jwt>, k=<key>``; the JWT must verify with ``k`` and name us."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"scheme {scheme!r}")
        params = dict(part.strip().split("=", 1) for part in rest.split(","))
        if params["k"] != self.node_public_key:
            raise ValueError("k is not the node's VAPID key")
        point = base64.urlsafe_b64decode(params["k"] + "=" * (-len(params["k"]) % 4))
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        claims: dict[str, Any] = jwt.decode(
            params["t"],
            key=public_key,
            algorithms=["ES256"],
            audience=self.origin,
            options={"require": ["aud", "exp", "sub"]},
        )
        if claims["exp"] > time.time() + 86400:
            raise ValueError("exp more than 24 hours ahead")
        return claims


JSON = [("content-type", "application/json")]


def _raw(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers]


@pytest.fixture
def context(tmp_path: Path) -> ProviderContext:
    return sample_context(tmp_path)


@pytest.fixture
async def service(nursery: trio.Nursery, context: ProviderContext) -> AsyncIterator[FakePushService]:
    fake = FakePushService(context.vapid.public_key)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    bound: list[str] = await nursery.start(
        lambda task_status: serve(fake, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
    )
    fake.origin = bound[0]
    yield fake
    stop.set()


@asynccontextmanager
async def opened(context: ProviderContext, **options: Any) -> AsyncIterator[WebPushProvider]:
    provider = WebPushProvider(msgspec.convert(options, WebPushOptions))
    await provider.open(context)
    try:
        yield provider
    finally:
        await provider.close()


def message(**fields: Any) -> PushMessage:
    values: dict[str, Any] = {
        "category": "uploads",
        "title": "Upload finished",
        "body": "3 photos from Pixel 8",
        "created_at": 1_700_000_000.5,
        "data": {"n": 3, "folder": "/Camera"},
    }
    values.update(fields)
    return PushMessage(**values)


SYNC_HINT = PushMessage(
    category="sync", title="", body="", created_at=1_700_000_000.0, data={"type": "sync"}, silent=True
)


def web(token: str) -> PushRegistration:
    return PushRegistration(device_id="dev-1", platform="web", push_token=token)


# ---------------------------------------------------------------------------------------------
# Delivery: what the service worker receives, and how the request is signed


async def test_a_message_arrives_encrypted_for_the_subscriber_and_signed_by_the_node(
    service: FakePushService, context: ProviderContext
) -> None:
    _browser, path, token = service.subscribe()
    async with opened(context, allow_private_endpoints=True, ttl=600, subject="mailto:ops@vault.example") as provider:
        assert await provider.check_registration(web(token)) is None
        before = time.time()
        assert await provider.send(web(token), message()) == Delivered()
        assert await provider.send(web(token), message()) == Delivered()
    first, second = service.seen
    assert first.problems == [] and first.path == path
    # What the page's service worker gets: compact JSON, the time in ISO form, nothing else.
    expected = {
        "category": "uploads",
        "title": "Upload finished",
        "body": "3 photos from Pixel 8",
        "data": {"n": 3, "folder": "/Camera"},
        "createdAt": "2023-11-14T22:13:20Z",
        "silent": False,
    }
    assert first.plaintext == json.dumps(expected, separators=(",", ":")).encode()
    assert first.headers["ttl"] == "600"
    assert first.headers["content-encoding"] == "aes128gcm"
    assert first.headers["content-type"] == "application/octet-stream"
    assert first.headers["urgency"] == "normal"
    assert "topic" not in first.headers
    assert first.headers["authorization"].startswith("vapid t=")
    assert first.headers["authorization"].endswith(f", k={context.vapid.public_key}")
    assert first.claims is not None
    assert first.claims["aud"] == service.origin  # scheme://host:port, no path
    assert first.claims["sub"] == "mailto:ops@vault.example"
    assert before < first.claims["exp"] <= before + 24 * 3600 + 1
    # Each message has its own salt and ephemeral sender key (RFC 8291 header: salt, rs, idlen, key).
    assert first.body[:16] != second.body[:16]
    assert first.body[21:86] != second.body[21:86]
    assert second.payload() == expected


async def test_padded_base64url_subscription_keys_work_too(service: FakePushService, context: ProviderContext) -> None:
    browser, path, _ = service.subscribe()
    token = browser.subscription(service.origin + path, padded=True)
    async with opened(context, allow_private_endpoints=True) as provider:
        assert await provider.check_registration(web(token)) is None
        assert await provider.send(web(token), message()) == Delivered()
    assert service.seen[0].payload()["title"] == "Upload finished"


async def test_security_is_urgent_and_sync_hints_are_low_priority_and_collapse(
    service: FakePushService, context: ProviderContext
) -> None:
    assert WebPushProvider.sync_hints is True
    _, _, token = service.subscribe()
    async with opened(context, allow_private_endpoints=True) as provider:
        alert = message(category="security", title="New sign-in", body="From Firefox on Linux", data={})
        assert await provider.send(web(token), alert) == Delivered()
        assert await provider.send(web(token), SYNC_HINT) == Delivered()
    security, hint = service.seen
    assert security.headers["urgency"] == "high" and "topic" not in security.headers
    assert hint.headers["urgency"] == "low"
    assert hint.headers["topic"] == "sync"
    assert hint.payload() == {
        "category": "sync",
        "title": "",
        "body": "",
        "data": {"type": "sync"},
        "createdAt": "2023-11-14T22:13:20Z",
        "silent": True,
    }


# ---------------------------------------------------------------------------------------------
# Payload size: RFC 8291 leaves 3993 bytes of plaintext in one 4096-byte record


def _plain_size(**fields: Any) -> int:
    document = {
        "category": "uploads",
        "title": "Upload finished",
        "body": "",
        "data": {},
        "createdAt": "2023-11-14T22:13:20Z",
        "silent": False,
    }
    document.update(fields)
    return len(msgspec.json.encode(document))


async def test_the_largest_plaintext_fills_exactly_one_4096_byte_body(
    service: FakePushService, context: ProviderContext
) -> None:
    _, _, token = service.subscribe()
    body = "a" * (MAX_PLAINTEXT - _plain_size())
    async with opened(context, allow_private_endpoints=True) as provider:
        assert await provider.send(web(token), message(body=body, data={})) == Delivered()
    seen = service.seen[0]
    assert seen.plaintext is not None and len(seen.plaintext) == MAX_PLAINTEXT == 3993
    assert len(seen.body) == 4096  # the service's limit, reached and not passed
    assert seen.payload()["body"] == body  # it fitted, so nothing was cut


async def test_too_large_data_is_dropped_and_the_text_kept(service: FakePushService, context: ProviderContext) -> None:
    _, _, token = service.subscribe()
    async with opened(context, allow_private_endpoints=True) as provider:
        big = message(data={"names": [f"IMG_{i:05}.jpg" for i in range(400)]})
        assert await provider.send(web(token), big) == Delivered()
    payload = service.seen[0].payload()
    assert payload["data"] == {}
    assert payload["title"] == "Upload finished" and payload["body"] == "3 photos from Pixel 8"


async def test_too_long_text_is_cut_at_a_character_to_the_largest_fit(
    service: FakePushService, context: ProviderContext
) -> None:
    _, _, token = service.subscribe()
    long_body = 'Grüße 😀 "quoted" \\ € ' * 400  # multibyte, escaped and 4-byte characters
    async with opened(context, allow_private_endpoints=True) as provider:
        assert await provider.send(web(token), message(body=long_body, data={"x": "y" * 5000})) == Delivered()
    seen = service.seen[0]
    assert seen.plaintext is not None and len(seen.plaintext) <= MAX_PLAINTEXT
    assert len(seen.body) <= 4096
    payload = seen.payload()
    assert payload["data"] == {}
    kept = payload["body"].removesuffix("…")
    assert payload["body"].endswith("…") and long_body.startswith(kept)
    # The cut is the longest that fits: one more character would not.
    assert _plain_size(body=long_body[: len(kept) + 1] + "…") > MAX_PLAINTEXT


async def test_max_payload_option_bounds_the_plaintext(service: FakePushService, context: ProviderContext) -> None:
    _, _, token = service.subscribe()
    async with opened(context, allow_private_endpoints=True, max_payload=300) as provider:
        assert await provider.send(web(token), message(body="word " * 200)) == Delivered()
    seen = service.seen[0]
    assert seen.plaintext is not None and len(seen.plaintext) <= 300
    assert seen.payload()["body"].startswith("word word")


# ---------------------------------------------------------------------------------------------
# The service's answers


def _in_a_minute() -> str:
    return format_datetime(datetime.fromtimestamp(time.time() + 60, UTC), usegmt=True)


ANSWERS: list[tuple[str, Answer, type, float | None, str]] = [
    (
        "404 unknown token",
        Answer(404, JSON, autopush_error(404, 102, "Not Found", "invalid token")),
        RegistrationGone,
        None,
        "404",
    ),
    (
        "410 unsubscribed",
        Answer(410, JSON, autopush_error(410, 106, "Gone", "Request did not validate No Subscription found")),
        RegistrationGone,
        None,
        "410",
    ),
    ("429 with Retry-After", Answer(429, [("retry-after", "30")], b"Too Many Requests"), RetryLater, 30.0, "429"),
    ("429 without Retry-After", Answer(429, [], b"Too Many Requests"), RetryLater, None, "429"),
    (
        "503 with Retry-After",
        Answer(503, [("retry-after", "120"), *JSON], autopush_error(503, 201, "Service Unavailable", "Try later")),
        RetryLater,
        120.0,
        "503",
    ),
    (
        "500",
        Answer(500, JSON, autopush_error(500, 999, "Internal Server Error", "Unknown error")),
        RetryLater,
        None,
        "500",
    ),
    (
        "502 from a proxy",
        Answer(502, [("content-type", "text/html")], b"<h1>Bad Gateway</h1>"),
        RetryLater,
        None,
        "502",
    ),
    (
        "413 payload too large",
        Answer(413, JSON, autopush_error(413, 104, "Payload Too Large", "Body too large")),
        Failed,
        None,
        "too large",
    ),
    (
        "401 bad VAPID",
        Answer(401, JSON, autopush_error(401, 109, "Unauthorized", "Invalid Authorization Header")),
        Failed,
        None,
        "VAPID",
    ),
    (
        "403 key mismatch",
        Answer(403, JSON, autopush_error(403, 109, "Forbidden", "Key mismatch")),
        Failed,
        None,
        "VAPID",
    ),
    (
        "400 bad request",
        Answer(400, JSON, autopush_error(400, 110, "Bad Request", "Invalid crypto")),
        Failed,
        None,
        "400",
    ),
    ("422 other 4xx", Answer(422, [], b""), Failed, None, "422"),
]


@pytest.mark.parametrize(("case", "answer", "kind", "delay", "says"), ANSWERS, ids=[a[0] for a in ANSWERS])
async def test_service_answers_map_to_outcomes(
    service: FakePushService,
    context: ProviderContext,
    case: str,
    answer: Answer,
    kind: type,
    delay: float | None,
    says: str,
) -> None:
    _, path, token = service.subscribe()
    service.answers[path] = answer
    async with opened(context, allow_private_endpoints=True) as provider:
        outcome = await provider.send(web(token), message())
    assert service.seen[0].problems == []  # the request itself was right; only the answer differs
    assert isinstance(outcome, kind), outcome
    assert says in outcome.reason  # type: ignore[union-attr]
    if isinstance(outcome, RetryLater):
        assert outcome.delay == delay


async def test_retry_after_as_an_http_date(service: FakePushService, context: ProviderContext) -> None:
    _, path, token = service.subscribe()
    service.answers[path] = Answer(429, [("retry-after", _in_a_minute())])
    async with opened(context, allow_private_endpoints=True) as provider:
        outcome = await provider.send(web(token), message())
    assert isinstance(outcome, RetryLater) and outcome.delay is not None and 55 <= outcome.delay <= 60


async def test_only_the_start_of_an_endless_answer_is_read(service: FakePushService, context: ProviderContext) -> None:
    _, path, token = service.subscribe()
    service.answers[path] = Answer(201, [("content-type", "text/plain")], endless=True)
    async with opened(context, allow_private_endpoints=True) as provider:
        assert await provider.send(web(token), message()) == Delivered()
    # The node hung up after a few KiB: what was sent is at most what socket buffers hold,
    # not the 128 MiB the service had to give.
    assert service.streamed < 8 * 2**20


async def test_a_redirect_is_not_followed(service: FakePushService, context: ProviderContext) -> None:
    _, path, token = service.subscribe()
    _, elsewhere, _ = service.subscribe()
    service.answers[path] = Answer(307, [("location", service.origin + elsewhere)])
    async with opened(context, allow_private_endpoints=True) as provider:
        outcome = await provider.send(web(token), message())
    assert isinstance(outcome, Failed) and "redirect" in outcome.reason
    assert [seen.path for seen in service.seen] == [path]  # nothing went to the Location


# ---------------------------------------------------------------------------------------------
# Network failures are retried


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_connection_refused_is_retried_later(context: ProviderContext) -> None:
    token = Browser().subscription(f"http://127.0.0.1:{_closed_port()}/wpush/v2/abc")
    async with opened(context, allow_private_endpoints=True) as provider:
        outcome = await provider.send(web(token), message())
    assert isinstance(outcome, RetryLater) and "unreachable" in outcome.reason


async def test_a_service_that_never_answers_is_retried_after_the_timeout(
    nursery: trio.Nursery, context: ProviderContext, autojump_clock: trio.testing.MockClock
) -> None:
    received = trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        received.set()
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    token = Browser().subscription(f"http://127.0.0.1:{port}/wpush/v2/abc")
    async with opened(context, allow_private_endpoints=True, timeout=10) as provider:
        start = trio.current_time()
        outcome = await provider.send(web(token), message())
        waited = trio.current_time() - start
    assert received.is_set()  # the request reached it; the answer never came
    assert isinstance(outcome, RetryLater) and "in time" in outcome.reason
    assert 10 <= waited < 11  # the timeout bounds the whole delivery


# ---------------------------------------------------------------------------------------------
# Endpoint safety: the node must not post into its own network for a stranger

SECRET = "gAAAAABsecretpathsecretpath"

REFUSED: list[tuple[str, str]] = [
    (f"http://push.example.com/{SECRET}", "https"),
    (f"ftp://push.example.com/{SECRET}", "https"),
    (f"https://user:pw@push.example.com/{SECRET}", "user name"),
    (f"https://example.com\\@push.example.com/{SECRET}", "user name"),
    (f"https://localhost/{SECRET}", "localhost"),
    (f"https://LOCALHOST./{SECRET}", "localhost"),
    (f"https://push.localhost/{SECRET}", "localhost"),
    (f"https://127.0.0.1/{SECRET}", "loopback"),
    (f"https://127.1/{SECRET}", "loopback"),
    (f"https://2130706433/{SECRET}", "loopback"),
    (f"https://0x7f.0.0.1/{SECRET}", "loopback"),
    (f"https://[::1]:8443/{SECRET}", "loopback"),
    (f"https://10.1.2.3/{SECRET}", "private"),
    (f"https://172.16.0.9/{SECRET}", "private"),
    (f"https://192.168.1.20/{SECRET}", "private"),
    (f"https://[fd00::5]/{SECRET}", "private"),
    (f"https://169.254.169.254/{SECRET}", "link-local"),
    (f"https://[fe80::1]/{SECRET}", "link-local"),
    (f"https://224.0.0.251/{SECRET}", "multicast"),
    (f"https://[ff02::1]/{SECRET}", "multicast"),
    (f"https://240.0.0.1/{SECRET}", "reserved"),
    (f"https://0.0.0.0/{SECRET}", "unspecified"),
    (f"https://[::]/{SECRET}", "unspecified"),
    (f"https://100.64.0.1/{SECRET}", "non-public"),
    (f"https://[::ffff:127.0.0.1]/{SECRET}", "loopback"),
    (f"https://[::ffff:10.0.0.1]/{SECRET}", "private"),
    (f"https://[2002:7f00:1::1]/{SECRET}", "loopback"),
    (f"https://[2002:a9fe:a9fe::]/{SECRET}", "link-local"),
    (f"https://[64:ff9b::7f00:1]/{SECRET}", "loopback"),
    (f"https://[64:ff9b::a00:1]/{SECRET}", "private"),
    (f"https://[64:ff9b:1::1]/{SECRET}", "private"),
    (f"https://[::127.0.0.1]/{SECRET}", "loopback"),
    (f"https://%6c%6fcalhost/{SECRET}", "host name"),
]


@pytest.mark.parametrize(("endpoint", "rule"), REFUSED, ids=[r[0].split("/")[2] or r[0] for r in REFUSED])
async def test_refused_endpoints(context: ProviderContext, endpoint: str, rule: str) -> None:
    token = Browser().subscription(endpoint)
    async with opened(context) as provider:
        reason = await provider.check_registration(web(token))
        outcome = await provider.send(web(token), message())
    assert reason is not None and rule in reason
    assert SECRET not in reason
    assert outcome == Failed(reason)  # refused again at send time, before any connection


ACCEPTED = [
    f"https://updates.push.services.mozilla.com/wpush/v2/{SECRET}",
    f"https://fcm.googleapis.com/fcm/send/{SECRET}",
    f"https://web.push.apple.com/{SECRET}",
    f"https://ntfy.sh:443/upAbc{SECRET}?up=1",
    f"https://8.8.8.8/{SECRET}",
    f"https://[2606:4700::1111]/{SECRET}",
    f"https://cafe.be/{SECRET}",
]


@pytest.mark.parametrize("endpoint", ACCEPTED)
async def test_public_endpoints_are_accepted(context: ProviderContext, endpoint: str) -> None:
    async with opened(context) as provider:
        assert await provider.check_registration(web(Browser().subscription(endpoint))) is None


async def test_allow_private_endpoints_accepts_http_and_loopback_but_not_credentials(context: ProviderContext) -> None:
    async with opened(context, allow_private_endpoints=True) as provider:
        for endpoint in (
            "http://127.0.0.1:8080/up/x",
            "https://[::1]/x",
            "http://localhost:2586/up",
            "https://10.0.0.2/x",
        ):
            assert await provider.check_registration(web(Browser().subscription(endpoint))) is None, endpoint
        for endpoint, rule in (("https://u:p@127.0.0.1/x", "user name"), ("ftp://127.0.0.1/x", "http")):
            reason = await provider.check_registration(web(Browser().subscription(endpoint)))
            assert reason is not None and rule in reason


class StaticResolver(trio.abc.HostnameResolver):
    """A DNS that answers ``names`` with fixed addresses (and fails for anything else)."""

    def __init__(self, names: dict[bytes, list[str]]) -> None:
        self.names = names
        self.asked: list[bytes] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        assert host is not None
        self.asked.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers: list[Any] = []
        for address in self.names[host]:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port or 0), 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0))))
        return answers

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int) -> tuple[str, str]:
        raise NotImplementedError


@asynccontextmanager
async def resolving(names: dict[bytes, list[str]]) -> AsyncIterator[StaticResolver]:
    resolver = StaticResolver(names)
    previous = trio.socket.set_custom_hostname_resolver(resolver)
    try:
        yield resolver
    finally:
        trio.socket.set_custom_hostname_resolver(previous)


@pytest.mark.parametrize(
    ("addresses", "rule"),
    [(["127.0.0.1"], "loopback"), (["93.184.216.34", "10.0.0.7"], "private"), (["::1"], "loopback")],
    ids=["loopback", "one-private-among-public", "ipv6-loopback"],
)
async def test_a_name_resolving_to_a_refused_address_is_refused_at_send(
    nursery: trio.Nursery, context: ProviderContext, addresses: list[str], rule: str
) -> None:
    connections = 0

    async def count(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, count, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    token = Browser().subscription(f"https://push.example.test:{port}/wpush/v2/{SECRET}")
    async with resolving({b"push.example.test": addresses}) as resolver, opened(context) as provider:
        assert await provider.check_registration(web(token)) is None  # the name itself is fine
        outcome = await provider.send(web(token), message())
    assert resolver.asked == [b"push.example.test"]  # resolved once, by the guard
    assert isinstance(outcome, Failed) and rule in outcome.reason and "resolves to" in outcome.reason
    assert SECRET not in outcome.reason
    assert connections == 0


async def test_a_name_that_does_not_resolve_is_retried_later(context: ProviderContext) -> None:
    token = Browser().subscription(f"https://gone.example.test/wpush/v2/{SECRET}")
    async with resolving({}), opened(context) as provider:
        outcome = await provider.send(web(token), message())
    assert isinstance(outcome, RetryLater) and "resolve" in outcome.reason


# ---------------------------------------------------------------------------------------------
# Malformed subscriptions are the client's 400 at register time


def _key_variants() -> list[tuple[str, str, str]]:
    browser = Browser()
    good_p256dh, good_auth = b64url(browser.p256dh), b64url(browser.auth)
    endpoint = f"https://updates.push.services.mozilla.com/wpush/v2/{SECRET}"

    def token(p256dh: str = good_p256dh, auth: str = good_auth, **over: Any) -> str:
        document: dict[str, Any] = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
        document.update(over)
        return json.dumps(document)

    off_curve = b64url(b"\x04" + b"\x01" * 64)
    compressed = b64url(
        browser.key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    )
    return [
        ("not JSON", "not json at all", "not a Web Push subscription"),
        ("an FCM token", "fMEP0vJqS0:APA91bHqX", "not a Web Push subscription"),
        ("no keys", json.dumps({"endpoint": endpoint}), "keys"),
        ("no auth", json.dumps({"endpoint": endpoint, "keys": {"p256dh": good_p256dh}}), "auth"),
        ("endpoint not a string", token(endpoint=5), "endpoint"),
        ("endpoint not a URL", token(endpoint="https://[::1"), "not a valid URL"),
        ("p256dh 64 bytes", token(p256dh=b64url(browser.p256dh[:64])), "p256dh"),
        ("p256dh compressed", token(p256dh=compressed), "p256dh"),
        ("p256dh off the curve", token(p256dh=off_curve), "not a point on P-256"),
        ("p256dh standard base64", token(p256dh=base64.b64encode(b"\xfb" * 65).decode()), "p256dh"),
        ("auth 15 bytes", token(auth=b64url(browser.auth[:15])), "auth"),
        ("auth empty", token(auth=""), "auth"),
    ]


KEY_VARIANTS = _key_variants()


@pytest.mark.parametrize(("case", "token", "says"), KEY_VARIANTS, ids=[k[0] for k in KEY_VARIANTS])
async def test_malformed_subscriptions_are_refused(context: ProviderContext, case: str, token: str, says: str) -> None:
    async with opened(context) as provider:
        reason = await provider.check_registration(web(token))
        outcome = await provider.send(web(token), message())
    assert reason is not None and says in reason, reason
    assert SECRET not in reason
    assert outcome == Failed(reason)


# ---------------------------------------------------------------------------------------------
# Options and the conformance check


def test_options_defaults_and_limits() -> None:
    options = WebPushOptions()
    assert (options.subject, options.ttl, options.allow_private_endpoints, options.timeout, options.max_payload) == (
        "mailto:admin@localhost",
        86400,
        False,
        10.0,
        3993,
    )
    assert msgspec.convert({"subject": "https://vault.example/contact", "ttl": 0}, WebPushOptions).ttl == 0
    for wrong in (
        {"subject": "admin@example.com"},
        {"subject": "http://vault.example"},
        {"ttl": -1},
        {"ttl": 2_419_201},
        {"max_payload": 3994},
        {"timeout": 0},
    ):
        with pytest.raises(msgspec.ValidationError, match=next(iter(wrong))):
            msgspec.convert(wrong, WebPushOptions)


def test_a_wrong_option_key_is_refused_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="allow_private_endpoint"):
        msgspec.convert({"allow_private_endpoint": True}, WebPushOptions)
    with pytest.raises(msgspec.ValidationError, match="max_payload_bytes"):
        msgspec.convert({"max_payload_bytes": 100}, WebPushOptions)


@pytest.mark.parametrize("allow_private", [False, True])
async def test_check_provider_passes(allow_private: bool) -> None:
    await check_provider(WebPushProvider(WebPushOptions(allow_private_endpoints=allow_private)))


# ---------------------------------------------------------------------------------------------
# Secrets: the endpoint path, the subscription keys and the JWT are never logged or in a reason


async def test_secrets_stay_out_of_reasons_and_logs(
    service: FakePushService, context: ProviderContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # ``vault serve`` quietens these loggers (an earlier in-process CLI test may have); here they
    # must speak, to show what they would have said is masked.
    for name in ("httpx", "httpcore", "hpack"):
        caplog.set_level(logging.DEBUG, logger=name)
    outcomes: list[Outcome] = []
    tokens: list[str] = []
    async with opened(context, allow_private_endpoints=True) as provider:
        for answer in (None, Answer(410), Answer(413), Answer(429, [("retry-after", "5")]), Answer(401)):
            _, path, token = service.subscribe()
            tokens.append(token)
            if answer is not None:
                service.answers[path] = answer
            outcomes.append(await provider.send(web(token), message()))
    async with opened(context) as provider:  # the default rules: refused before and after resolving
        refused = Browser().subscription(f"https://10.0.0.1/wpush/v2/{SECRET}")
        tokens.append(refused)
        outcomes.append(await provider.send(web(refused), message()))
        rebinding = Browser().subscription(f"https://push.example.test/wpush/v2/{SECRET}")
        tokens.append(rebinding)
        async with resolving({b"push.example.test": ["127.0.0.1"]}):
            outcomes.append(await provider.send(web(rebinding), message()))
    assert [type(o) for o in outcomes] == [Delivered, RegistrationGone, Failed, RetryLater, Failed, Failed, Failed]
    secrets_ = [SECRET]
    for token in tokens:
        subscription = json.loads(token)
        secrets_ += [subscription["endpoint"].split("/")[-1], *subscription["keys"].values()]
    secrets_ += [seen.headers["authorization"].split("t=", 1)[1].split(",")[0] for seen in service.seen]
    node_records = [r for r in caplog.records if not r.name.startswith("hypercorn")]
    texts = [r.getMessage() for r in node_records] + [getattr(o, "reason", "") for o in outcomes]
    assert [s for s in secrets_ if any(s in text for text in texts)] == []
    # httpx's own request line is still there, shortened to the origin.
    request_lines = [r.getMessage() for r in node_records if r.name == "httpx"]
    assert len(request_lines) == 5 and all(f"{service.origin}/…" in line for line in request_lines)


async def test_allow_private_endpoints_takes_plain_http_only_to_loopback_and_private_addresses(
    context: ProviderContext,
) -> None:
    # Plain http is for the LAN's own distributor; to a public host it would send the VAPID token
    # and the push metadata over the internet without TLS.
    names = {
        b"up.lan": ["192.168.1.20"],
        b"push.example.com": ["93.184.216.34"],
        b"mixed.example": ["10.0.0.9", "93.184.216.34"],
    }
    async with resolving(names), opened(context, allow_private_endpoints=True) as provider:
        assert await provider.check_registration(web(Browser().subscription("http://up.lan:8080/up/x"))) is None
        for endpoint in ("http://8.8.8.8/x", "http://push.example.com/x", "http://mixed.example/x"):
            reason = await provider.check_registration(web(Browser().subscription(endpoint)))
            assert reason is not None and "private address" in reason and "https" in reason, endpoint
            # Checked again when sending: a registration older than the rule is not sent to.
            outcome = await provider.send(web(Browser().subscription(endpoint)), message())
            assert isinstance(outcome, Failed) and "https" in outcome.reason, endpoint
        # https to a public name stays fine.
        assert await provider.check_registration(web(Browser().subscription("https://push.example.com/x"))) is None
