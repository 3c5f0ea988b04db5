"""One writer thread per LMDB environment, shared by the metadata store and the lmdb backend.

LMDB allows one writer per environment and a write transaction must stay on the thread that
began it. Callers queue write functions; the thread groups what is queued into one transaction
(each function in a nested transaction, so one that raises undoes only its own changes), commits,
and hands every caller its own result. Grouping turns many small durable writes into one sync.
The map grows (doubling) when a batch does not fit, with readers of this process held off by the
``ReadGate`` while it does.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import lmdb
import trio

from vault.lmdb_gate import ReadGate

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[lmdb.Transaction], Any]

_GROW_ATTEMPTS = 8


def _released(txn: lmdb.Transaction) -> None:
    raise RuntimeError("this write already ran")


# Below this much free space at the moment a commit failed, the failure is taken for a full disk.
_FULL_BELOW = 16 * 1024 * 1024


def _disk_full(env: lmdb.Environment) -> bool:
    try:
        stats = os.statvfs(env.path())
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _FULL_BELOW


class WriteJob:
    __slots__ = ("done", "durable", "error", "fn", "result", "weight")

    def __init__(self, fn: WriteFn, durable: bool, weight: int, done: Callable[[], None]) -> None:
        self.fn = fn
        self.durable = durable
        self.weight = weight
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class Pending(Generic[T]):
    """A queued write; ``result`` waits for it (shielded: once queued it may commit regardless,
    and the caller must not believe otherwise)."""

    def __init__(self, job: WriteJob, finished: trio.Event) -> None:
        self._job = job
        self._finished = finished

    async def result(self) -> T:
        with trio.CancelScope(shield=True):
            await self._finished.wait()
        value: T = self._job.outcome()
        return value


class LmdbWriter:
    """The writer thread of one environment (``start`` after opening it, ``stop`` before closing)."""

    def __init__(
        self,
        *,
        label: str,
        gate: ReadGate,
        map_size: int,
        sync_after_durable: bool,
        fail: Callable[[str], BaseException],
        batch_jobs: int = 64,
        batch_weight: int = 16 * 1024 * 1024,
    ) -> None:
        self.label = label
        self.map_size = map_size
        self._gate = gate
        # Environments opened with metasync=False make a commit durable only after env.sync.
        self._sync_after_durable = sync_after_durable
        self._fail = fail
        self._batch_jobs = batch_jobs
        self._batch_weight = batch_weight
        self._jobs: queue.SimpleQueue[WriteJob | None] = queue.SimpleQueue()
        self._env: lmdb.Environment | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, env: lmdb.Environment) -> None:
        self._env = env
        self.map_size = max(self.map_size, env.info()["map_size"])
        self._thread = threading.Thread(target=self._loop, name=f"{self.label}-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._env = None

    def enqueue(self, fn: WriteFn, *, durable: bool = True, weight: int = 0) -> Pending[Any]:
        """Queue ``fn`` (FIFO) from the Trio thread; await ``result()`` for its outcome."""
        if self._thread is None:
            raise self._fail(f"{self.label} is not open")
        token = trio.lowlevel.current_trio_token()
        finished = trio.Event()
        job = WriteJob(fn, durable, weight, lambda: token.run_sync_soon(finished.set))
        self._jobs.put(job)
        return Pending(job, finished)

    async def submit(self, fn: WriteFn, *, durable: bool = True, weight: int = 0) -> Any:
        return await self.enqueue(fn, durable=durable, weight=weight).result()

    def submit_blocking(self, fn: WriteFn, *, durable: bool = True) -> Any:
        """The same from a plain thread (command line tools, worker threads)."""
        if self._thread is None:
            raise self._fail(f"{self.label} is not open")
        done = threading.Event()
        job = WriteJob(fn, durable, 0, done.set)
        self._jobs.put(job)
        done.wait()
        return job.outcome()

    def run_now(self, env: lmdb.Environment, fn: WriteFn) -> Any:
        """One durable write on the calling thread, before the writer thread starts."""
        self._env = env
        job = WriteJob(fn, True, 0, lambda: None)
        self._run_batch([job])
        return job.outcome()

    @property
    def _environment(self) -> lmdb.Environment:
        if self._env is None:
            raise self._fail(f"{self.label} is not open")
        return self._env

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch, weight, stop = [job], job.weight, False
            while len(batch) < self._batch_jobs and weight < self._batch_weight:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                weight += more.weight
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[WriteJob]) -> None:
        env = self._environment
        try:
            for _attempt in range(_GROW_ATTEMPTS):
                try:
                    self._commit_batch(env, batch)
                    break
                except lmdb.MapFullError:
                    self._grow(env)
                except lmdb.MapResizedError:
                    with self._gate.exclusive():
                        env.set_mapsize(0)
            else:
                for job in batch:
                    job.error = self._fail(f"{self.label} is full and its map could not grow")
        except lmdb.Error as exc:
            full = _disk_full(env)
            if full:
                log.error("%s commit failed: the disk is full (%s)", self.label, exc)
            else:
                log.exception("%s commit failed", self.label)
            for job in batch:
                # A full disk is its own error (the node answers 507 and recovers once there is
                # room); LMDB reports it as whatever its write() saw, often EIO.
                error = OSError(errno.ENOSPC, f"{self.label}: no space left on its disk") if full else None
                job.error = self._fail(f"{self.label} commit failed: {exc}")
                if error is not None:
                    job.error.__cause__ = error
        finally:
            for job in batch:
                # The thread keeps its last batch until the next arrives: let go of the closure
                # now, or a write's data outlives it.
                job.fn = _released
                job.done()

    def _commit_batch(self, env: lmdb.Environment, batch: list[WriteJob]) -> None:
        with env.begin(write=True) as parent:
            for job in batch:
                job.error = None
                child = env.begin(write=True, parent=parent)
                try:
                    job.result = job.fn(child)
                except lmdb.MapFullError:
                    child.abort()
                    raise
                except Exception as exc:  # the caller gets it; the batch goes on
                    child.abort()
                    job.error = exc
                else:
                    child.commit()
        if self._sync_after_durable and any(job.durable and job.error is None for job in batch):
            env.sync(True)

    def _grow(self, env: lmdb.Environment) -> None:
        with self._gate.exclusive():
            self.map_size *= 2
            log.info("growing %s map to %d MiB", self.label, self.map_size >> 20)
            env.set_mapsize(self.map_size)
