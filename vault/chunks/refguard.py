"""Keeps garbage collection from deleting a chunk that an upload is just taking a reference on.

An upload that finds its chunk already stored (deduplicated) takes a reference afterwards; the
node's collector may have decided, in between, that the same chunk is garbage. Uploads take
references under the shared side of this guard and re-check that the chunk still exists; the
collector confirms and deletes under the exclusive side. Both sides are held for moments only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import trio


class RefGuard:
    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._changed = trio.Condition()
        self.sweeping = _Exclusive(self)

    @asynccontextmanager
    async def taking(self) -> AsyncIterator[None]:
        """Shared: many uploads at once; waits while a sweep runs or is waiting."""
        async with self._changed:
            while self._writer or self._writers_waiting:
                await self._changed.wait()
            self._readers += 1
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                async with self._changed:
                    self._readers -= 1
                    self._changed.notify_all()

    async def _acquire_exclusive(self) -> None:
        async with self._changed:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    await self._changed.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    async def _release_exclusive(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._changed:
                self._writer = False
                self._changed.notify_all()


class _Exclusive:
    """The collector's side; reusable, so one object serves every batch of a sweep."""

    def __init__(self, guard: RefGuard) -> None:
        self._guard = guard

    async def __aenter__(self) -> None:
        await self._guard._acquire_exclusive()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._guard._release_exclusive()
