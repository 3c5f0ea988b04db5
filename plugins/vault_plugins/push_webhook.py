"""The ``webhook`` push provider: POSTs each notification as JSON to one URL the operator runs.

The body is a published contract (consumers are written against it), so its keys are fixed:
``category``, ``title``, ``body``, ``pushToken``, ``deviceId``, ``platform``, ``createdAt`` (ISO 8601
UTC, whole seconds) and ``data``. With ``secret`` set, ``X-Vault-Signature: sha256=<hex>`` carries
the HMAC-SHA256 of the exact body bytes, so the consumer can tell the node's requests from forgeries.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime
from typing import Annotated, ClassVar

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

SIGNATURE_HEADER = "X-Vault-Signature"


class WebhookOptions(ProviderOptions):
    """``[push.webhook]``: where to POST, the signing secret, and how long one POST may take."""

    # Empty means "not configured": ``open`` refuses it rather than every send failing later.
    url: Annotated[str, msgspec.Meta(pattern=r"^(https?://\S+)?$")] = ""
    secret: str = ""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0


def iso_utc(created_at: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: whole seconds (truncated), so consumers need not parse fractions."""
    return datetime.fromtimestamp(math.floor(created_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(registration: PushRegistration, message: PushMessage) -> bytes:
    """The contract's JSON body, encoded once: the signature covers exactly these bytes."""
    return msgspec.json.encode(
        {
            "category": message.category,
            "title": message.title,
            "body": message.body,
            "pushToken": registration.push_token,
            "deviceId": registration.device_id,
            "platform": registration.platform,
            "createdAt": iso_utc(message.created_at),
            "data": message.data,
        }
    )


def signature(secret: str, body: bytes) -> str:
    """The ``X-Vault-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookProvider(PushProvider):
    """Delivers to the operator's webhook; its answers are about that URL, never about one device."""

    Options = WebhookOptions
    # A webhook consumer shows what it gets; a content-free "changes available" is noise to it.
    sync_hints: ClassVar[bool] = False

    def __init__(self, options: ProviderOptions) -> None:
        super().__init__(options)
        assert isinstance(options, WebhookOptions)
        self._options = options
        self._client: httpx.AsyncClient | None = None

    async def open(self, context: ProviderContext) -> None:
        if not self._options.url:
            raise ValueError("push.webhook.url is not set")
        try:
            httpx.URL(self._options.url)
        except httpx.InvalidURL:
            raise ValueError("push.webhook.url is not a valid URL") from None
        self._client = open_client(self._options.timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        client = require_open(self._client, "webhook")
        if message.silent:
            return Failed("the webhook takes no silent sync hints")
        try:
            body = payload(registration, message)
        except (msgspec.EncodeError, TypeError):
            return Failed("the message data is not JSON")
        headers = {"Content-Type": "application/json"}
        if self._options.secret:
            headers[SIGNATURE_HEADER] = signature(self._options.secret, body)
        answer = await post(
            client, self._options.url, content=body, headers=headers, within=self._options.timeout, service="webhook"
        )
        if isinstance(answer, RetryLater):
            return answer
        return outcome(answer)


def outcome(response: httpx.Response) -> Outcome:
    """What the webhook's answer means; the body is the operator's and is not quoted."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivered()
    if 300 <= status < 400:
        return Failed(f"webhook answered HTTP {status}, a redirect (not followed): set push.webhook.url to its target")
    if status in (404, 410):
        # Not RegistrationGone: a wrong URL would otherwise unregister every device at once.
        return Failed(f"webhook answered HTTP {status}: is push.webhook.url right?")
    return transient(response, "webhook") or Failed(f"webhook answered HTTP {status}")
