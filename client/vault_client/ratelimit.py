"""A token bucket shared by every transfer of a client (``--limit-rate``)."""

from __future__ import annotations

import trio


class RateLimit:
    """At most ``rate`` bytes a second on average, bursts of at most ``burst`` bytes.

    ``take(n)`` waits until ``n`` bytes may go; callers take slices (64 KiB), so several
    streams share the rate fairly. Time is Trio's, so a fake clock can drive it in tests."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(64 * 1024, int(rate / 4)))
        self._tokens = self.burst
        self._stamp: float | None = None
        self._lock = trio.Lock()  # first come, first served: no stream starves

    async def take(self, n: int) -> None:
        async with self._lock:
            now = trio.current_time()
            if self._stamp is None:
                self._stamp = now
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            if self._tokens < 0:
                # In debt: wait until it is paid back (a slice larger than the burst still goes).
                await trio.sleep(-self._tokens / self.rate)
                self._stamp = trio.current_time()
                self._tokens = 0.0
