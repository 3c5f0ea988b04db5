"""Running queued operations: one background task of the node, woken when operations arrive.

The runner takes the first operation of the running order (priority, ``createdAt``, order added;
``vault.queue.records``), applies it with ``SyncService.apply_changes`` (the conflict rules of
``sync/files``, judged from the operation's base) and records what came of it: ``done``, or
``failed`` with the error (``CONFLICT`` with the conflict's id when it conflicts; the conflict is
recorded and listed by ``sync/status`` like any other). Then the next one, until none is left.

A failure that is not a ``VaultError`` (a full disk, a store briefly unavailable) is passing: the
operation keeps its place but waits ``[queue] retry_backoff`` (doubling each time, at most
``retry_backoff_max``) before it is tried again, while the others run; after ``max_attempts``
tries it fails. A ``VaultError`` (``NOT_FOUND``, ``VALIDATION_ERROR``, …) fails it at once.

Between runs the runner sleeps until it is woken (``wake``, after ``queue/add`` commits) or its
next deadline (``queue_timers``: a retry due, an upload operation's wait running out, a finished
operation to forget after ``keep_finished``). Nothing polls. Everything lives in metadata, so
after a restart the runner simply continues. An operation whose change committed just before the
node stopped, but whose outcome had not been recorded yet, runs again after the restart: each
operation is harmless to apply twice (a second delete or move of the same file changes nothing,
its own device's change is never a conflict).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import trio

from vault import errors
from vault.clock import Clock
from vault.config import QueueConfig
from vault.meta import MetaStore, Txn
from vault.queue import records
from vault.queue.records import QueuedOp
from vault.sync.service import SyncService
from vault.sync.wire import ChangeResult, DeleteChange, LocalChange, MkdirChange, MoveChange, RenameChange

log = logging.getLogger(__name__)

_TIMER_BATCH = 200
_LONGEST_SLEEP = 3600.0  # re-read the deadlines at least hourly (the wall clock may jump)


class QueueRunner:
    def __init__(self, *, meta: MetaStore, clock: Clock, config: QueueConfig, sync: SyncService) -> None:
        self.meta = meta
        self.clock = clock
        self.config = config
        self.sync = sync
        self._woken = trio.Event()
        self._idle = trio.Event()
        self._turn = trio.Lock()

    def wake(self) -> None:
        """Operations were added: run them (callable from anywhere on the event loop)."""
        if self._idle.is_set():
            self._idle = trio.Event()
        self._woken.set()

    async def wait_idle(self) -> None:
        """Return once the runner has nothing left to run now (for tests and tools)."""
        while True:
            idle = self._idle
            await idle.wait()
            if idle is self._idle:
                return

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold the runner between two operations while the block runs (for tests and tools)."""
        async with self._turn:
            yield

    async def run(self) -> None:
        """The background task: run what is due, sleep until woken or the next deadline."""
        while True:
            self._woken = trio.Event()  # before looking: a wake-up from now on is not missed
            try:
                async with self._turn:
                    await self._fire_timers()
                    ran = await self._run_next()
                if ran:
                    continue
                delay = await self._until_next_deadline()
            except Exception:  # the runner must never take the node down
                log.exception("offline queue runner failed; will retry")
                delay = float(self.config.retry_backoff)
            self._idle.set()
            with trio.move_on_after(delay):
                await self._woken.wait()

    # -- deadlines -----------------------------------------------------------------------------

    async def _until_next_deadline(self) -> float:
        async with self.meta.snapshot() as txn:
            at = records.next_deadline(txn)
        if at is None:
            return math.inf
        return min(_LONGEST_SLEEP, max(0.0, at - self.clock.now()) + 0.002)

    async def _fire_timers(self) -> None:
        now = self.clock.now()
        keep = float(self.config.keep_finished)
        while True:
            async with self.meta.snapshot() as txn:
                due = records.due_timers(txn, now, _TIMER_BATCH)
            if not due:
                return

            def fire(txn: Txn, due: list[tuple[bytes, bytes]] = due) -> None:
                for timer_key, op_key in due:
                    op = records.load(txn, op_key)
                    if op is None or not records.timer_matches(op, timer_key):
                        records.drop_timer(txn, timer_key)  # outlived its operation's state
                    elif op.status == "queued":
                        records.resume(txn, op)  # a retry is due
                    elif op.status == "waiting":
                        message = "no upload completed at remotePath before [queue] upload_wait ran out"
                        records.finish(
                            txn, op, "failed", now=now, forget_at=now + keep, error=("UPLOAD_EXPIRED", message)
                        )
                    else:
                        records.forget(txn, op)

            await self.meta.write(fire)
            if len(due) < _TIMER_BATCH:
                return

    # -- running one operation -----------------------------------------------------------------

    async def _run_next(self) -> bool:
        """Run the first operation of the running order; False when there is none."""
        async with self.meta.snapshot() as txn:
            head = records.first_runnable(txn)
            op = records.load(txn, head[1]) if head is not None else None
        if head is None:
            return False
        if op is None or op.status != "queued" or op.timer_at is not None:  # pragma: no cover - kept in step
            await self.meta.write(lambda txn: records.drop_runnable(txn, head[0]))
            return True
        try:
            (result,) = await self.sync.apply_changes(op.user_id, op.device_id, [as_change(op)], op.base, "")
        except errors.VaultError as exc:
            await self._settle(op, "failed", error=(exc.code, exc.message))
        except Exception as exc:
            await self._retry(op, exc)
        else:
            await self._record(op, result)
        return True

    async def _record(self, op: QueuedOp, result: ChangeResult) -> None:
        if result.status == "applied":
            await self._settle(op, "done", file_id=result.file_id or op.file_id)
        elif result.status == "conflict":
            message = (
                f"the target changed on the server after this operation was made (conflict {result.conflict_id});"
                " resolve it with conflicts/resolve"
            )
            await self._settle(
                op, "failed", file_id=op.file_id, error=("CONFLICT", message), conflict_id=result.conflict_id
            )
        elif result.error is not None:
            await self._settle(op, "failed", file_id=op.file_id, error=(result.error.code, result.error.message))
        else:  # pragma: no cover - only content changes answer uploadRequired
            await self._settle(op, "failed", error=("INTERNAL_ERROR", f"unexpected result {result.status}"))

    async def _retry(self, op: QueuedOp, exc: Exception) -> None:
        attempts = op.attempts + 1
        if attempts >= self.config.max_attempts:
            log.error("queue operation %s failed %d times (%r); giving up", op.id, attempts, exc)
            message = f"could not be applied after {attempts} attempts"
            await self._settle(op, "failed", error=("INTERNAL_ERROR", message))
            return
        delay = min(float(self.config.retry_backoff) * 2 ** (attempts - 1), float(self.config.retry_backoff_max))
        log.warning("queue operation %s failed (%r); retry %d in %.0f s", op.id, exc, attempts, delay)
        until = self.clock.now() + delay

        def defer(txn: Txn) -> None:
            current = _current(txn, op)
            if current is not None:
                records.defer(txn, current, until)

        await self.meta.write(defer)

    async def _settle(
        self,
        op: QueuedOp,
        status: Literal["done", "failed"],
        *,
        file_id: str | None = None,
        error: tuple[str, str] | None = None,
        conflict_id: str | None = None,
    ) -> None:
        now = self.clock.now()
        forget_at = now + float(self.config.keep_finished)

        def settle(txn: Txn) -> None:
            current = _current(txn, op)
            if current is not None:
                records.finish(
                    txn,
                    current,
                    status,
                    now=now,
                    forget_at=forget_at,
                    file_id=file_id,
                    error=error,
                    conflict_id=conflict_id,
                )

        await self.meta.write(settle)


def _current(txn: Txn, op: QueuedOp) -> QueuedOp | None:
    """``op`` as stored now, if it is still the queued operation the runner took."""
    current = records.load(txn, records.op_key(op.user_id, op.device_id, op.id))
    if current is None or current.seq != op.seq or current.status != "queued" or current.timer_at is not None:
        return None
    return current


def as_change(op: QueuedOp) -> LocalChange:
    """The ``sync/files`` change a server-side operation is (its id as the change's localId)."""
    file_id = op.file_id or ""
    if op.type == "delete":
        return DeleteChange(local_id=op.id, file_id=file_id)
    if op.type == "move":
        return MoveChange(local_id=op.id, file_id=file_id, folder=op.folder or "/")
    if op.type == "rename":
        return RenameChange(local_id=op.id, file_id=file_id, name=op.name or "")
    if op.type == "mkdir":
        return MkdirChange(local_id=op.id, folder=op.folder or "/")
    raise ValueError(f"an {op.type} operation is not run by the runner")
