"""Limits on transfers moving bytes at once: per account and for the whole node.

Every download, chunk PUT and tus PATCH holds a slot while its bytes move. One account beyond its
share is told ``429 RATE_LIMIT_EXCEEDED`` (its own phones are asking too much), the node beyond
its total ``503 SERVICE_UNAVAILABLE`` (everyone shares the load), both with ``Retry-After``, so a
flood of connections can neither exhaust memory and file descriptors nor starve other users.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vault import errors


class TransferLimits:
    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.active = 0
        self._by_user: dict[str, int] = {}

    def take(self, user_id: str) -> None:
        """Take a slot for ``user_id`` or raise the answer that says to come back later."""
        if self.total > 0 and self.active >= self.total:
            raise errors.ServiceUnavailable(
                "The node is moving as many transfers as it can; try again shortly",
                headers={"Retry-After": "2"},
            )
        mine = self._by_user.get(user_id, 0)
        if self.per_user > 0 and mine >= self.per_user:
            raise errors.RateLimitExceeded(
                1, f"At most {self.per_user} uploads and downloads at once per account; try again shortly"
            )
        self._by_user[user_id] = mine + 1
        self.active += 1

    def give(self, user_id: str) -> None:
        left = self._by_user.get(user_id, 0) - 1
        if left > 0:
            self._by_user[user_id] = left
        else:
            self._by_user.pop(user_id, None)  # an account with nothing moving costs nothing
        self.active = max(0, self.active - 1)

    @contextmanager
    def slot(self, user_id: str) -> Iterator[None]:
        self.take(user_id)
        try:
            yield
        finally:
            self.give(user_id)

    def of(self, user_id: str) -> int:
        return self._by_user.get(user_id, 0)
