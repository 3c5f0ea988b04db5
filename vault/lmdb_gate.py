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

    def release_shared(self) -> None:
        """Leave a shared hold taken with ``shared()`` early (paired with ``reacquire_shared``)."""
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def reacquire_shared(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1
