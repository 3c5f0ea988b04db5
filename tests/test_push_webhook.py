"""The ``webhook`` push provider against a local receiver speaking plain HTTP on 127.0.0.1.

The receiver records every request and verifies ``X-Vault-Signature`` the way a consumer would
(HMAC-SHA256 of the raw body), so the published contract is checked from the consumer's side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from vault_plugins.push_webhook import WebhookProvider

from vault.plugin_api import (
    Delivered,
    Failed,
    Outcome,
    PushMessage,
    PushRegistration,
    RetryLater,
    check_provider,
    sample_context,
)

SECRET = "whsec-9f8e7d6c5b4a"
PUSH_TOKEN = "device-push-token-5e1a2b"
PHONE = PushRegistration(device_id="dev-1", platform="android", push_token=PUSH_TOKEN)
UPLOADED = PushMessage(
    category="uploads",
    title="Upload finished",
    body="3 photos in /Camera",
    created_at=1_700_000_000.75,
    data={"n": 3, "path": "/Camera", "ok": True},
)
CONTRACT_KEYS = {"category", "title", "body", "pushToken", "deviceId", "platform", "createdAt", "data"}


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a consumer does with ``X-Vault-Signature``: recompute and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook consumer: records requests, answers 204 or the next scripted answer."""

    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (event := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        self.requests.append(
            Received(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode(),
                headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
                body=body,
            )
        )
        status, headers = self.answers.pop(0) if self.answers else (204, {})
        content = b"" if status == 204 else b'{"error": "see logs"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": content})


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[str]:
    """``app`` served by Hypercorn on a free loopback port; yields its base URL."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield urls[0]
        finally:
            stop.set()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver()
    async with running(app) as base:
        yield app, base


@asynccontextmanager
async def opened(tmp_path: Path, **options: Any) -> AsyncIterator[WebhookProvider]:
    provider = WebhookProvider(msgspec.convert(options, WebhookProvider.Options))
    await provider.open(sample_context(tmp_path))
    try:
        yield provider
    finally:
        await provider.close()


async def send_one(tmp_path: Path, url: str, message: PushMessage = UPLOADED, **options: Any) -> Outcome:
    async with opened(tmp_path, url=url, **options) as provider:
        return await provider.send(PHONE, message)


async def test_a_delivery_is_one_post_of_the_published_json_contract(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    app, base = receiver
    outcome = await send_one(tmp_path, f"{base}/hooks/vault?team=ops")
    assert outcome == Delivered()
    [request] = app.requests
    assert (request.method, request.path, request.query) == ("POST", "/hooks/vault", "team=ops")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "megavault-node"
    assert "x-vault-signature" not in request.headers  # no secret configured, nothing to sign with
    document = json.loads(request.body)
    assert set(document) == CONTRACT_KEYS
    assert document == {
        "category": "uploads",
        "title": "Upload finished",
        "body": "3 photos in /Camera",
        "pushToken": PUSH_TOKEN,
        "deviceId": "dev-1",
        "platform": "android",
        "createdAt": "2023-11-14T22:13:20Z",  # whole seconds, UTC
        "data": {"n": 3, "path": "/Camera", "ok": True},
    }


async def test_created_at_is_utc_and_whole_seconds_for_any_time(receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    app, base = receiver
    async with opened(tmp_path, url=base) as provider:
        for when in (0.0, 951_782_400.999, 4_102_444_799.5):  # the epoch, a leap day, the end of 2099
            message = PushMessage(category="storage", title="t", body="b", created_at=when)
            assert await provider.send(PHONE, message) == Delivered()
    stamps = [json.loads(request.body)["createdAt"] for request in app.requests]
    assert stamps == ["1970-01-01T00:00:00Z", "2000-02-29T00:00:00Z", "2099-12-31T23:59:59Z"]


async def test_the_signature_lets_the_consumer_verify_the_body_and_catches_tampering(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    app, base = receiver
    assert await send_one(tmp_path, base, secret=SECRET) == Delivered()
    [request] = app.requests
    header = request.headers["x-vault-signature"]
    assert header.startswith("sha256=")
    assert verify(SECRET, request.body, header)
    tampered = request.body.replace(b"3 photos", b"9 photos")
    assert tampered != request.body
    assert not verify(SECRET, tampered, header)
    assert not verify("another-secret", request.body, header)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_delivered(receiver: tuple[Receiver, str], tmp_path: Path, status: int) -> None:
    app, base = receiver
    app.answers.append((status, {}))
    assert await send_one(tmp_path, base) == Delivered()


@pytest.mark.parametrize("status", [404, 410])
async def test_404_and_410_fail_the_delivery_and_never_unregister_the_device(
    receiver: tuple[Receiver, str], tmp_path: Path, status: int
) -> None:
    app, base = receiver
    app.answers.append((status, {}))
    outcome = await send_one(tmp_path, f"{base}/wrong-path")
    assert isinstance(outcome, Failed)  # not RegistrationGone: the URL is wrong, not the device
    assert f"HTTP {status}" in outcome.reason and "push.webhook.url" in outcome.reason


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "30", 30.0),
        (429, None, None),
        (500, None, None),
        (502, None, None),
        (503, "120", 120.0),
    ],
)
async def test_throttling_and_server_errors_retry_later_after_the_delay_asked_for(
    receiver: tuple[Receiver, str], tmp_path: Path, status: int, retry_after: str | None, delay: float | None
) -> None:
    app, base = receiver
    app.answers.append((status, {"Retry-After": retry_after} if retry_after else {}))
    outcome = await send_one(tmp_path, base)
    assert outcome == RetryLater(f"webhook answered HTTP {status}", delay)


async def test_a_retry_after_date_becomes_the_seconds_until_then(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    app, base = receiver
    then = datetime.now(UTC) + timedelta(minutes=10)
    app.answers.append((429, {"Retry-After": format_datetime(then, usegmt=True)}))
    outcome = await send_one(tmp_path, base)
    assert isinstance(outcome, RetryLater) and outcome.delay is not None
    assert 590 <= outcome.delay <= 600


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
async def test_other_4xx_fail_naming_the_status(receiver: tuple[Receiver, str], tmp_path: Path, status: int) -> None:
    app, base = receiver
    app.answers.append((status, {}))
    assert await send_one(tmp_path, base) == Failed(f"webhook answered HTTP {status}")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed_and_fail_naming_the_status(
    receiver: tuple[Receiver, str], tmp_path: Path, status: int
) -> None:
    app, base = receiver
    app.answers.append((status, {"Location": f"{base}/elsewhere"}))
    outcome = await send_one(tmp_path, f"{base}/old")
    assert isinstance(outcome, Failed) and f"HTTP {status}" in outcome.reason
    assert [request.path for request in app.requests] == ["/old"]  # the target was never asked


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused, reliably."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_refused_connection_retries_later(tmp_path: Path) -> None:
    with refusing_port() as port:
        outcome = await send_one(tmp_path, f"http://127.0.0.1:{port}/hook")
    assert outcome == RetryLater("webhook unreachable (ConnectError)")


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """Accepts connections and reads requests but never answers; yields its port and what it read."""
    received: list[bytes] = []

    async def hold(stream: trio.SocketStream) -> None:
        async for chunk in stream:
            received.append(bytes(chunk))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.serve_listeners, hold, listeners))
        yield listeners[0].socket.getsockname()[1], received
        nursery.cancel_scope.cancel()


@pytest.fixture
def jump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps once everything has idled briefly in real time, so the request
    really reaches the silent server before its timeout is skipped to."""
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_a_server_that_never_answers_retries_later_after_the_timeout(
    tmp_path: Path, jump_clock: trio.testing.MockClock
) -> None:
    async with silent_server() as (port, received):
        started = trio.current_time()
        outcome = await send_one(tmp_path, f"http://127.0.0.1:{port}/hook", timeout=7)
        waited = trio.current_time() - started
    assert outcome == RetryLater("webhook did not answer within 7 s")
    assert b"".join(received).startswith(b"POST /hook HTTP/1.1")  # it was sent, then not answered
    assert 7 <= waited < 8


async def test_silent_sync_hints_are_not_posted(receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    app, base = receiver
    assert WebhookProvider.sync_hints is False
    hint = PushMessage(category="sync", title="", body="", created_at=0.0, data={"type": "sync"}, silent=True)
    outcome = await send_one(tmp_path, base, hint)
    assert isinstance(outcome, Failed)
    assert app.requests == []


def test_options_refuse_an_unknown_key_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="urll"):
        msgspec.convert({"urll": "https://example.org/hook"}, WebhookProvider.Options)


@pytest.mark.parametrize(
    ("options", "where"),
    [({"url": "ftp://example.org/hook"}, "url"), ({"timeout": 0}, "timeout"), ({"timeout": -1.5}, "timeout")],
)
def test_options_refuse_bad_values_by_name(options: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{where}"):
        msgspec.convert(options, WebhookProvider.Options)


def test_options_defaults() -> None:
    options = msgspec.convert({"url": "https://example.org/hook", "timeout": 5}, WebhookProvider.Options)
    assert msgspec.structs.asdict(options) == {"url": "https://example.org/hook", "secret": "", "timeout": 5.0}


async def test_open_refuses_an_unset_url(tmp_path: Path) -> None:
    provider = WebhookProvider(WebhookProvider.Options())
    with pytest.raises(ValueError, match=r"^push\.webhook\.url is not set$"):
        await provider.open(sample_context(tmp_path))


async def test_secrets_never_reach_a_reason_or_a_log_line(
    receiver: tuple[Receiver, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, base = receiver
    caplog.set_level(logging.DEBUG)
    app.answers += [(200, {}), (500, {}), (400, {}), (301, {"Location": f"{base}/x"}), (410, {}), (429, {})]
    reasons: list[str] = []
    async with opened(tmp_path, url=f"{base}/hook", secret=SECRET) as provider:
        for _ in range(6):
            outcome = await provider.send(PHONE, UPLOADED)
            reasons.append(getattr(outcome, "reason", ""))
    with refusing_port() as port:
        outcome = await send_one(tmp_path, f"http://127.0.0.1:{port}/hook", secret=SECRET)
        reasons.append(getattr(outcome, "reason", ""))
    assert len(app.requests) == 6 and all(reasons[1:])
    logged = caplog.text + " ".join(record.getMessage() for record in caplog.records)
    for secret in (SECRET, PUSH_TOKEN):
        assert all(secret not in reason for reason in reasons)
        assert secret not in logged


async def test_the_provider_passes_the_provider_check(receiver: tuple[Receiver, str]) -> None:
    app, base = receiver
    await check_provider(WebhookProvider(WebhookProvider.Options(url=f"{base}/hook", secret=SECRET)))
    # Each sample registration got its one visible message; the silent sync hints were not posted.
    assert [json.loads(request.body)["platform"] for request in app.requests] == ["android", "ios", "web"]
    assert all(verify(SECRET, request.body, request.headers["x-vault-signature"]) for request in app.requests)
