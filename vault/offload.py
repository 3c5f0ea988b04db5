"""The one rule for what runs on the event loop and what goes to a worker thread.

The event loop only ever does small things: parsing, routing, lookups of a few records. Anything
that could take longer goes to a worker thread, under one of two limiters the node owns (not
Trio's global one, which every library shares):

- ``hashing``: CPU-bound digests of pieces larger than ``INLINE_HASH_LIMIT`` (BLAKE3 and SHA-256
  release the GIL, so these use the cores; as many threads as there are cores);
- ``blocking``: metadata scans, large decodes and compression, and other blocking calls.

Below ``INLINE_HASH_LIMIT`` a thread hand-off costs more than the hashing (PERFORMANCE.md), so
small pieces are hashed inline; the store gathers pieces to at least 1 MiB, so a body's bytes are
hashed in threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, TypeVarTuple

import trio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INLINE_HASH_LIMIT = 64 * 1024


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...


def _update_all(hashers: Sequence[Hasher], piece: bytes) -> None:
    for hasher in hashers:
        hasher.update(piece)


def _update_pieces(hashers: Sequence[Hasher], pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        _update_all(hashers, piece)


class Offload:
    """The node's worker-thread limiters (one per node; tools and tests make their own)."""

    def __init__(self, *, hash_threads: int | None = None, blocking_threads: int = 8) -> None:
        self.hashing = trio.CapacityLimiter(hash_threads or max(2, os.cpu_count() or 2))
        self.blocking = trio.CapacityLimiter(blocking_threads)

    async def hash(self, hashers: Sequence[Hasher], piece: bytes) -> None:
        """Feed ``piece`` to every hasher: inline when small, else in one worker-thread hop."""
        if len(piece) * len(hashers) <= INLINE_HASH_LIMIT:
            _update_all(hashers, piece)
        else:
            await trio.to_thread.run_sync(_update_all, hashers, piece, limiter=self.hashing)

    async def hash_pieces(self, hashers: Sequence[Hasher], pieces: Sequence[bytes]) -> None:
        """Feed several pieces, in order, to every hasher in one worker-thread hop."""
        if sum(len(piece) for piece in pieces) * len(hashers) <= INLINE_HASH_LIMIT:
            for piece in pieces:
                _update_all(hashers, piece)
        else:
            await trio.to_thread.run_sync(_update_pieces, hashers, pieces, limiter=self.hashing)

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a blocking call (a scan, a large decode, compression) in a worker thread."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.blocking)
