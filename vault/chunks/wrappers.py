"""Backends that wrap any ``ChunkBackend``: retries, a concurrency limit, fault injection.

Each wrapper is itself a ``ChunkBackend`` and passes the conformance suite around a conforming
backend, so they stack: ``RetryingBackend(LimitedBackend(MyObjectStore(...), 16))``. A plugin
composes them in its own class (they take a backend, not a path and options, so they are not
entry points themselves); tests use ``FaultyBackend`` to make any backend misbehave on cue.
"""

from __future__ import annotations

import errno
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import trio

from vault.chunks.backend import BackendStats, ChunkBackend, ChunkWriter
from vault.chunks.ids import ChunkId

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every call a wrapper sees by name: the backend's methods and its writers' (``write`` etc.).
METHODS = frozenset(
    {
        "open",
        "close",
        "begin_put",
        "read",
        "has_many",
        "delete_many",
        "list_ids",
        "stat",
        "stats",
        "check",
        "write",
        "commit",
        "commit_if_absent",
        "abort",
    }
)


async def _aclose(source: AsyncIterator[bytes]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


class BackendWrapper(ChunkBackend):
    """Passes every call to ``inner`` through ``around(method, call)``; subclasses override it.

    Batches are turned into lists first: a wrapper may call the inner backend more than once, and
    the caller may have passed a generator.
    """

    def __init__(self, inner: ChunkBackend) -> None:
        self.inner = inner
        self.name = inner.name

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call()

    @property
    def blind_put_is_cheap(self) -> bool:
        return self.inner.blind_put_is_cheap

    async def open(self) -> None:
        await self.around("open", self.inner.open)

    async def close(self) -> None:
        await self.around("close", self.inner.close)

    async def begin_put(self) -> ChunkWriter:
        return _WrappedWriter(self, await self.around("begin_put", self.inner.begin_put))

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        """Each piece is fetched through ``around("read", …)``: held only while it is fetched."""
        source = self.inner.read(chunk_id)
        try:
            while True:
                try:
                    piece = await self.around("read", source.__anext__)
                except StopAsyncIteration:
                    return
                yield piece
        finally:
            await _aclose(source)

    async def read_range(self, chunk_id: ChunkId, start: int, length: int) -> bytes:
        return await self.around("read_range", lambda: self.inner.read_range(chunk_id, start, length))

    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        wanted = list(chunk_ids)
        return await self.around("has_many", lambda: self.inner.has_many(wanted))

    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        doomed = list(chunk_ids)
        return await self.around("delete_many", lambda: self.inner.delete_many(doomed))

    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        return await self.around("list_ids", lambda: self.inner.list_ids(after, limit))

    async def stat(self, chunk_id: ChunkId) -> int | None:
        return await self.around("stat", lambda: self.inner.stat(chunk_id))

    async def stats(self) -> BackendStats:
        return await self.around("stats", self.inner.stats)

    async def check(self) -> None:
        await self.around("check", self.inner.check)


class _WrappedWriter(ChunkWriter):
    def __init__(self, owner: BackendWrapper, inner: ChunkWriter) -> None:
        self._owner = owner
        self._inner = inner

    async def write(self, data: bytes) -> None:
        await self._owner.around("write", lambda: self._inner.write(data))

    async def commit(self, chunk_id: ChunkId) -> None:
        try:
            await self._owner.around("commit", lambda: self._inner.commit(chunk_id))
        except BaseException:
            # A wrapper may fail before the inner commit ran; the interface promises that after a
            # failed commit nothing is left staged (abort after a failed commit is a no-op).
            with trio.CancelScope(shield=True):
                await self._inner.abort()
            raise

    async def commit_if_absent(self, chunk_id: ChunkId) -> bool:
        try:
            return await self._owner.around("commit_if_absent", lambda: self._inner.commit_if_absent(chunk_id))
        except BaseException:
            with trio.CancelScope(shield=True):  # as for ``commit``: a failure leaves nothing staged
                await self._inner.abort()
            raise

    async def abort(self) -> None:
        await self._owner.around("abort", self._inner.abort)


# -- retries -------------------------------------------------------------------------------------

TRANSIENT: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)


