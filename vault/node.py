"""The node: configuration, stores and services, built once per app (no module globals)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from vault.auth.service import AuthService
from vault.chunks import ChunkStore
from vault.chunks.loading import make_backend
from vault.chunks.refguard import RefGuard
from vault.clock import Clock
from vault.config import Config
from vault.datadir_lock import NodeLock
from vault.devices.activity import ActivityTracker
from vault.devices.service import DeviceService
from vault.gc import collect_garbage
from vault.meta import MetaStore
from vault.metrics import Metrics
from vault.policies import PlanPolicy, load_policy
from vault.principal import Principal
from vault.tus.sessions import TusUploads
from vault.uploads.notify import record_upload_outcome
from vault.uploads.service import UploadService

log = logging.getLogger(__name__)


class Node:
    """Everything one running node owns. Services hang off it; HTTP handlers reach it via ``Ctx``."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.data_dir = Path(config.storage.data_dir)
        self.node_lock = NodeLock(self.data_dir)
        self.meta = MetaStore(self.data_dir / "meta")
        self.chunks = ChunkStore(make_backend(config))
        self.metrics = Metrics()
        self._background: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self.policy: PlanPolicy = load_policy(config)
        self.activity = ActivityTracker()
        self.auth = AuthService(config, self.meta, self.clock, self.data_dir / "keys.json", self.policy, self.activity)
        self.devices = DeviceService(self.meta, self.clock, self.activity)
        self.uploads = UploadService(self, self.storage_quota, record_upload_outcome)
        self.tus = TusUploads(self.uploads)
        self.ref_guard = RefGuard()

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One node per data directory, and no `vault gc` beside it: DataDirLocked otherwise.
        await trio.to_thread.run_sync(self.node_lock.acquire)
        await self.meta.open()
        await self.auth.open()
        await self.chunks.open()

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
        await self.chunks.close()
        await self.meta.close()
        await trio.to_thread.run_sync(self.node_lock.release)

    async def run_background(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Periodic work (GC, push delivery) in a nursery the node owns; cancelled by ``close``."""
        with trio.CancelScope() as scope:
            self._background = scope
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for task in self.background_tasks():
                    nursery.start_soon(task)
                task_status.started()
                await trio.sleep_forever()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run ``fn`` in the node's own nursery; False (not run) before the node serves."""
        if self._nursery is None:
            return False
        self._nursery.start_soon(fn)
        return True

    def background_tasks(self) -> list[Any]:
        """Coroutine functions to run for the node's lifetime."""
        return [self._collect_periodically]

    async def _collect_periodically(self) -> None:
        interval = max(1.0, float(self.config.uploads.gc_interval))
        while True:
            await trio.sleep(interval)
            try:
                await self.collect_garbage()
            except Exception:
                log.exception("upload expiry or garbage collection failed; will retry")

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
        )
        if report.deleted:
            log.info("reclaimed %d chunk(s), %d bytes", report.deleted, report.deleted_bytes)

    async def storage_quota(self, user_id: str) -> int:
        """Bytes the user may store (0 = unlimited), from the plan policy."""
        return await self.auth.storage_quota(user_id)

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a bearer-authenticated route (``vault.auth.service``)."""
        return await self.auth.authenticate(authorization)

    async def health(self) -> str | None:
        """``None`` when healthy, otherwise a short reason the stores cannot be read."""
        try:
            self.meta.schema_version()
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
