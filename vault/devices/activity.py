"""Coarse ``lastActiveAt``: at most one write per device per interval, decided in memory (pure)."""

from __future__ import annotations

ACTIVITY_INTERVAL = 60.0
_MAX_TRACKED = 100_000


class ActivityTracker:
    """Remembers when each device's activity was last written, so most requests write nothing."""

    def __init__(self, interval: float = ACTIVITY_INTERVAL, max_tracked: int = _MAX_TRACKED) -> None:
        self.interval = interval
        self.max_tracked = max_tracked
        self._written: dict[str, float] = {}

    def due(self, device_id: str, now: float, stored: float) -> bool:
        """Whether to write ``now`` for this device; claims the write when it is due."""
        last = max(self._written.get(device_id, 0.0), stored)
        if now - last < self.interval:
            return False
        if device_id not in self._written and len(self._written) >= self.max_tracked:
            self._written.pop(next(iter(self._written)))
        self._written[device_id] = now
        return True

    def forget(self, device_id: str) -> None:
        self._written.pop(device_id, None)
