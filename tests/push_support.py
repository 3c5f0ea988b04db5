"""A recording push provider and an in-process node that delivers through it (fake clock)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing
from quart_trio.testing import TrioTestApp

from tests.auth_support import bearer, register
from vault.app import VaultApp, create_app
from vault.clock import TrioClock
from vault.config import Config
from vault.plugin_api import (
    Delivered,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
)

NOTIFY = "/api/mobile/notifications/register"
INBOX = "/api/mobile/notifications"


class Recorder(PushProvider):
    """Answers each send with ``script(n, registration, message)`` (default: delivered) and keeps
    what it was sent, with the node's wall-clock time of each send."""

    def __init__(self, script: Callable[[int, PushRegistration, PushMessage], Outcome] | None = None) -> None:
        super().__init__(ProviderOptions())
        self.script = script or (lambda n, r, m: Delivered())
        self.sent: list[tuple[PushRegistration, PushMessage, float]] = []
        self.opened = False
        self.clock: TrioClock | None = None
        self._changed = trio.Event()

    async def open(self, context: ProviderContext) -> None:
        self.opened = True

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        now = self.clock.now() if self.clock else 0.0
        self.sent.append((registration, message, now))
        self._changed.set()
        self._changed = trio.Event()
        return self.script(len(self.sent), registration, message)

    def visible(self) -> list[tuple[PushRegistration, PushMessage, float]]:
        return [s for s in self.sent if not s[1].silent]

    async def wait_for(self, count: int, *, silent: bool = False) -> None:
        while len(self.sent if silent else self.visible()) < count:
            await self._changed.wait()


@asynccontextmanager
async def push_node(
    config: Config, recorder: Recorder, mock: trio.testing.MockClock, *, epoch: float = 1_700_000_000.0
) -> AsyncIterator[VaultApp]:
    """A node whose ``log`` provider is ``recorder``, on the ``idle_jump_clock`` fixture's clock:
    time leaps only once worker threads (LMDB commits, password hashes) are done, so a delivery
    due in nine hours is not sent while a sign-in is still hashing."""
    clock = TrioClock(epoch)
    recorder.clock = clock
    app = create_app(config, clock=clock, periodic=False)
    app.node.providers["log"] = recorder  # the same dict the runner and the service read
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = math.inf
    threshold, mock.autojump_threshold = mock.autojump_threshold, math.inf
    try:
        async with TrioTestApp(app, startup_timeout=math.inf, shutdown_timeout=math.inf):  # type: ignore[arg-type]
            mock.autojump_threshold = threshold
            yield app
            mock.autojump_threshold = math.inf  # shutdown does real disk work in threads too
    finally:
        mock.autojump_threshold = threshold


async def sign_in(client: Any, device_id: str, email: str = "john@example.com") -> tuple[dict[str, str], str]:
    """Register ``device_id`` and answer its bearer headers and the node's device id."""
    body = await register(client, email, device_id=device_id)
    return bearer(body), str(body["device"]["id"])


async def notify(client: Any, headers: dict[str, str], device_id: str, **preferences: Any) -> Any:
    body = {"deviceId": device_id, "pushToken": f"token-{device_id}", "platform": "android"}
    if preferences:
        body["preferences"] = preferences
    return await client.post(NOTIFY, headers=headers, json=body)
