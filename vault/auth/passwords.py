"""Password hashing: argon2id with at least OWASP's parameters, always off the event loop.

Hashing costs ~19 MiB of memory and tens of milliseconds of CPU, so every hash or verify runs in
a worker thread behind a ``CapacityLimiter``: a burst of logins queues instead of exhausting a
small machine's memory. A login for an unknown email is verified against a dummy hash so that
"no such account" and "wrong password" take the same time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import argon2
import trio
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1

MIN_PASSWORD_LENGTH = 8

Admit = Callable[[], None]


def make_hasher(*, memory_kib: int = MEMORY_KIB, time_cost: int = TIME_COST) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=argon2.Type.ID,
    )


def hash_password_sync(password: str, hasher: argon2.PasswordHasher | None = None) -> str:
    """Blocking: for the command line, which has no event loop to keep free."""
    return (hasher or make_hasher()).hash(password)


class Passwords:
    """Hash and verify passwords in worker threads, at most ``max_concurrent`` at a time."""

    def __init__(self, max_concurrent: int, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or make_hasher()
        self._limiter = trio.CapacityLimiter(max(1, max_concurrent))
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str, password: str, *, admit: Admit | None = None) -> bool:
        """Whether ``password`` matches; a malformed stored hash counts as a mismatch.

        ``admit`` runs once a hashing slot is free, right before the work, and may raise to refuse:
        a burst of attempts queued behind the limiter is re-checked against the failures recorded
        while it waited, instead of all passing a check made on arrival.
        """
        async with self._limiter:
            if admit is not None:
                admit()
            return await trio.to_thread.run_sync(self._verify_sync, password_hash, password)

    async def prepare(self) -> None:
        """Make the dummy hash ahead of the first login, so that one is not slower either."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    async def burn(self, password: str, *, admit: Admit | None = None) -> None:
        """Spend the time of one verification, for an account that does not exist."""
        await self.prepare()
        assert self._dummy_hash is not None
        await self.verify(self._dummy_hash, password, admit=admit)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            return False
