"""A recording push provider and an in-process node that delivers through it (fake clock)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing
from quart_trio.testing import TrioTestApp

from tests.auth_support import bearer, register
from vault.app import VaultApp, create_app
from vault.clock import TrioClock
from vault.config import Config
from vault.plugin_api import FakeProvider
from vault.push.fake import Script

NOTIFY = "/api/mobile/notifications/register"
INBOX = "/api/mobile/notifications"


class Recorder(FakeProvider):
    """The shipped fake provider, timing sends on the node's own (fake) wall clock."""

    def __init__(self, script: Script | None = None) -> None:
        super().__init__(script=script, now=lambda: self.clock.now() if self.clock else 0.0)
        self.clock: TrioClock | None = None


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


Signed = tuple[dict[str, str], str]  # bearer headers, the node's device id


async def phone_and_laptop(client: Any, **preferences: Any) -> tuple[Signed, Signed]:
    """John's phone and laptop, signed in and registered for push with ``preferences``."""
    phone = await sign_in(client, "phone-1")
    laptop = await sign_in(client, "laptop-1")
    await notify(client, phone[0], "phone-1", **preferences)
    await notify(client, laptop[0], "laptop-1", **preferences)
    return phone, laptop


async def notify(client: Any, headers: dict[str, str], device_id: str, **preferences: Any) -> Any:
    body = {"deviceId": device_id, "pushToken": f"token-{device_id}", "platform": "android"}
    if preferences:
        body["preferences"] = preferences
    return await client.post(NOTIFY, headers=headers, json=body)
