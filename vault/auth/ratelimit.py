"""Failed-login limiting: a sliding one-minute window per key, in bounded memory (pure, no I/O).

Only failures are counted, so successful logins are never slowed. Each key keeps at most
``limit`` timestamps, and at most ``max_keys`` keys are kept (least recently touched evicted
first), so a flood of distinct emails or addresses costs a fixed amount of memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

DEFAULT_MAX_KEYS = 10_000


class FailureWindow:
    """Counts failures per key over the last ``window`` seconds."""

    def __init__(self, limit: int, *, window: float = 60.0, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # Attempts admitted and still being checked: they count against the limit until they end,
        # so a burst of parallel attempts gets no more checks than the limit allows.
        self._pending: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, key: str, now: float) -> int | None:
        """Whole seconds until ``key`` may try again, or ``None`` when it is not limited."""
        if self.limit <= 0:
            return None
        stamps = self._live(key, now)
        failures = len(stamps) if stamps is not None else 0
        if failures + self._pending.get(key, 0) < self.limit:
            return None
        if stamps is None or failures < self.limit:
            return 1  # limited by attempts still being checked: they end within moments
        return max(1, math.ceil(stamps[0] + self.window - now))

    def begin(self, key: str) -> None:
        if self.limit > 0:
            self._pending[key] = self._pending.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._pending.get(key, 0) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)

    def record_failure(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        stamps = self._live(key, now)
        if stamps is None:
            stamps = deque(maxlen=self.limit)
            self._failures[key] = stamps
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        stamps.append(now)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)

    def _live(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        self._failures.move_to_end(key)
        return stamps


class LoginLimiter:
    """Failed logins per client address and per account; either one being over the limit refuses."""

    def __init__(self, limit: int, *, window: float = 60.0, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.by_address = FailureWindow(limit, window=window, max_keys=max_keys)
        self.by_account = FailureWindow(limit, window=window, max_keys=max_keys)

    def retry_after(self, address: str, account: str | None, now: float) -> int | None:
        waits = [self.by_address.retry_after(address, now)]
        if account is not None:
            waits.append(self.by_account.retry_after(account, now))
        limited = [w for w in waits if w is not None]
        return max(limited) if limited else None

    def record_failure(self, address: str, account: str | None, now: float) -> None:
        self.by_address.record_failure(address, now)
        if account is not None:
            self.by_account.record_failure(account, now)

    def admit(self, address: str, account: str | None, now: float) -> int | None:
        """Reserve a place for one attempt (``None``), or the seconds to wait; end it with
        ``finish`` once its outcome is recorded."""
        wait = self.retry_after(address, account, now)
        if wait is None:
            self.by_address.begin(address)
            if account is not None:
                self.by_account.begin(account)
        return wait

    def finish(self, address: str, account: str | None) -> None:
        self.by_address.end(address)
        if account is not None:
            self.by_account.end(account)

    def record_success(self, account: str) -> None:
        """A correct password clears the account's count (never the address's)."""
        self.by_account.reset(account)