class RetryingBackend(BackendWrapper):
    """Retries calls that fail with a ``transient`` exception, with exponential backoff and jitter.

    Before retry ``n`` (1, 2, …) it sleeps ``min(max_delay, base_delay * 2**(n-1))`` scaled by a
    random factor in ``(1 - jitter, 1]``; with ``jitter <= 0.5`` each wait is at least as long as
    the one before. A call is tried at most ``attempts`` times, then its last error is raised.
    ``KeyError`` (an absent chunk) is an answer, not a failure, and is not transient by default.

    Retried: every call that can be repeated safely: ``open``, ``begin_put``, the reads and
    listings, ``delete_many`` (its count may then miss chunks the failed attempt deleted), and
    ``read``, which restarts the stream and skips the bytes it already gave out (a chunk's bytes
    never change under its id). Not retried: ``write`` and ``commit`` (after a failure the staged
    bytes are in an unknown state or gone; the caller retries the whole put), ``abort`` and
    ``close`` (the inner writer or backend is finished either way). A backend whose writers keep
    their staged bytes until a commit succeeds (an object store uploading a buffered chunk) may
    name ``commit`` and ``commit_if_absent`` in ``also_retry``.
    """

    _RETRIED = frozenset({"open", "begin_put", "has_many", "delete_many", "list_ids", "stat", "stats", "check"})

    def __init__(
        self,
        inner: ChunkBackend,
        *,
        attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 5.0,
        jitter: float = 0.5,
        transient: tuple[type[BaseException], ...] = TRANSIENT,
        rng: random.Random | None = None,
        also_retry: Iterable[str] = (),
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.transient = transient
        self.rng = rng or random.Random()
        self.retries: Counter[str] = Counter()  # retries made, by method (tests, diagnostics)
        extra = frozenset(also_retry)
        if not extra <= METHODS:
            raise ValueError(f"no backend method named {', '.join(sorted(extra - METHODS))}")
        self.retried = self._RETRIED | extra

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * (1 - self.jitter * self.rng.random())

    async def _wait(self, method: str, failures: int, error: BaseException) -> None:
        """Sleep before the next try, or re-raise ``error`` when no attempt is left."""
        if failures >= self.attempts:
            raise error
        delay = self.backoff(failures)
        self.retries[method] += 1
        log.warning("chunk backend %s failed (%s); retry %d in %.2fs", method, error, failures, delay)
        await trio.sleep(delay)

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        if method not in self.retried:
            return await call()
        failures = 0
        while True:
            try:
                return await call()
            except self.transient as exc:
                failures += 1
                await self._wait(method, failures, exc)

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        delivered = failures = 0
        while True:
            skip = delivered
            source = self.inner.read(chunk_id)
            error: BaseException | None = None
            try:
                while True:
                    # Only the inner fetch is retried; an error thrown in at ``yield`` is the caller's.
                    try:
                        piece = await source.__anext__()
                    except StopAsyncIteration:
                        return
                    except self.transient as exc:
                        error = exc
                        break
                    if skip:
                        if len(piece) <= skip:
                            skip -= len(piece)
                            continue
                        piece, skip = piece[skip:], 0
                    delivered += len(piece)
                    yield piece
            finally:
                await _aclose(source)  # before the backoff: a failed stream holds nothing while we wait
            assert error is not None  # the loop above ends only by returning or on an error
            failures += 1
            await self._wait("read", failures, error)


# -- a concurrency limit -------------------------------------------------------------------------


class LimitedBackend(BackendWrapper):
    """At most ``limit`` calls into ``inner`` at once (a ``trio.CapacityLimiter`` around each).

    ``limit`` may be a limiter shared with other backends. A stream holds a token only while it
    fetches a piece, so a paused download never starves the others.
    """

    def __init__(self, inner: ChunkBackend, limit: int | trio.CapacityLimiter) -> None:
        super().__init__(inner)
        self.limiter = limit if isinstance(limit, trio.CapacityLimiter) else trio.CapacityLimiter(limit)

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.limiter:
            return await call()


# -- fault injection -----------------------------------------------------------------------------


def injected_fault() -> OSError:
    """The default injected error: an I/O error (transient for ``RetryingBackend``)."""
    return OSError(errno.EIO, "injected fault")


@dataclass
class _Fault:
    method: str
    error: Callable[[], BaseException]
    nth: int | None = None  # fail exactly this call (1-based count of the method's calls)
    probability: float = 0.0  # else fail each call with this probability
    delay: float = 0.0  # stall every call this long first


class FaultyBackend(BackendWrapper):
    """Makes ``inner`` fail or stall on cue, deterministically (a seeded ``random.Random``).

    ``calls`` counts every call by method, including the writers' ``write``/``commit``/``abort``;
    ``read`` counts once per stream and fails or stalls before its first piece. An injected fault
    raises before the inner call runs (a failed ``commit`` still leaves nothing staged).
    """

    def __init__(self, inner: ChunkBackend, *, rng: random.Random | None = None) -> None:
        super().__init__(inner)
        self.rng = rng or random.Random(0)
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()  # faults raised, by method
        self._faults: list[_Fault] = []

    def _add(self, fault: _Fault) -> None:
        if fault.method not in METHODS:
            raise ValueError(f"no backend method named {fault.method!r} (one of {', '.join(sorted(METHODS))})")
        self._faults.append(fault)

    def fail_call(self, method: str, nth: int, error: Callable[[], BaseException] = injected_fault) -> None:
        """Raise ``error()`` from the ``nth`` call of ``method`` (counted since construction)."""
        self._add(_Fault(method, error, nth=nth))

    def fail_randomly(
        self, method: str, probability: float, error: Callable[[], BaseException] = injected_fault
    ) -> None:
        """Raise ``error()`` from each call of ``method`` with ``probability``."""
        self._add(_Fault(method, error, probability=probability))

    def stall(self, method: str, seconds: float) -> None:
        """Delay every call of ``method`` by ``seconds`` (``trio.sleep``: use a fake clock in tests)."""
        self._add(_Fault(method, injected_fault, delay=seconds))

    def clear(self) -> None:
        """Remove every fault; calls keep being counted."""
        self._faults.clear()

    async def _strike(self, method: str) -> None:
        self.calls[method] += 1
        count = self.calls[method]
        for fault in [f for f in self._faults if f.method == method]:
            if fault.delay:
                await trio.sleep(fault.delay)
            if fault.nth == count or (fault.probability and self.rng.random() < fault.probability):
                self.injected[method] += 1
                raise fault.error()

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        await self._strike(method)
        return await call()

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        await self._strike("read")
        source = self.inner.read(chunk_id)
        try:
            async for piece in source:
                yield piece
        finally:
            await _aclose(source)
