"""A fake push provider for tests: records what it is sent and answers from a script.

Shipped with the node (``vault.plugin_api.FakeProvider``) so a plugin author's or an app's tests
can run a node whose deliveries they can see, the way ``MemoryBackend`` stands in for a disk.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from vault.push.provider import (
    Delivered,
    Outcome,
    ProviderContext,
    ProviderOptions,
    PushMessage,
    PushProvider,
    PushRegistration,
)

Script = Callable[[int, PushRegistration, PushMessage], Outcome]


class FakeProvider(PushProvider):
    """Answers the n-th send (from 1) with ``script(n, registration, message)``, by default
    ``Delivered``; ``sent`` holds every (registration, message, time) in order, with the time from
    ``now`` (``trio.current_time`` unless given)."""

    def __init__(
        self,
        options: ProviderOptions | None = None,
        *,
        script: Script | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(options or ProviderOptions())
        self.script: Script = script or (lambda n, r, m: Delivered())
        self.now = now or trio.current_time
        self.sent: list[tuple[PushRegistration, PushMessage, float]] = []
        self.opened = False
        self.closed = False
        self._changed = trio.Event()

    async def open(self, context: ProviderContext) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        self.sent.append((registration, message, self.now()))
        self._changed.set()
        self._changed = trio.Event()
        return self.script(len(self.sent), registration, message)

    def visible(self) -> list[tuple[PushRegistration, PushMessage, float]]:
        """What was sent, without the silent sync hints."""
        return [s for s in self.sent if not s[1].silent]

    async def wait_for(self, count: int, *, silent: bool = False) -> None:
        """Until ``count`` messages (visible ones unless ``silent``) were sent."""
        while len(self.sent if silent else self.visible()) < count:
            await self._changed.wait()
