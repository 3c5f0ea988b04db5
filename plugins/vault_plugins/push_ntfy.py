"""The ``ntfy`` push provider: publishes to a device's ntfy topic (https://docs.ntfy.sh/publish/).

A device registers its ntfy topic name as its push token; the ntfy app on the phone subscribes to
that topic. Messages are published as JSON to the server's root URL ("Publish as JSON"), so the
topic never appears in a URL (and so never in an HTTP log line).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import httpx
import msgspec

from vault.plugin_api import (
    Delivered,
    Failed,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
    RetryLater,
)
from vault_plugins._push_common import open_client, post, require_open, transient

# ntfy's topic rule (its topicRegex) and its default message-size-limit, in bytes of UTF-8.
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
MESSAGE_LIMIT = 4096
ELLIPSIS = "…"

# ntfy priorities: 1 min, 3 default, 4 high, 5 max.
SECURITY_PRIORITY = 4
SYNC_PRIORITY = 1
SYNC_TEXT = "changes available"


class NtfyOptions(ProviderOptions):
    """``[push.ntfy]``: the server, its access token, a prefix for every topic, the priority."""

    server: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$")] = "https://ntfy.sh"
    token: str = ""
    # Prepended to each device's topic; together they must still be a valid ntfy topic.
    topic_prefix: Annotated[str, msgspec.Meta(pattern=r"^[-_A-Za-z0-9]{0,63}$")] = ""
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


def trim_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` if its UTF-8 fits in ``limit`` bytes, else its longest prefix that fits with "…".

    Beyond the limit ntfy turns the message into an attachment (or refuses it when attachments are
    off), so the phone would show a file instead of the text. Cutting the bytes can leave one
    incomplete character at the end; decoding with ``errors="ignore"`` drops exactly that one.
    """
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    return encoded[:room].decode(errors="ignore") + ELLIPSIS


def ntfy_error(response: httpx.Response, *secrets: str) -> str:
    """ntfy's own error text (its JSON ``error`` field), shortened and with ``secrets`` masked."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return ""
    text = body.get("error") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:200]


class NtfyProvider(PushProvider):
    """Publishes each message to ``topic_prefix + push_token`` on the configured ntfy server."""

    Options = NtfyOptions
    # A topic message can be a data wake-up: the app sees the "sync" tag and syncs.
    sync_hints: ClassVar[bool] = True

    def __init__(self, options: ProviderOptions) -> None:
        super().__init__(options)
        assert isinstance(options, NtfyOptions)
        self._options = options
        # JSON publishing goes to the root of the server (which may live under a path prefix).
        self._url = options.server.rstrip("/") + "/"
        self._client: httpx.AsyncClient | None = None

    async def open(self, context: ProviderContext) -> None:
        try:
            httpx.URL(self._url)
        except httpx.InvalidURL:
            raise ValueError("push.ntfy.server is not a valid URL") from None
        self._client = open_client(self._options.timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check_registration(self, registration: PushRegistration) -> str | None:
        if TOPIC.fullmatch(self._options.topic_prefix + registration.push_token):
            return None
        most = 64 - len(self._options.topic_prefix)
        return f"the push token must be an ntfy topic: 1-{most} letters, digits, '-' or '_'"

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        client = require_open(self._client, "ntfy")
        topic = self._options.topic_prefix + registration.push_token
        if not TOPIC.fullmatch(topic):
            return Failed("the push token is not an ntfy topic")
        headers = {"Content-Type": "application/json"}
        if self._options.token:
            headers["Authorization"] = f"Bearer {self._options.token}"
        answer = await post(
            client,
            self._url,
            content=msgspec.json.encode(self.publication(topic, message)),
            headers=headers,
            within=self._options.timeout,
            service="ntfy",
        )
        if isinstance(answer, RetryLater):
            return answer
        return self.outcome(answer, topic)

    def publication(self, topic: str, message: PushMessage) -> dict[str, Any]:
        """The "Publish as JSON" body for one message."""
        if message.silent:
            return {"topic": topic, "title": "", "message": SYNC_TEXT, "priority": SYNC_PRIORITY, "tags": ["sync"]}
        priority = self._options.priority
        if message.category == "security":
            # At least high: an operator who made everything max (5) keeps security at max too.
            priority = max(priority, SECURITY_PRIORITY)
        return {
            "topic": topic,
            "title": message.title,
            "message": trim_message(message.body),
            "priority": priority,
            "tags": [message.category],
        }

    def outcome(self, response: httpx.Response, topic: str) -> Outcome:
        """What ntfy's answer means. Topics spring into existence on publish, so no answer says
        a device is gone: 404/410 mean the server URL is wrong, and fail this one delivery."""
        status = response.status_code
        if 200 <= status < 300:
            return Delivered()
        detail = ntfy_error(response, topic, self._options.token)
        if status in (401, 403):
            if self._options.token:
                return Failed(f"ntfy refused the access token (HTTP {status}): check push.ntfy.token")
            return Failed(f"ntfy refused to publish without an access token (HTTP {status}): set push.ntfy.token")
        if status in (404, 410):
            return Failed(f"ntfy answered HTTP {status}: is push.ntfy.server an ntfy server?")
        if 300 <= status < 400:
            return Failed(f"ntfy answered HTTP {status}, a redirect (not followed): set push.ntfy.server to its target")
        suffix = f": {detail}" if detail else ""
        return transient(response, "ntfy", detail) or Failed(f"ntfy answered HTTP {status}{suffix}")
