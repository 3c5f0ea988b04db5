"""The push provider interface: what a plugin in the ``vault.push`` entry-point group implements.

A provider sends one message to one device registration and says how it went: delivered, retry
later (optionally after a delay the service asked for), the registration is gone (the service no
longer knows that token, so the node unregisters it), or failed for good (logged, not retried).
Retries, backoff, quiet hours and the durable outbox live once, in the node, above every provider.

A provider is constructed as ``Provider(options)`` where ``options`` is its own ``[push.<name>]``
table decoded into its ``Options`` struct (unknown keys are refused by name), then opened with a
``ProviderContext``. Plugins import all of this from ``vault.plugin_api``; ``check_provider``
there is a smoke test.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec

from vault.push.vapid import VapidKey


class ProviderOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of a provider's ``[push.<name>]`` options; a provider with none uses it as is."""


class PushRegistration(msgspec.Struct, frozen=True, kw_only=True):
    """Where to reach one device: its push token (or Web Push subscription JSON) and platform."""

    device_id: str
    platform: Literal["android", "ios", "web"]
    push_token: str


class PushMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One notification for one device; ``silent`` ones only wake the app (a sync hint)."""

    category: Literal["uploads", "shares", "storage", "security", "sync"]
    title: str
    body: str
    created_at: float
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    silent: bool = False


@dataclass(frozen=True, kw_only=True)
class ProviderContext:
    """What the node hands a provider at ``open``.

    ``state_dir`` is a directory of the node's data directory kept for this provider alone
    (created before ``open``), for keys or caches that must survive a restart. ``vapid`` is the
    node's VAPID key pair (RFC 8292), generated at first start; the node publishes its public half
    at ``GET /notifications/webpush-key``, so Web Push subscriptions are made against it.
    """

    name: str
    state_dir: Path
    vapid: VapidKey


class Delivered(msgspec.Struct, frozen=True):
    """The service accepted the message."""


class RetryLater(msgspec.Struct, frozen=True):
    """A transient failure (throttled, unreachable); ``delay`` seconds when the service said."""

    reason: str
    delay: float | None = None


class RegistrationGone(msgspec.Struct, frozen=True):
    """The service no longer knows this registration: the node removes it."""

    reason: str


class Failed(msgspec.Struct, frozen=True):
    """A permanent failure of this one delivery (a refused payload, bad credentials): logged, not
    retried, and no other delivery waits for it."""

    reason: str


Outcome = Delivered | RetryLater | RegistrationGone | Failed
"""What ``send`` returns: exactly one of the four answers."""


class PushProvider(abc.ABC):
    """Sends messages through one push service. Implementations must be safe for concurrent use."""

    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    # Whether the node sends this provider silent "changes available" sync hints (``silent``
    # messages); a provider whose service has no silent message leaves it False.
    sync_hints: ClassVar[bool] = True

    def __init__(self, options: ProviderOptions) -> None:
        self.options = options

    async def open(self, context: ProviderContext) -> None:  # noqa: B027 - optional: nothing to acquire
        """Acquire what sending needs (an HTTP client, credentials); called once at start."""

    async def check_registration(self, registration: PushRegistration) -> str | None:
        """Why this provider cannot use ``registration`` (a one-line reason), or ``None``.

        Called when a device registers, before anything is stored, so a malformed token is the
        client's 400 rather than a failed delivery later. The default accepts every token.
        """
        return None

    async def close(self) -> None:  # noqa: B027 - optional, like open
        """Release what ``open`` acquired, after sends in progress finished."""

    @abc.abstractmethod
    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        """Deliver ``message`` to ``registration``; never raises for a service's answer."""
