"""The delivery runner: sends what the outbox holds, as it falls due, through the providers.

One task in the node's nursery. It wakes when a commit wrote to the outbox (``MetaStore.on_commit``)
or when the next entry falls due, takes due entries in order, and sends each under a capacity
limit (``[push] concurrency``) and a per-send timeout. A send's outcome is written in one
transaction: delivered and failed entries leave the outbox; "retry later" moves the entry to its
next try (the service's ``Retry-After``, else exponential backoff with jitter) until
``[push] max_age``; "registration gone" removes the device's registration. Preferences and quiet
hours are checked again at send time, so a category turned off or quiet hours set after the event
are honoured. Nothing is acknowledged to the outbox before the provider answered, so a ``kill -9``
mid-send sends again after the restart (at least once, never lost).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import trio

from vault.clock import Clock
from vault.config import PushConfig
from vault.devices.push_registrations import Registration, get_registration, remove_registration
from vault.meta import MetaStore, Txn
from vault.metrics import Metrics
from vault.notifications.outbox import OUTBOX, OutboxEntry, due_of, reschedule
from vault.notifications.quiet_hours import held_until
from vault.notifications.records import update_delivery
from vault.notifications.sync_hints import hint_sent
from vault.push.provider import (
    Delivered,
    Failed,
    Outcome,
    PushMessage,
    PushProvider,
    PushRegistration,
    RegistrationGone,
    RetryLater,
)

log = logging.getLogger(__name__)

# The longest the runner sleeps without looking (a wall clock that jumped, a missed wake-up).
_IDLE_LOOK = 300.0


class DeliveryRunner:
    def __init__(
        self,
        meta: MetaStore,
        clock: Clock,
        providers: dict[str, PushProvider],
        config: PushConfig,
        metrics: Metrics | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.meta = meta
        self.clock = clock
        self.providers = providers
        self.config = config
        self.metrics = metrics
        self._jitter = jitter
        self._in_flight: set[str] = set()
        self._wakeup = trio.Event()
        self.sent = 0  # sends answered, any outcome (for tests and the benchmark)

    def in_flight(self, key: str) -> bool:
        return key in self._in_flight

    def wake(self) -> None:
        self._wakeup.set()

    def on_commit(self, tables: set[str]) -> None:
        if OUTBOX.name in tables:
            self._wakeup.set()

    async def run(self) -> None:
        limiter = trio.CapacityLimiter(self.config.concurrency)
        async with trio.open_nursery() as nursery:
            while True:
                self._wakeup = trio.Event()
                now = self.clock.now()
                room = int(limiter.available_tokens)
                due, next_due = await self._due(now, room)
                for key, entry in due:
                    self._in_flight.add(key.decode())
                    nursery.start_soon(self._deliver_limited, limiter, key, entry)
                if room == 0 or next_due is None or (due and len(due) == room):
                    # Nothing due later (or no room): only a commit or a finishing send can give
                    # work, and both wake us. No deadline, so a fake clock does not leap to one.
                    await self._wakeup.wait()
                elif next_due > now:
                    # Capped, so a wall clock that jumped is noticed within five minutes.
                    with trio.move_on_after(min(next_due - now, _IDLE_LOOK)):
                        await self._wakeup.wait()

    async def _due(self, now: float, room: int) -> tuple[list[tuple[bytes, OutboxEntry]], float | None]:
        """Up to ``room`` due entries not already being sent, and when the next one falls due."""
        taken: list[tuple[bytes, OutboxEntry]] = []
        async with self.meta.snapshot() as txn:
            for key, entry in txn.scan(OUTBOX):
                if due_of(key) > now:
                    return taken, due_of(key)
                if key.decode() in self._in_flight:
                    continue
                if len(taken) >= room:
                    return taken, now
                taken.append((key, entry))
        return taken, None

    async def _deliver_limited(self, limiter: trio.CapacityLimiter, key: bytes, entry: OutboxEntry) -> None:
        try:
            async with limiter:
                await self.deliver(key, entry)
        except Exception:
            log.exception("push delivery %s failed unexpectedly; it stays in the outbox", entry.id)
        finally:
            self._in_flight.discard(key.decode())
            self._wakeup.set()

    async def deliver(self, key: bytes, entry: OutboxEntry) -> None:
        """Send one outbox entry and record what happened."""
        async with self.meta.snapshot() as txn:
            registration = get_registration(txn, entry.user_id, entry.device_id)
        now = self.clock.now()
        if registration is None:
            await self._finish(key, entry, "skipped", reason="no push registration", count=False)
            return
        if entry.kind == "notification":
            prefs = registration.preferences
            if not prefs.wants(entry.category):
                await self._finish(key, entry, "skipped", reason="category off", count=False)
                return
            held = None if entry.category == "security" else held_until(prefs.quiet_hours, now)
            if held is not None:
                await self.meta.write(lambda txn: self._hold(txn, key, entry, held))
                return
        provider = self.providers.get(registration.provider)
        if provider is None:
            await self._finish(key, entry, "failed", reason=f"provider {registration.provider!r} is not configured")
            return
        outcome = await self._send(provider, registration, entry)
        self.sent += 1
        self._count(registration.provider, outcome)
        if isinstance(outcome, Delivered):
            await self._finish(key, entry, "sent")
        elif isinstance(outcome, Failed):
            log.warning("push to device %s via %s failed: %s", entry.device_id, registration.provider, outcome.reason)
            await self._finish(key, entry, "failed", reason=outcome.reason)
        elif isinstance(outcome, RegistrationGone):
            log.info("push registration of device %s is gone (%s): removed", entry.device_id, outcome.reason)
            await self._finish(key, entry, "unregistered", reason=outcome.reason, gone=registration)
        else:
            await self._retry(key, entry, outcome, registration)

    async def _send(self, provider: PushProvider, registration: Registration, entry: OutboxEntry) -> Outcome:
        target = PushRegistration(
            device_id=registration.device_id, platform=registration.platform, push_token=registration.push_token
        )
        message = PushMessage(
            category=entry.category,  # type: ignore[arg-type]
            title=entry.title,
            body=entry.body,
            created_at=entry.created_at,
            data=entry.data,
            silent=entry.silent,
        )
        try:
            with trio.move_on_after(float(self.config.send_timeout)) as scope:
                return await provider.send(target, message)
            if scope.cancelled_caught:
                return RetryLater("the provider did not answer in time")
        except Exception as exc:  # a provider bug must not stop the other deliveries
            log.exception("push provider %s raised", registration.provider)
            return RetryLater(f"provider error: {type(exc).__name__}")
        return RetryLater("the provider did not answer")

    def _count(self, provider: str, outcome: Outcome | str) -> None:
        if self.metrics is None:
            return
        name = outcome if isinstance(outcome, str) else _OUTCOME_NAMES[type(outcome)]
        self.metrics.push_deliveries.labels(provider, name).inc()

    def _hold(self, txn: Txn, key: bytes, entry: OutboxEntry, until: float) -> None:
        if txn.get(OUTBOX, key) is None:
            return
        reschedule(txn, key, entry, until)
        if entry.notification_key:
            update_delivery(txn, entry.notification_key, entry.device_id, status="held", due_at=until)

    async def _finish(
        self,
        key: bytes,
        entry: OutboxEntry,
        status: str,
        *,
        reason: str | None = None,
        gone: Registration | None = None,
        count: bool = True,
    ) -> None:
        now = self.clock.now()
        attempts = entry.attempts + (1 if count else 0)

        def write(txn: Txn) -> None:
            txn.delete(OUTBOX, key)
            if entry.kind == "sync_hint":
                hint_sent(txn, entry.user_id, entry.device_id, key, now)
            elif entry.notification_key:
                update_delivery(
                    txn,
                    entry.notification_key,
                    entry.device_id,
                    status=status,
                    attempts=attempts,
                    due_at=None,
                    reason=reason,
                )
            if gone is not None:
                current = get_registration(txn, entry.user_id, entry.device_id)
                # Only the token the service refused: a device that re-registered meanwhile keeps its new one.
                if current is not None and current.push_token == gone.push_token:
                    remove_registration(txn, entry.user_id, entry.device_id)

        await self.meta.write(write)

    async def _retry(self, key: bytes, entry: OutboxEntry, outcome: RetryLater, registration: Registration) -> None:
        now = self.clock.now()
        attempts = entry.attempts + 1
        if now - entry.created_at >= float(self.config.max_age):
            self._count(registration.provider, "expired")
            log.warning("push to device %s given up after %d attempts: %s", entry.device_id, attempts, outcome.reason)
            entry.attempts = attempts
            await self._finish(key, entry, "failed", reason=f"gave up: {outcome.reason}", count=False)
            return
        delay = outcome.delay if outcome.delay is not None else self.backoff(attempts)
        due = now + max(0.0, delay)
        if entry.kind == "notification" and entry.category != "security":
            due = held_until(registration.preferences.quiet_hours, due) or due
        entry.attempts = attempts
        entry.last_error = outcome.reason

        def write(txn: Txn) -> None:
            if txn.get(OUTBOX, key) is None:
                return
            reschedule(txn, key, entry, due)
            if entry.notification_key:
                update_delivery(
                    txn,
                    entry.notification_key,
                    entry.device_id,
                    status="pending",
                    attempts=attempts,
                    due_at=due,
                    reason=outcome.reason,
                )

        await self.meta.write(write)

    def backoff(self, attempts: int) -> float:
        """``retry_backoff`` doubled per attempt, at most ``retry_backoff_max``, with full jitter
        over its upper half (so a burst of failures does not retry in lockstep)."""
        base = float(self.config.retry_backoff) * float(2 ** min(attempts - 1, 30))
        ceiling = min(base, float(self.config.retry_backoff_max))
        return ceiling * (0.5 + 0.5 * self._jitter())


_OUTCOME_NAMES: dict[type, str] = {
    Delivered: "delivered",
    RetryLater: "retry",
    RegistrationGone: "gone",
    Failed: "failed",
}
