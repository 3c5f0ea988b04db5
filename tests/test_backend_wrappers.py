"""Retry, concurrency-limit and fault-injection wrappers: conformance, and their behaviour on a fake clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from vault.chunks import ChunkStore, conformance
from vault.chunks.backend import ChunkBackend
from vault.chunks.conformance import CHECKS, Check, check_name, content, digest, memory_harness, read_backend, run_all
from vault.chunks.ids import ChunkId
from vault.chunks.memory import MemoryBackend, MemoryOptions
from vault.chunks.wrappers import BackendWrapper, FaultyBackend, LimitedBackend, RetryingBackend

T = TypeVar("T")

ABSENT = digest(b"absent")


def fake_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- conformance ---------------------------------------------------------------------------------


def flaky_then_retried(backend: ChunkBackend) -> ChunkBackend:
    """Random transient faults on every retried call, absorbed by the retry wrapper above them."""
    faulty = FaultyBackend(backend, rng=random.Random(3))
    for method in ("open", "begin_put", "read", "has_many", "delete_many", "list_ids", "stat", "stats", "check"):
        faulty.fail_randomly(method, 0.15)
    return RetryingBackend(faulty, attempts=8, rng=random.Random(4))


WRAPS: dict[str, Callable[[ChunkBackend], ChunkBackend]] = {
    "retrying": lambda backend: RetryingBackend(backend),
    "limited": lambda backend: LimitedBackend(backend, 2),
    "faulty-idle": lambda backend: FaultyBackend(backend),
    "flaky-then-retried": flaky_then_retried,
}


@pytest.mark.parametrize("check", CHECKS, ids=check_name)
@pytest.mark.parametrize("wrap", list(WRAPS), ids=str)
def test_each_wrapper_conforms_around_the_memory_backend(wrap: str, check: Check) -> None:
    # A fake clock: the stacked retry wrapper sleeps between attempts, and no test sleeps for real.
    trio.run(check, memory_harness(WRAPS[wrap]), clock=fake_clock())


BLIND_CHECKS = [conformance.check_put_of_a_stored_chunk, conformance.check_corrupt_chunk_replaced_by_a_good_put]


@pytest.mark.parametrize("check", [*BLIND_CHECKS, conformance.check_concurrent_puts], ids=check_name)
@pytest.mark.parametrize("wrap", list(WRAPS), ids=str)
def test_each_wrapper_passes_on_blind_puts(wrap: str, check: Check) -> None:
    """Over a backend the store puts to without asking first: the flag and ``commit_if_absent``
    go through every wrapper."""
    harness = memory_harness(WRAPS[wrap], options=MemoryOptions(blind_put=True))
    trio.run(check, harness, clock=fake_clock())


# -- retries -------------------------------------------------------------------------------------


class Timed(BackendWrapper):
    """Records when each call reached the backend below."""

    def __init__(self, inner: ChunkBackend) -> None:
        super().__init__(inner)
        self.times: dict[str, list[float]] = {}

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        self.times.setdefault(method, []).append(trio.current_time())
        return await call()


async def opened_stack(**retry: object) -> tuple[RetryingBackend, Timed, FaultyBackend]:
    faulty = FaultyBackend(MemoryBackend())
    timed = Timed(faulty)
    retrying = RetryingBackend(timed, rng=random.Random(1), **retry)  # type: ignore[arg-type]
    await retrying.open()
    return retrying, timed, faulty


async def test_a_transient_failure_is_retried_with_growing_backoff(autojump_clock: trio.testing.MockClock) -> None:
    retrying, timed, faulty = await opened_stack(attempts=5, base_delay=0.1, max_delay=10.0)
    for nth in (1, 2, 3):
        faulty.fail_call("stat", nth)
    assert await retrying.stat(ABSENT) is None
    assert faulty.calls["stat"] == 4 and faulty.injected["stat"] == 3 and retrying.retries["stat"] == 3
    times = timed.times["stat"]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert waits == sorted(waits) and waits[0] < waits[1] < waits[2]
    for retry, wait in enumerate(waits, start=1):
        ceiling = 0.1 * 2 ** (retry - 1)
        assert ceiling / 2 <= wait <= ceiling  # jitter 0.5: between half and all of the ceiling


async def test_backoff_stops_growing_at_max_delay(autojump_clock: trio.testing.MockClock) -> None:
    retrying, timed, faulty = await opened_stack(attempts=8, base_delay=1.0, max_delay=3.0, jitter=0.0)
    for nth in range(1, 8):
        faulty.fail_call("list_ids", nth)
    assert await retrying.list_ids(None, 10) == []
    times = timed.times["list_ids"]
    assert [b - a for a, b in itertools.pairwise(times)] == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]


async def test_the_last_error_is_raised_after_every_attempt(autojump_clock: trio.testing.MockClock) -> None:
    retrying, _timed, faulty = await opened_stack(attempts=3)
    faulty.fail_randomly("has_many", 1.0, ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        await retrying.has_many([ABSENT])
    assert faulty.calls["has_many"] == 3 and retrying.retries["has_many"] == 2


async def test_an_absent_chunk_is_an_answer_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    retrying, _timed, faulty = await opened_stack()
    with pytest.raises(KeyError):
        await read_backend(retrying, ABSENT)
    faulty.fail_call("stat", 1, lambda: KeyError("not transient"))
    with pytest.raises(KeyError, match="not transient"):
        await retrying.stat(ABSENT)
    assert faulty.calls["read"] == 1 and faulty.calls["stat"] == 1 and not retrying.retries


async def test_which_errors_are_transient_is_a_parameter(autojump_clock: trio.testing.MockClock) -> None:
    retrying, _timed, faulty = await opened_stack(transient=(LookupError,))
    faulty.fail_call("stats", 1, lambda: LookupError("flaky index"))
    assert (await retrying.stats()).chunks == 0
    faulty.fail_call("stats", 3)  # an OSError is not transient now
    with pytest.raises(OSError, match="injected fault"):
        await retrying.stats()
    assert faulty.calls["stats"] == 3


async def test_a_failed_commit_is_not_retried_and_leaves_nothing(autojump_clock: trio.testing.MockClock) -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    retrying = RetryingBackend(faulty)
    await retrying.open()
    faulty.fail_call("commit", 1)
    with pytest.raises(OSError, match="injected fault"):
        await ChunkStore(retrying).put_bytes(b"never stored")
    assert faulty.calls["commit"] == 1 and not retrying.retries
    assert inner.storage.leftovers() == 0 and (await retrying.stats()).chunks == 0
    assert not (await ChunkStore(retrying).put_bytes(b"never stored")).existed  # the caller retries the put


class BreaksOnce(BackendWrapper):
    """Its first stream fails after ``after`` pieces, as a dropped connection would."""

    def __init__(self, inner: ChunkBackend, after: int) -> None:
        super().__init__(inner)
        self.after = after
        self.streams = 0

    async def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        self.streams += 1
        count = 0
        async for piece in self.inner.read(chunk_id):
            if self.streams == 1 and count == self.after:
                raise ConnectionResetError("dropped")
            count += 1
            yield piece


async def test_a_broken_stream_resumes_without_repeating_bytes(autojump_clock: trio.testing.MockClock) -> None:
    breaking = BreaksOnce(MemoryBackend(options=MemoryOptions(read_piece=1000)), after=2)
    retrying = RetryingBackend(breaking)
    await retrying.open()
    data = content(4500, 7)
    chunk_id = (await ChunkStore(retrying).put_bytes(data)).chunk_id
    assert await read_backend(retrying, chunk_id) == data
    assert breaking.streams == 2 and retrying.retries["read"] == 1


def test_backoff_is_reproducible_with_a_seeded_random() -> None:
    def delays(seed: int) -> list[float]:
        retrying = RetryingBackend(MemoryBackend(), rng=random.Random(seed))
        return [retrying.backoff(n) for n in range(1, 6)]

    assert delays(5) == delays(5) != delays(6)


# -- the concurrency limit -----------------------------------------------------------------------


class InFlight(BackendWrapper):
    def __init__(self, inner: ChunkBackend) -> None:
        super().__init__(inner)
        self.now = self.most = 0

    async def around(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await call()
        finally:
            self.now -= 1


async def test_at_most_limit_calls_run_at_once(autojump_clock: trio.testing.MockClock) -> None:
    faulty = FaultyBackend(MemoryBackend())
    faulty.stall("stat", 1.0)
    counted = InFlight(faulty)
    limited = LimitedBackend(counted, 2)
    await limited.open()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(limited.stat, ABSENT)
    assert counted.most == 2
    assert trio.current_time() - start == pytest.approx(3.0)  # six 1 s calls, two at a time


async def test_a_paused_stream_holds_no_token(autojump_clock: trio.testing.MockClock) -> None:
    limited = LimitedBackend(MemoryBackend(options=MemoryOptions(read_piece=10)), 1)
    await limited.open()
    chunk_id = (await ChunkStore(limited).put_bytes(content(100, 1))).chunk_id
    stream = limited.read(chunk_id)
    assert len(await stream.__anext__()) == 10
    with trio.fail_after(1):
        assert await limited.stat(chunk_id) == 100  # would wait forever if the stream held the token
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_limiter_can_be_shared() -> None:
    shared = trio.CapacityLimiter(3)
    assert LimitedBackend(MemoryBackend(), shared).limiter is LimitedBackend(MemoryBackend(), shared).limiter


# -- fault injection -----------------------------------------------------------------------------


async def test_the_nth_call_fails_and_only_that_one() -> None:
    faulty = FaultyBackend(MemoryBackend())
    await faulty.open()
    faulty.fail_call("list_ids", 2, TimeoutError)
    assert await faulty.list_ids(None, 1) == []
    with pytest.raises(TimeoutError):
        await faulty.list_ids(None, 1)
    assert await faulty.list_ids(None, 1) == []
    assert faulty.calls["list_ids"] == 3 and faulty.injected["list_ids"] == 1


async def test_random_faults_follow_the_seed() -> None:
    async def pattern(seed: int) -> list[bool]:
        faulty = FaultyBackend(MemoryBackend(), rng=random.Random(seed))
        await faulty.open()
        faulty.fail_randomly("stats", 0.3)
        failed = []
        for _ in range(200):
            try:
                await faulty.stats()
            except OSError:
                failed.append(True)
            else:
                failed.append(False)
        return failed

    first = await pattern(11)
    assert first == await pattern(11) != await pattern(12)
    assert 35 <= sum(first) <= 85  # about 30 % of 200


async def test_writer_calls_can_fail_too() -> None:
    inner = MemoryBackend()
    faulty = FaultyBackend(inner)
    await faulty.open()
    faulty.fail_call("write", 1, ConnectionAbortedError)
    with pytest.raises(ConnectionAbortedError):
        await ChunkStore(faulty).put_bytes(b"x" * 10)
    assert inner.storage.leftovers() == 0  # the store aborted the writer through the wrapper
    assert faulty.calls["begin_put"] == 1 and faulty.calls["abort"] == 1


async def test_a_stall_delays_calls_on_the_fake_clock(autojump_clock: trio.testing.MockClock) -> None:
    faulty = FaultyBackend(MemoryBackend())
    await faulty.open()
    faulty.stall("read", 30.0)
    start = trio.current_time()
    with pytest.raises(KeyError):
        await read_backend(faulty, ABSENT)
    assert trio.current_time() - start == pytest.approx(30.0)
    with trio.move_on_after(5) as scope:  # a caller's deadline cuts a stalled call short
        await read_backend(faulty, ABSENT)
    assert scope.cancelled_caught
    faulty.clear()
    with pytest.raises(KeyError):
        await read_backend(faulty, ABSENT)


def test_an_unknown_method_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no backend method named 'stat_many'"):
        FaultyBackend(MemoryBackend()).fail_call("stat_many", 1)


def test_the_stacked_wrappers_were_really_flaky() -> None:
    """The flaky stack above passes because retries absorb faults, not because none happened."""
    stacks: list[RetryingBackend] = []

    def keep(backend: ChunkBackend) -> ChunkBackend:
        stack = flaky_then_retried(backend)
        assert isinstance(stack, RetryingBackend)
        stacks.append(stack)
        return stack

    outcomes = trio.run(run_all, lambda: memory_harness(keep), clock=fake_clock())
    assert all(reason is None for reason in outcomes.values())
    assert sum(sum(stack.retries.values()) for stack in stacks) > 20
