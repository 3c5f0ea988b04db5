"""``vault fsck``, ``vault gc`` and ``vault migrate-chunks``: chunk storage without the HTTP server.

All open the metadata and chunk stores of the data directory directly. ``fsck`` only reads, so
it may run beside a live node; ``gc`` deletes and ``migrate-chunks`` must see every chunk, so
they hold the node lock while they run: they refuse when a node is running, and a node cannot
start until they are done. A chunk store that cannot be reached or refuses the configuration
(``StorageUnavailable``, ``StorageRefused``: an S3 bucket, say) stops the command with its one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import trio

from vault import plugins
from vault.chunks import ChunkStore, StorageRefused, StorageUnavailable
from vault.chunks.loading import make_backend
from vault.chunks.migrate import migrate_chunks
from vault.cli.common import CommandError, check_plugins, config_from_args, setup_logging
from vault.config import Config, load_config
from vault.datadir_lock import DataDirLocked, hold_node_lock
from vault.fsck import check_storage
from vault.gc import collect_garbage
from vault.meta import MetaStore
from vault.meta_upgrades import metadata_store
from vault.uploads.expiry import expire_sessions, overdue

_PROGRESS_INTERVAL = 0.2  # redrawing one terminal line
_PLAIN_PROGRESS_INTERVAL = 5.0  # a new line in a pipe or log
_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    fsck = commands.add_parser(
        "fsck",
        parents=[parent],
        help="verify every stored chunk",
        description="Re-hash every stored chunk and check that every referenced chunk is stored. "
        "Exits 1 and lists the chunk ids when any is corrupt or missing. Safe while the node runs.",
    )
    fsck.set_defaults(run=run_fsck)
    gc = commands.add_parser(
        "gc",
        parents=[parent],
        help="reclaim chunks nothing references",
        description="Find chunks no file or live upload references. Reports what it would reclaim; "
        "deletes them with --yes. The node must be stopped.",
    )
    gc.add_argument("--yes", action="store_true", help="delete the unreferenced chunks (default: only report)")
    gc.set_defaults(run=run_gc)
    migrate = commands.add_parser(
        "migrate-chunks",
        parents=[parent],
        help="copy every chunk to another chunk backend",
        description="Copy every chunk from this config's chunk backend to the one CONFIG names (its "
        "[storage] backend and options), each verified by its BLAKE3 id on the way. Chunks already "
        "there are skipped, so an interrupted run resumes. Nothing is deleted. The node must be stopped; "
        "afterwards point [storage] at the new backend.",
    )
    migrate.add_argument("--to", required=True, metavar="CONFIG", help="TOML config naming the target backend")
    migrate.add_argument("--workers", type=int, default=4, help="chunks copied at once (4)")
    migrate.set_defaults(run=run_migrate)


def human_size(size: int, unit_of: int | None = None) -> str:
    """``1.2 GiB``; with ``unit_of``, in the unit that suits that other number (for ``a/b`` pairs)."""
    reference = size if unit_of is None else unit_of
    for name, factor in _UNITS:
        if reference >= factor:
            return f"{size / factor:.1f} {name}"
    return f"{size} B"


def _config(args: argparse.Namespace) -> Config:
    """The command's config; fsck and gc need only its chunk backend, which must be installed."""
    config = config_from_args(args)
    check_plugins(config, groups=(plugins.BACKENDS,))
    return config


def _existing_data_dir(config: Config) -> Path:
    data_dir = Path(config.storage.data_dir)
    if not data_dir.is_dir():
        raise CommandError(f"no data directory at {data_dir} (use --data-dir or --config)")
    return data_dir


@asynccontextmanager
async def open_stores(config: Config) -> AsyncIterator[tuple[MetaStore, ChunkStore]]:
    meta = metadata_store(config.data_path)
    chunks = ChunkStore(make_backend(config))
    await meta.open()
    try:
        await chunks.open()
        try:
            yield meta, chunks
        finally:
            await chunks.close()
    finally:
        await meta.close()


