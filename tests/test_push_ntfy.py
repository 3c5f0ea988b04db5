"""The ``ntfy`` push provider against a local fake ntfy server on 127.0.0.1.

The fake follows ntfy's "Publish as JSON" (https://docs.ntfy.sh/publish/#publish-as-json): a POST
to the root with ``{"topic", "title", "message", "priority", "tags"}``, bearer-token access
control, ntfy's topic rule and 4,096-byte message limit, and ntfy's JSON error bodies
(``{"code": 42901, "http": 429, "error": "…", "link": "…"}``).
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypothesis import given
from hypothesis import strategies as st
from vault_plugins.push_ntfy import NtfyProvider, trim_message

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

TOKEN = "tk_0123456789abcdefghijklmnopqr"
TOPIC = "phone-7f3a9c"
PHONE = PushRegistration(device_id="dev-1", platform="android", push_token=TOPIC)
UPLOADED = PushMessage(category="uploads", title="Upload finished", body="3 photos", created_at=1_700_000_000.0)
SYNC_HINT = PushMessage(category="sync", title="", body="", created_at=0.0, data={"type": "sync"}, silent=True)
NTFY_TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")  # ntfy's topicRegex


def ntfy_error(code: int, message: str, link: str = "") -> tuple[int, bytes]:
    """An error the way ntfy writes it (its errHTTP JSON)."""
    body: dict[str, Any] = {"code": code, "http": code // 100, "error": message}
    if link:
        body["link"] = link
    return code // 100, json.dumps(body).encode()


RATE_LIMITED = ntfy_error(
    42901, "limit reached: too many requests, please be nice", "https://ntfy.sh/docs/publish/#limitations"
)
UNAUTHORIZED = ntfy_error(40101, "unauthorized", "https://ntfy.sh/docs/publish/#authentication")
FORBIDDEN = ntfy_error(40301, "forbidden", "https://ntfy.sh/docs/publish/#authentication")
NOT_FOUND = ntfy_error(40401, "page not found")


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeNtfy:
    """A small ntfy: checks the bearer token and the message like ntfy does, records what it published.

    ``token`` set means the topic is protected (ntfy's ``auth-default-access: deny-all``): no token
    is 403 forbidden, a wrong one 401 unauthorized. ``answers`` are served first, for the
    answers a real server gives only under load or misconfiguration.
    """

    token: str | None = TOKEN
    root: str = "/"
    published: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

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
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.headers.append(headers)
        answer = self.answers.pop(0) if self.answers else self.publish(scope, headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    *((k.encode(), v.encode()) for k, v in answer.headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    def publish(self, scope: dict[str, Any], headers: dict[str, str], body: bytes) -> Answer:
        if scope["method"] not in ("POST", "PUT") or scope["path"] != self.root:
            return Answer(*NOT_FOUND)
        if self.token is not None:
            authorization = headers.get("authorization")
            if authorization is None:
                return Answer(*FORBIDDEN)
            if authorization != f"Bearer {self.token}":
                return Answer(*UNAUTHORIZED)
        try:
            message = json.loads(body)
        except ValueError:
            return Answer(*ntfy_error(40024, "invalid request: request body must be valid JSON"))
        if not NTFY_TOPIC.match(message.get("topic", "")):
            return Answer(*ntfy_error(40009, "invalid request: topic invalid"))
        if message.get("priority", 0) not in range(6):
            return Answer(
                *ntfy_error(40007, "invalid priority parameter", "https://ntfy.sh/docs/publish/#message-priority")
            )
        if len(message.get("message", "").encode()) > 4096:
            # Longer messages become attachments, which a server without an attachment cache refuses.
            return Answer(
                *ntfy_error(
                    40014, "invalid request: attachments not allowed", "https://ntfy.sh/docs/config/#attachments"
                )
            )
        self.published.append(message)
        event = {"id": f"m{len(self.published)}", "time": 1_700_000_000, "expires": 1_700_043_200, "event": "message"}
        return Answer(200, json.dumps(event | message).encode())


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
async def ntfy() -> AsyncIterator[tuple[FakeNtfy, str]]:
    app = FakeNtfy()
    async with running(app) as base:
        yield app, base


@asynccontextmanager
async def opened(tmp_path: Path, **options: Any) -> AsyncIterator[NtfyProvider]:
    provider = NtfyProvider(msgspec.convert(options, NtfyProvider.Options))
    await provider.open(sample_context(tmp_path))
    try:
        yield provider
    finally:
        await provider.close()


async def send_one(tmp_path: Path, message: PushMessage = UPLOADED, **options: Any) -> Outcome:
    async with opened(tmp_path, **options) as provider:
        return await provider.send(PHONE, message)


async def test_a_message_is_published_as_json_to_the_prefixed_topic(ntfy: tuple[FakeNtfy, str], tmp_path: Path) -> None:
    app, base = ntfy
    outcome = await send_one(tmp_path, server=base, token=TOKEN, topic_prefix="vault-")
    assert outcome == Delivered()
    assert app.published == [
        {
            "topic": f"vault-{TOPIC}",
            "title": "Upload finished",
            "message": "3 photos",
            "priority": 3,
            "tags": ["uploads"],
        }
    ]
    [headers] = app.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "megavault-node"


async def test_a_public_server_gets_no_authorization_header(tmp_path: Path) -> None:
    app = FakeNtfy(token=None)
    async with running(app) as base:
        assert await send_one(tmp_path, server=base) == Delivered()
    assert "authorization" not in app.headers[0]
    assert app.published[0]["topic"] == TOPIC


@pytest.mark.parametrize("server_path", ["/ntfy", "/ntfy/"])
async def test_a_server_under_a_path_is_published_to_at_that_path(tmp_path: Path, server_path: str) -> None:
    app = FakeNtfy(root="/ntfy/")
    async with running(app) as base:
        assert await send_one(tmp_path, server=base + server_path, token=TOKEN) == Delivered()
    assert len(app.published) == 1


@pytest.mark.parametrize(
    ("configured", "category", "sent"),
    [
        (3, "uploads", 3),
        (2, "shares", 2),
        (3, "security", 4),
        (1, "security", 4),
        (5, "security", 5),
        (5, "storage", 5),
    ],
)
async def test_priority_is_the_configured_one_and_at_least_high_for_security(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, configured: int, category: str, sent: int
) -> None:
    app, base = ntfy
    message = PushMessage(category=category, title="New sign-in", body="from Firefox", created_at=0.0)  # type: ignore[arg-type]
    assert await send_one(tmp_path, message, server=base, token=TOKEN, priority=configured) == Delivered()
    assert app.published[0]["priority"] == sent
    assert app.published[0]["tags"] == [category]


async def test_a_sync_hint_is_a_min_priority_message_tagged_sync(ntfy: tuple[FakeNtfy, str], tmp_path: Path) -> None:
    app, base = ntfy
    assert NtfyProvider.sync_hints is True
    assert await send_one(tmp_path, SYNC_HINT, server=base, token=TOKEN, priority=5) == Delivered()
    assert app.published == [
        {"topic": TOPIC, "title": "", "message": "changes available", "priority": 1, "tags": ["sync"]}
    ]


async def test_a_long_multibyte_message_is_trimmed_to_the_limit_on_a_character_boundary(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path
) -> None:
    app, base = ntfy
    body = "é€😀" * 1000  # 9 bytes per round: 9,000 bytes, and no byte offset is safe to cut at blindly
    long = PushMessage(category="shares", title="Shared with you", body=body, created_at=0.0)
    assert await send_one(tmp_path, long, server=base, token=TOKEN) == Delivered()
    sent = app.published[0]["message"]
    size = len(sent.encode())
    assert 4096 - 3 - 3 <= size <= 4096  # at most a partial character short of "…"
    assert sent.endswith("…") and body.startswith(sent[:-1])


async def test_a_message_at_the_limit_is_sent_whole(ntfy: tuple[FakeNtfy, str], tmp_path: Path) -> None:
    app, base = ntfy
    body = "€" * 1365 + "a"  # exactly 4,096 bytes
    assert len(body.encode()) == 4096
    exact = PushMessage(category="storage", title="Storage", body=body, created_at=0.0)
    assert await send_one(tmp_path, exact, server=base, token=TOKEN) == Delivered()
    assert app.published[0]["message"] == body


@given(st.text(), st.integers(min_value=8, max_value=64))
def test_trimming_keeps_a_prefix_within_the_byte_limit(text: str, limit: int) -> None:
    trimmed = trim_message(text, limit)
    assert len(trimmed.encode()) <= limit
    if len(text.encode()) <= limit:
        assert trimmed == text
    else:
        assert trimmed.endswith("…") and text.startswith(trimmed[:-1])
        assert len(trimmed.encode()) > limit - 3 - 4  # never shorter than the cut needs


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("45", 45.0), (None, None)],
)
async def test_ntfy_rate_limiting_retries_later_after_the_delay_asked_for(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, retry_after: str | None, delay: float | None
) -> None:
    app, base = ntfy
    app.answers.append(Answer(*RATE_LIMITED, headers={"Retry-After": retry_after} if retry_after else {}))
    outcome = await send_one(tmp_path, server=base, token=TOKEN)
    assert outcome == RetryLater("ntfy answered HTTP 429: limit reached: too many requests, please be nice", delay)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(*ntfy_error(50001, "internal server error")), "ntfy answered HTTP 500: internal server error"),
        (Answer(502, b"<html><body>502 Bad Gateway</body></html>"), "ntfy answered HTTP 502"),
        (Answer(503, b"", {"Retry-After": "60"}), "ntfy answered HTTP 503"),
    ],
)
async def test_server_errors_retry_later(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, answer: Answer, reason: str
) -> None:
    app, base = ntfy
    app.answers.append(answer)
    outcome = await send_one(tmp_path, server=base, token=TOKEN)
    assert isinstance(outcome, RetryLater) and outcome.reason == reason
    assert outcome.delay == (60.0 if "Retry-After" in answer.headers else None)


async def test_a_wrong_token_fails_saying_the_token_was_refused(ntfy: tuple[FakeNtfy, str], tmp_path: Path) -> None:
    _, base = ntfy
    outcome = await send_one(tmp_path, server=base, token="tk_not_the_right_one")
    assert outcome == Failed("ntfy refused the access token (HTTP 401): check push.ntfy.token")


async def test_no_token_on_a_protected_server_fails_saying_one_is_needed(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path
) -> None:
    _, base = ntfy
    outcome = await send_one(tmp_path, server=base)
    assert outcome == Failed("ntfy refused to publish without an access token (HTTP 403): set push.ntfy.token")


async def test_a_token_without_write_access_fails_as_refused(ntfy: tuple[FakeNtfy, str], tmp_path: Path) -> None:
    app, base = ntfy
    app.answers.append(Answer(*FORBIDDEN))  # a valid user lacking write permission on the topic
    outcome = await send_one(tmp_path, server=base, token=TOKEN)
    assert outcome == Failed("ntfy refused the access token (HTTP 403): check push.ntfy.token")


@pytest.mark.parametrize("status", [404, 410])
async def test_404_and_410_fail_and_never_unregister_the_device(tmp_path: Path, status: int) -> None:
    app = FakeNtfy(root="/ntfy/")
    if status == 410:
        app.answers.append(Answer(410, b""))
    async with running(app) as base:  # the configured server misses ntfy's path prefix
        outcome = await send_one(tmp_path, server=base, token=TOKEN)
    assert outcome == Failed(f"ntfy answered HTTP {status}: is push.ntfy.server an ntfy server?")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            Answer(*ntfy_error(40007, "invalid priority parameter")),
            "ntfy answered HTTP 400: invalid priority parameter",
        ),
        (Answer(*ntfy_error(41303, "JSON body too large")), "ntfy answered HTTP 413: JSON body too large"),
        (Answer(400, b"not json"), "ntfy answered HTTP 400"),
        (Answer(308, b"", {"Location": "https://ntfy.example/"}), "ntfy answered HTTP 308"),
    ],
)
async def test_other_4xx_and_redirects_fail_with_ntfys_reason(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, answer: Answer, reason: str
) -> None:
    app, base = ntfy
    app.answers.append(answer)
    outcome = await send_one(tmp_path, server=base, token=TOKEN)
    assert isinstance(outcome, Failed) and outcome.reason.startswith(reason)
    assert len(app.headers) == 1  # a redirect is not followed


@pytest.mark.parametrize(
    ("push_token", "prefix", "accepted"),
    [
        (TOPIC, "", True),
        ("a" * 64, "", True),
        ("a" * 65, "", False),
        ("", "", False),
        ("has space", "", False),
        ("slash/topic", "", False),
        ("ümlaut", "", False),
        ('{"endpoint": "https://push.example/x"}', "", False),
        ("a" * 58, "vault-", True),
        ("a" * 59, "vault-", False),  # 65 with the prefix
    ],
)
async def test_registration_accepts_only_ntfy_topic_names(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, push_token: str, prefix: str, accepted: bool
) -> None:
    app, base = ntfy
    registration = PushRegistration(device_id="dev-2", platform="android", push_token=push_token)
    async with opened(tmp_path, server=base, token=TOKEN, topic_prefix=prefix) as provider:
        reason = await provider.check_registration(registration)
        outcome = await provider.send(registration, UPLOADED)
    if accepted:
        assert reason is None and outcome == Delivered()
    else:
        assert reason is not None and "ntfy topic" in reason
        assert push_token not in reason or not push_token
        assert outcome == Failed("the push token is not an ntfy topic")
        assert app.headers == []  # nothing was sent for a token ntfy would refuse


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused, reliably."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_refused_connection_retries_later(tmp_path: Path) -> None:
    with refusing_port() as port:
        outcome = await send_one(tmp_path, server=f"http://127.0.0.1:{port}", token=TOKEN)
    assert outcome == RetryLater("ntfy unreachable (ConnectError)")


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
        outcome = await send_one(tmp_path, server=f"http://127.0.0.1:{port}", token=TOKEN, timeout=4.5)
        waited = trio.current_time() - started
    assert outcome == RetryLater("ntfy did not answer within 4.5 s")
    assert b"".join(received).startswith(b"POST / HTTP/1.1")
    assert 4.5 <= waited < 5.5


def test_options_refuse_an_unknown_key_by_name() -> None:
    with pytest.raises(msgspec.ValidationError, match="access_token"):
        msgspec.convert({"access_token": TOKEN}, NtfyProvider.Options)


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"priority": 0}, "priority"),
        ({"priority": 6}, "priority"),
        ({"topic_prefix": "bad/prefix"}, "topic_prefix"),
        ({"topic_prefix": "p" * 64}, "topic_prefix"),  # leaves no room for a device's topic
        ({"server": "ntfy.sh"}, "server"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_options_refuse_bad_values_by_name(options: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{where}"):
        msgspec.convert(options, NtfyProvider.Options)


def test_options_defaults_publish_to_ntfy_sh_at_default_priority() -> None:
    assert msgspec.structs.asdict(NtfyProvider.Options()) == {
        "server": "https://ntfy.sh",
        "token": "",
        "topic_prefix": "",
        "priority": 3,
        "timeout": 10.0,
    }


async def test_secrets_never_reach_a_reason_or_a_log_line(
    ntfy: tuple[FakeNtfy, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, base = ntfy
    caplog.set_level(logging.DEBUG)
    # A server error that (unlike ntfy) quotes the topic and token back must not leak them either.
    echo = Answer(*ntfy_error(40000, f"bad request for topic {TOPIC} with token {TOKEN}"))
    app.answers += [
        Answer(*RATE_LIMITED),
        Answer(*UNAUTHORIZED),
        Answer(*ntfy_error(50001, "internal server error")),
        echo,
    ]
    reasons: list[str] = []
    async with opened(tmp_path, server=base, token=TOKEN) as provider:
        for message in (UPLOADED, UPLOADED, UPLOADED, UPLOADED, SYNC_HINT):
            reasons.append(getattr(await provider.send(PHONE, message), "reason", ""))
        bad = PushRegistration(device_id="dev-3", platform="ios", push_token="no/such topic")
        reasons.append(await provider.check_registration(bad) or "")
    with refusing_port() as port:
        reasons.append(getattr(await send_one(tmp_path, server=f"http://127.0.0.1:{port}", token=TOKEN), "reason", ""))
    assert all(reasons[:4]) and reasons[4] == "" and all(reasons[5:])
    assert "bad request for topic *** with token ***" in reasons[3]
    logged = caplog.text + " ".join(record.getMessage() for record in caplog.records)
    for secret in (TOKEN, TOPIC, "no/such topic"):
        assert all(secret not in reason for reason in reasons)
        assert secret not in logged


async def test_the_provider_passes_the_provider_check(ntfy: tuple[FakeNtfy, str]) -> None:
    app, base = ntfy
    await check_provider(NtfyProvider(NtfyProvider.Options(server=base, token=TOKEN)))
    # The two sample topics got a message and a sync hint each; the Web Push JSON was refused unsent.
    topics = [(message["topic"], message["priority"]) for message in app.published]
    assert topics == [("conformance-token-android", 3), ("conformance-token-android", 1), ("0" * 64, 3), ("0" * 64, 1)]
