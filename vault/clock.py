"""Wall-clock time for services, injectable so tests drive expiry with Trio's MockClock."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import trio


class Clock:
    """Seconds since the epoch; the default reads the system clock."""

    def now(self) -> float:
        return time.time()


class TrioClock(Clock):
    """Follows ``trio.current_time()`` from a fixed epoch, so ``autojump_clock`` moves it."""

    def __init__(self, epoch: float = 1_700_000_000.0) -> None:
        self._epoch = epoch
        self._base: float | None = None

    def now(self) -> float:
        current = trio.current_time()
        if self._base is None:
            self._base = current
        return self._epoch + (current - self._base)


def rfc3339(ts: float) -> str:
    """``2024-01-20T15:30:00Z``: second precision, UTC, as the API shows timestamps."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 timestamp; ``ValueError`` when malformed."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (use Z for UTC)")
    return value.timestamp()
