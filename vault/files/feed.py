"""The per-user change feed: wakes whoever waits on a user once a change to their files commits.

A long-polling phone (``sync/status?wait=N``) or the push sender watches a user; the file-change
path publishes after its transaction committed. A watcher costs one ``trio.Event`` shared by
everyone watching the same user, no thread; a user nobody watches costs nothing.

Watch first, then read: a change that commits after ``watch`` began wakes the watcher even if it
landed before the watcher got round to ``wait``, so nothing slips between reading the journal head
and starting to wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio


class Watch:
    """One watcher's view: ``wait`` returns once a change was published after the watch began."""

    def __init__(self, event: trio.Event) -> None:
        self._event = event

    @property
    def changed(self) -> bool:
        return self._event.is_set()

    async def wait(self, seconds: float) -> bool:
        """True when a change arrived, False when ``seconds`` passed first."""
        with trio.move_on_after(seconds):
            await self._event.wait()
        return self._event.is_set()


class ChangeFeed:
    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._watchers: dict[str, int] = {}
        self._listeners: list[Callable[[str], None]] = []

    def on_publish(self, listener: Callable[[str], None]) -> None:
        """Also call ``listener(user_id)`` after each change commits (storage threshold checks)."""
        self._listeners.append(listener)

    @contextmanager
    def watch(self, user_id: str) -> Iterator[Watch]:
        event = self._events.get(user_id)
        if event is None:
            event = self._events[user_id] = trio.Event()
        self._watchers[user_id] = self._watchers.get(user_id, 0) + 1
        try:
            yield Watch(event)
        finally:
            left = self._watchers[user_id] - 1
            if left:
                self._watchers[user_id] = left
            else:
                # Nobody watches this user any more: forget it, so the feed stays as small as
                # the set of users someone is waiting on.
                del self._watchers[user_id]
                self._events.pop(user_id, None)

    def publish(self, user_id: str) -> None:
        """A change for ``user_id`` committed (watchers re-read the journal to learn what)."""
        for listener in self._listeners:
            listener(user_id)
        event = self._events.get(user_id)
        if event is None:
            return
        event.set()
        # Later watchers wait for the next change, not this one.
        self._events[user_id] = trio.Event()

    def watching(self) -> int:
        """How many users someone is waiting on (a gauge for metrics and tests)."""
        return len(self._watchers)
