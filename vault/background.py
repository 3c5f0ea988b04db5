"""The node's background tasks: one nursery the node owns, started with it, joined before close.

Periodic work (expiry, garbage collection, and later push delivery) and work moved off a
response path (catching up an upload's running digest) run here. ``close`` cancels them and waits
until every one has finished (a task in a worker thread finishes its call first) before the
node closes its stores, so no task ever reads a closed store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)

Task = Callable[[], Awaitable[None]]
# Runs a task in the background; False (nothing run) when the node is not serving.
Spawner = Callable[[Task], bool]


class BackgroundTasks:
    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._finished = trio.Event()
        self._started = False

    async def run(self, tasks: list[Task], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run ``tasks`` (and whatever ``spawn`` adds) until ``close``; start with ``nursery.start``."""
        self._started = True
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for task in tasks:
                        nursery.start_soon(task)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self._nursery = None
            self._finished.set()

    def spawn(self, task: Task) -> bool:
        if self._nursery is None:
            return False
        self._nursery.start_soon(task)
        return True

    async def close(self) -> None:
        """Cancel every task and wait until all have ended."""
        if not self._started:
            return
        if self._scope is not None:
            self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self._finished.wait()