class Progress:
    """Progress of a check on stderr: chunks and bytes done out of the totals.

    On a terminal one line redrawn in place (``\\r  1234/5678 chunks  1.2/4.5 GiB``) at most five
    times a second; into a pipe or a log file plain lines instead, one every few seconds and the
    final one, so the log stays readable.
    """

    def __init__(
        self, total_chunks: int, total_bytes: int, out: TextIO, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total_chunks = total_chunks
        self.total_bytes = total_bytes
        self.out = out
        self.clock = clock
        self.redraw = out.isatty()
        self.interval = _PROGRESS_INTERVAL if self.redraw else _PLAIN_PROGRESS_INTERVAL
        self._last: float | None = None

    def update(self, count: int, size: int, *, final: bool = False) -> None:
        now = self.clock()
        if not final and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        # A live node may add chunks while we read: never show more done than the total.
        total_chunks, total_bytes = max(self.total_chunks, count), max(self.total_bytes, size)
        done = human_size(size, total_bytes).split()[0]
        line = f"  {count}/{total_chunks} chunks  {done}/{human_size(total_bytes)}"
        if self.redraw:
            self.out.write(f"\r{line}\n" if final else f"\r{line}")
        else:
            self.out.write(f"{line}\n")
        self.out.flush()


def _storage_errors_as_command_errors(run: Callable[[], int]) -> int:
    """Run ``run``; a chunk store that refuses or cannot be reached becomes its one-line message."""
    try:
        return run()
    except (StorageRefused, StorageUnavailable) as exc:
        raise CommandError(str(exc)) from None


def run_fsck(args: argparse.Namespace) -> int:
    config = _config(args)
    _existing_data_dir(config)
    setup_logging("warning", json_lines=False)
    # fsck lists corrupt chunks itself; the store's log line would only break the progress line.
    logging.getLogger("vault.chunks.store").setLevel(logging.CRITICAL)
    return _storage_errors_as_command_errors(lambda: trio.run(fsck, config, sys.stdout, sys.stderr))


async def fsck(config: Config, out: TextIO, err: TextIO) -> int:
    async with open_stores(config) as (meta, chunks):
        stats = await chunks.stats()
        progress = Progress(stats.chunks, stats.bytes, err)
        report = await check_storage(meta, chunks, progress=progress.update)
        progress.update(report.checked, report.checked_bytes, final=True)
    for problem in report.problems:
        out.write(f"{problem.kind:<10} {problem.chunk_id.hex()}  {problem.detail}\n")
    summary = f"{report.checked} chunks ({human_size(report.checked_bytes)}) verified"
    if report.problems:
        out.write(f"fsck: {summary}; {len(report.problems)} problem(s)\n")
        return 1
    out.write(f"fsck: {summary}; no problems\n")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    config = _config(args)
    data_dir = _existing_data_dir(config)
    setup_logging("warning", json_lines=False)
    try:
        with hold_node_lock(data_dir):
            return _storage_errors_as_command_errors(lambda: trio.run(gc, config, bool(args.yes), sys.stdout))
    except DataDirLocked:
        raise CommandError(
            f"a node is running with data directory {data_dir}; stop it before running gc (fsck can run beside it)"
        ) from None


async def gc(config: Config, delete: bool, out: TextIO) -> int:
    async with open_stores(config) as (meta, chunks):
        now = time.time()
        ttl = float(config.uploads.session_ttl)
        # Upload sessions that expired while the node was down still hold their chunks.
        if delete:
            expired = await expire_sessions(meta, now, ttl)
        else:
            with meta.read() as txn:
                expired = len(overdue(txn, now, ttl)[0])
        if expired:
            verb = "closed" if delete else "would close"
            out.write(f"gc: {verb} {expired} expired upload session(s)\n")
        # Stopped node: no upload can be between storing a chunk and referencing it, so no grace.
        report = await collect_garbage(meta, chunks, now=now, grace=0.0, delete=delete)
        remaining = await chunks.stats()
    if delete:
        out.write(
            f"gc: reclaimed {report.deleted} unreferenced chunk(s) ({human_size(report.deleted_bytes)}); "
            f"{remaining.chunks} chunk(s) ({human_size(remaining.bytes)}) remain\n"
        )
    elif report.reclaimable:
        out.write(
            f"gc: {report.reclaimable} of {report.scanned} chunk(s) are unreferenced; "
            f"would reclaim {human_size(report.reclaimable_bytes)}. Run with --yes to delete them.\n"
        )
    else:
        out.write(f"gc: nothing to reclaim; all {report.scanned} chunk(s) are referenced\n")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    config = _config(args)
    data_dir = _existing_data_dir(config)
    target = load_config(args.to, data_dir=args.data_dir)
    check_plugins(target, groups=(plugins.BACKENDS,))
    if (target.storage.backend, target.storage.options) == (config.storage.backend, config.storage.options):
        raise CommandError(f"{args.to} names the same chunk backend and options as the current config")
    setup_logging("warning", json_lines=False)
    logging.getLogger("vault.chunks.store").setLevel(logging.CRITICAL)
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    try:
        with hold_node_lock(data_dir):
            return _storage_errors_as_command_errors(
                lambda: trio.run(migrate, config, target, args.workers, sys.stdout, sys.stderr)
            )
    except DataDirLocked:
        raise CommandError(
            f"a node is running with data directory {data_dir}; stop it before migrating its chunks"
        ) from None


async def migrate(config: Config, target: Config, workers: int, out: TextIO, err: TextIO) -> int:
    source = ChunkStore(make_backend(config))
    destination = ChunkStore(make_backend(target))
    await source.open()
    try:
        await destination.open()
        try:
            stats = await source.stats()
            progress = Progress(stats.chunks, stats.bytes, err)
            report = await migrate_chunks(source, destination, progress=progress.update, workers=workers)
            progress.update(report.seen, report.seen_bytes, final=True)
        finally:
            await destination.close()
    finally:
        await source.close()
    for chunk_id, reason in report.failed:
        out.write(f"not copied {chunk_id.hex()}  {reason}\n")
    where = f"{target.storage.backend} backend"
    summary = (
        f"migrate-chunks: {report.copied} chunk(s) ({human_size(report.copied_bytes)}) copied to the {where}, "
        f"{report.present} already there"
    )
    if report.failed:
        out.write(f"{summary}; {len(report.failed)} could not be copied (run vault fsck)\n")
        return 1
    out.write(f"{summary}; every chunk of the {config.storage.backend} backend is in the {where}\n")
    return 0
