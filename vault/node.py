"""The node: configuration, stores and services, composed once per app (no module globals).

This is the one place that knows every part. Services are handed exactly what they use and never
see the node; HTTP handlers reach the services through it (``Ctx.node``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from vault.auth import accounts
from vault.auth.records import User
from vault.auth.service import AuthService
from vault.background import BackgroundTasks, Task
from vault.chunks import ChunkBackend, ChunkStore
from vault.chunks.loading import make_backend
from vault.chunks.refguard import RefGuard
from vault.clock import Clock
from vault.config import Config
from vault.datadir_lock import NodeLock
from vault.devices.activity import ActivityTracker
from vault.devices.service import DeviceService
from vault.files.changes import FileChanges
from vault.files.feed import ChangeFeed
from vault.files.reclaim import reclaim_expired
from vault.gc import collect_garbage
from vault.meta import META
from vault.meta_upgrades import metadata_store
from vault.metrics import Metrics
from vault.notifications.delivery import DeliveryRunner
from vault.notifications.service import NotificationService
from vault.notifications.storage_alerts import StorageAlerts
from vault.notifications.sync_hints import SyncHints
from vault.notifications.upload_outcomes import record_upload_outcome
from vault.offload import Offload
from vault.policies import PlanPolicy, load_policy
from vault.principal import Principal
from vault.push import vapid
from vault.push.loading import make_providers, open_providers
from vault.queue.service import QueueService
from vault.shares.service import ShareService
from vault.sync.retention import prune as prune_journal
from vault.sync.service import SyncService
from vault.transfers import TransferLimits
from vault.tus.service import TusService
from vault.uploads.intake import PieceIntake
from vault.uploads.service import UploadService

log = logging.getLogger(__name__)


class Node:
    """Everything one running node owns."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        periodic: bool = True,
        backend: ChunkBackend | None = None,
    ) -> None:
        self.config = config
        # Periodic work off (``periodic=False``) for tests whose fake clock would leap to its timers.
        self._periodic = periodic
        self.clock = clock or Clock()
        self.data_dir = Path(config.storage.data_dir)
        self.node_lock = NodeLock(self.data_dir)
        self.offload = Offload()
        self.meta = metadata_store(self.data_dir)
        # ``backend``: an already built one (a test's fake); otherwise the one ``[storage]`` names.
        self.metrics = Metrics()
        self.chunks = ChunkStore(
            backend or make_backend(config),
            offload=self.offload,
            on_corrupt=lambda _: self.metrics.corrupt_chunks.inc(),
            on_repaired=lambda _: self.metrics.repaired_chunks.inc(),
        )
        self.background = BackgroundTasks()
        self.transfers = TransferLimits(config.server.max_transfers_per_user, config.server.max_transfers)
        self.policy: PlanPolicy = load_policy(config)
        self.activity = ActivityTracker()
        self.auth = AuthService(
            config, self.meta, self.clock, self.data_dir / "keys.json", self.policy, self.activity, offload=self.offload
        )
        self.devices = DeviceService(self.meta, self.clock, self.activity)
        self.ref_guard = RefGuard()
        self.feed = ChangeFeed()
        self.changes = FileChanges(self.meta, self.feed)
        self.uploads = UploadService(
            meta=self.meta,
            chunks=self.chunks,
            intake=PieceIntake(self.meta, self.chunks, self.ref_guard),
            changes=self.changes,
            clock=self.clock,
            config=config.uploads,
            quota_of=self.auth.storage_quota,
            spawn=self.background.spawn,
            offload=self.offload,
            metrics=self.metrics,
            on_outcome=record_upload_outcome,
        )
        self.tus = TusService(self.uploads)
        self.sync = SyncService(
            meta=self.meta,
            changes=self.changes,
            feed=self.feed,
            uploads=self.uploads,
            clock=self.clock,
            offload=self.offload,
            quota_of=self.auth.storage_quota,
        )
        self.queue = QueueService(
            meta=self.meta, clock=self.clock, config=config.queue, sync=self.sync, offload=self.offload
        )
        self.changes.subscribe(self.queue.on_file_change)
        # Push: the providers ``[push] providers`` names, the outbox's delivery runner (woken by
        # any commit that wrote to the outbox), the silent sync hint written with every file
        # change, and storage threshold checks after each change commits.
        self.providers = make_providers(config.push)
        self.delivery = DeliveryRunner(self.meta, self.clock, self.providers, config.push, self.metrics)
        self.meta.on_commit(self.delivery.on_commit)
        self.sync_hints = SyncHints(
            interval=float(config.push.sync_hint_interval),
            providers={name for name, p in self.providers.items() if p.sync_hints},
            in_flight=self.delivery.in_flight,
        )
        self.changes.subscribe(self.sync_hints.on_change)
        self.storage_alerts = StorageAlerts(self.meta, self.auth.storage_quota, self.clock.now)
        self.feed.on_publish(self.storage_alerts.changed)
        self.shares = ShareService(
            self.meta,
            self.changes,
            self.clock,
            by_email=lambda txn, email: _user_info(accounts.find_by_email(txn, email)),
            by_id=lambda txn, user_id: _user_info(accounts.get_user(txn, user_id)),
            normalise_email=accounts.normalise_email,
        )
        self.notifications = NotificationService(self.meta, self.clock, self.providers, vapid.generate())

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One node per data directory, and no `vault gc` beside it: DataDirLocked otherwise.
        await trio.to_thread.run_sync(self.node_lock.acquire)
        await self.meta.open()
        await self.auth.open()
        await self.sync.open()
        await self.queue.open()
        await self.chunks.open()
        # The VAPID key outlives restarts: Web Push subscriptions are bound to it.
        key = await trio.to_thread.run_sync(vapid.load_or_create, self.data_dir / "push")
        self.notifications.vapid = key
        await open_providers(self.providers, self.data_dir, key)

    async def run_background(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The offline queue's runner, periodic work (expiry, GC) and spawned work, until ``close``;
        start with ``nursery.start``."""
        periodic = self.periodic_tasks() if self._periodic else []
        await self.background.run(
            [self.queue.runner.run, self.delivery.run, self.storage_alerts.run, *periodic], task_status=task_status
        )

    def periodic_tasks(self) -> list[Task]:
        """The node's periodic work, each a loop that sleeps its interval between runs."""
        return [
            _every(self.config.uploads.gc_interval, self.collect_garbage, "upload expiry or garbage collection"),
            _every(self.config.sync.prune_interval, self.prune_journal, "journal pruning"),
            _every(self.config.files.reclaim_interval, self.reclaim, "trash and version reclaiming"),
        ]

    async def prune_journal(self) -> None:
        """Forget journal entries older than ``[sync] journal_retention``."""
        pruned = await prune_journal(self.meta, self.clock.now() - float(self.config.sync.journal_retention))
        if pruned:
            log.info("pruned %d journal entries past their retention", pruned)

    async def close(self) -> None:
        """Stop the background tasks and wait for them, then close the stores (which wait for any
        read still open in a worker thread), then let go of the data directory."""
        await self.background.close()
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("closing a push provider failed")
        await self.chunks.close()
        await self.meta.close()
        await trio.to_thread.run_sync(self.node_lock.release)

    async def collect_garbage(self) -> None:
        """Expire upload sessions, then reclaim chunks unreferenced for ``uploads.gc_grace``."""
        expired = await self.uploads.expire()
        if expired:
            log.info("expired %d upload session(s)", expired)
        report = await collect_garbage(
            self.meta,
            self.chunks,
            now=self.clock.now(),
            grace=max(1.0, float(self.config.uploads.gc_grace)),
            delete=True,
            guard=self.ref_guard.sweeping,
            offload=self.offload,
        )
        if report.deleted:
            log.info("reclaimed %d chunk(s), %d bytes", report.deleted, report.deleted_bytes)

    async def reclaim(self) -> None:
        """Purge trash entries and earlier versions past ``[files]`` retention (their chunks are
        then the garbage collector's)."""
        files = self.config.files
        report = await reclaim_expired(
            self.meta,
            now=self.clock.now(),
            trash_retention=float(files.trash_retention),
            version_retention=float(files.version_retention),
            offload=self.offload,
        )
        if report.files or report.versions:
            await self.storage_alerts.recheck_announced()
            log.info(
                "purged %d trashed file(s) and %d earlier version(s), %d bytes",
                report.files,
                report.versions,
                report.bytes,
            )

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a bearer-authenticated route (``vault.auth.service``)."""
        return await self.auth.authenticate(authorization)

    async def health(self) -> str | None:
        """``None`` when healthy, otherwise a short reason the stores cannot be read."""
        try:
            async with self.meta.snapshot() as txn:
                txn.get_bytes(META, b"schema_version")
        except Exception:
            log.exception("health: metadata store unreadable")
            return "metadata store cannot be read"
        try:
            with trio.fail_after(5):
                await self.chunks.backend.check()
        except Exception:
            log.exception("health: chunk store unreadable")
            return "chunk store cannot be read"
        return None


def _user_info(user: User | None) -> tuple[str, str, str] | None:
    return None if user is None else (user.id, user.email, user.name)


def _every(interval: float, work: Callable[[], Awaitable[None]], what: str) -> Task:
    """A loop running ``work`` every ``interval`` seconds; a failure is logged and retried."""

    async def loop() -> None:
        while True:
            await trio.sleep(max(1.0, float(interval)))
            try:
                await work()
            except Exception:
                log.exception("%s failed; will retry", what)

    return loop
