"""Helpers shared by every LMDB environment the node opens (metadata, the lmdb chunk backend)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadGate:
    """Readers share; growing the map is exclusive (LMDB forbids live transactions during it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._resizing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()

    def try_shared(self) -> bool:
        """Take a shared hold only if that needs no wait (release it with ``release_shared``).

        The lock itself is only ever held for a few instructions, so acquiring it here does not
        wait on anything slow; what can take long (a resize waiting for readers) is refused."""
        with self._cond:
            if self._resizing:
                return False
            self._readers += 1
            return True

    def release_shared(self) -> None:
        """Leave a shared hold (taken with ``try_shared``/``reacquire_shared``, or one taken with
        ``shared()`` left early and later taken back with ``reacquire_shared``)."""
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def reacquire_shared(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1
