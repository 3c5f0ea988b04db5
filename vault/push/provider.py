"""The push provider interface: what a plugin in the ``vault.push`` entry-point group implements.

A provider sends one message to one device registration and says how it went: delivered, retry
later (optionally after a delay the service asked for), or the registration is gone (the service
no longer knows that token, so the node unregisters it). Retries, backoff, quiet hours and the
durable outbox live once, in the node, above every provider.

A provider is constructed as ``Provider(options)`` where ``options`` is its own ``[push.<name>]``
table decoded into its ``Options`` struct (unknown keys are refused by name), then opened.
Plugins import all of this from ``vault.plugin_api``; ``check_provider`` there is a smoke test.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

import msgspec


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


class Delivered(msgspec.Struct, frozen=True):
    """The service accepted the message."""


class RetryLater(msgspec.Struct, frozen=True):
    """A transient failure (throttled, unreachable); ``delay`` seconds when the service said."""

    reason: str
    delay: float | None = None


class RegistrationGone(msgspec.Struct, frozen=True):
    """The service no longer knows this registration: the node removes it."""

    reason: str


Outcome = Delivered | RetryLater | RegistrationGone
"""What ``send`` returns: exactly one of the three answers."""


class PushProvider(abc.ABC):
    """Sends messages through one push service. Implementations must be safe for concurrent use."""

    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, options: ProviderOptions) -> None:
        self.options = options

    async def open(self) -> None:  # noqa: B027 - optional: a provider with nothing to acquire keeps it
        """Acquire what sending needs (an HTTP client, credentials); called once at start."""

    async def close(self) -> None:  # noqa: B027 - optional, like open
        """Release what ``open`` acquired, after sends in progress finished."""

    @abc.abstractmethod
    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        """Deliver ``message`` to ``registration``; never raises for a service's answer."""
