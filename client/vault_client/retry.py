"""Retrying what the node may answer later: exponential backoff with full jitter.

Every call the node offers is safe to repeat (chunk PUTs, ``complete``, ``sync/files`` on the same
token, ``conflicts/resolve`` and ``queue/add`` ids are all idempotent by contract), so a lost
answer is simply asked again. Waits are ``trio.sleep`` so tests drive them with a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import trio

from vault_client.errors import NodeError, NodeUnreachable

T = TypeVar("T")

# Answers that mean "not now": the node's disk full or gc racing a chunk (503/507 with
# Retry-After), sign-in throttling (429), a proxy in front of the node (502/504).
RETRY_STATUSES = frozenset({429, 502, 503, 504, 507})


@dataclass
class RetryPolicy:
    attempts: int = 8  # tries in all, the first included
    # Of those, tries that could not even connect: a node that refuses connections is not there,
    # and a command line should say "offline" in a moment rather than after half a minute.
    connect_attempts: int = 3
    base: float = 0.25  # seconds; the n-th wait is uniform in [0, min(cap, base * 2**n)]
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Full jitter (AWS's "exponential backoff and jitter"): spreads clients that failed
        together; a node's ``Retry-After`` is a floor."""
        wait = self.rng.uniform(0, min(self.cap, self.base * (2**attempt)))
        return max(wait, retry_after or 0.0)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError | NodeUnreachable):
        return True
    return isinstance(exc, NodeError) and exc.status in RETRY_STATUSES and exc.code != "STORAGE_QUOTA_EXCEEDED"


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """``call()`` until it succeeds, a non-transient error, or the policy's attempts run out
    (then the last error; a transport error becomes ``NodeUnreachable``)."""
    attempt = 0
    refused = 0
    while True:
        try:
            return await call()
        except (httpx.TransportError, NodeError, NodeUnreachable) as exc:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                refused += 1
            if not is_transient(exc) or attempt + 1 >= policy.attempts or refused >= policy.connect_attempts:
                if isinstance(exc, httpx.TransportError):
                    raise NodeUnreachable(f"no answer from the node: {exc!r}") from exc
                raise
            wait = policy.delay(attempt, exc.retry_after if isinstance(exc, NodeError) else None)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            attempt += 1
            await trio.sleep(wait)
