"""Two-way sync of a local folder with a folder of the node.

A round: send what a killed run left pending; pull the node's changes since the sync token (a
whole listing on a first sync or after ``resetRequired``); scan the folder; plan with the index
as the common base (``reconcile``); apply the local side (moves, deletes, adopted files, folders);
queue local changes durably, send them through ``sync/files`` (content the node lacks is uploaded,
resumably); download what changed on the node (temp file, verify, rename). Conflicts the node
records are kept with their path (held: neither side touches it) and handed to ``on_conflict``;
``resolve`` applies one of the three resolutions on the node and here.

``run`` repeats rounds whenever the folder changes (watchfiles) or the node reports a change
(a long poll on ``sync/status?wait=N``), until stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import inspect
import os
import posixpath
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio

from vault_client import wire
from vault_client.client import Client
from vault_client.downloads import LocalChanged, partial_path
from vault_client.errors import ChecksumMismatch, NetworkNotAllowed, NodeError, NodeUnreachable, NotFound
from vault_client.local_tree import LocalFile, ignored, scan, stat_key
from vault_client.offline_queue import as_result, for_queue, queue_op
from vault_client.reconcile import Download, LocalDelete, LocalMove, PathMap, Plan, Send, plan_round, wire_change
from vault_client.state import ConflictRow, IndexRow, PendingRow, RemoteRow, Root
from vault_client.tasks import open_nursery
from vault_client.uploads import UploadItem

Resolution = str  # "keep_local" | "keep_remote" | "keep_both"
RESOLUTIONS = ("keep_local", "keep_remote", "keep_both")
BATCH = 1000  # local changes per sync/files or queue/add request (the node's limit)
QUEUE_CHECKS = 8  # how many times a round asks the node's queue before leaving the rest for later


@dataclass(frozen=True)
class ConflictInfo:
    """An open conflict, as the user sees it: the local path, what was done here, the reason."""

    conflict_id: str
    path: str
    action: str
    reason: str
    remote: wire.FileEntry | None


ConflictHandler = Callable[[ConflictInfo], "Awaitable[Resolution | None] | Resolution | None"]


@dataclass
class RoundReport:
    uploaded: int = 0
    downloaded: int = 0
    copied_locally: int = 0
    deleted_here: int = 0
    moved_here: int = 0
    sent: int = 0
    new_conflicts: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # left for the next round (edited meanwhile)
    offline: bool = False
    storage_full: bool = False  # the plan's quota or the node's disk refused content
    full_listing: bool = False

    @property
    def changed_anything(self) -> bool:
        return bool(self.uploaded or self.downloaded or self.deleted_here or self.moved_here or self.sent)


class Syncer:
    def __init__(
        self,
        client: Client,
        local: Path,
        remote: str = "/",
        *,
        on_conflict: ConflictHandler | None = None,
        pull_only: bool = False,
        downloads_in_flight: int = 4,
    ) -> None:
        self.client = client
        self.state = client.state
        self.local = Path(local).resolve()
        self.local.mkdir(parents=True, exist_ok=True)
        self.root: Root = self.state.root(self.local, remote)
        self.paths = PathMap(self.root.remote)
        self.on_conflict = on_conflict
        self.pull_only = pull_only
        self.downloads_in_flight = downloads_in_flight
        self.round_done = trio.Event()
        # After resetRequired the node cannot say what was deleted since the token (its journal
        # was rebuilt or restored): a synced file it no longer lists is sent again, not deleted.
        self._after_reset = False

    def _reload(self) -> Root:
        found = self.state.find_root(self.local)
        assert found is not None
        self.root = found
        return found

    # -- a round --------------------------------------------------------------------------------

    async def sync_once(self) -> RoundReport:
        report = RoundReport()
        try:
            if not self.pull_only:
                await self.send_pending(report)
            await self.pull(report)
        except NodeUnreachable:
            report.offline = True
        if report.offline and self.pull_only:
            return report
        index = self.state.index(self.root.id)
        tree = await scan(self.local, index)
        skip = self._skipped(tree.files)
        for path in skip:
            tree.files.pop(path, None)
        held = self._held()
        remote, folders = self.state.remote(self.root.id), self.state.remote_folders(self.root.id)
        plan = plan_round(tree, index, remote, folders, held, self.paths, trust_deletes=not self._after_reset)
        self._apply_local(plan, report)
        if not self.pull_only:
            self._queue(plan, offline=report.offline)
            if not report.offline:
                try:
                    await self.send_pending(report)
                    await self._drop_folders(plan)
                except NodeUnreachable:
                    report.offline = True
        if not report.offline:
            try:
                await self._download_all(plan.downloads, tree.files, report)
            except NodeUnreachable:
                report.offline = True
        self._mark_folders_seen()
        if not report.offline:
            self._after_reset = False
        self.round_done.set()
        self.round_done = trio.Event()
        return report

    def _held(self) -> set[str]:
        held: set[str] = set()
        for row in self.state.conflicts(self.root.id):
            held.add(row.path)
            other = row.change.get("_newPath")
            if isinstance(other, str):
                held.add(other)
        for pending in self.state.pending(self.root.id):
            held.add(pending.path)
            other = pending.change.get("_newPath")
            if isinstance(other, str):
                held.add(other)
        return held

    def _skipped(self, files: dict[str, LocalFile]) -> set[str]:
        """Files the node refused (a name it does not accept, say): not sent again unchanged."""
        return {p for p, f in files.items() if self.state.get(self._skip_key(p, f.checksum)) is not None}

    def _skip_key(self, path: str, checksum: str) -> str:
        return f"skip:{self.root.id}:{path}:{checksum}"

    # -- pulling the node's changes -------------------------------------------------------------

    async def pull(self, report: RoundReport | None = None) -> None:
        root = self._reload()
        token = None if root.full_resync else root.sync_token
        listing = token is None
        files: dict[str, RemoteRow] = {}
        folders: set[str] = set()
        while True:
            status = await self.client.sync_status(token, limit=1000)
            if status.reset_required:
                # The node cannot answer this token exactly: list everything, then reconcile
                # with the index as base, so local edits are still recognised and sent.
                token, listing, files, folders = status.next_sync_token, True, {}, set()
                self._after_reset = True
                continue
            if listing:
                for entry in status.changes.created:
                    row = self._remote_row(entry)
                    if row is not None:
                        files[row.file_id] = row
                folders.update(f for f in status.changes.folders.created if self.paths.folder_to_local(f))
            else:
                with self.state.transaction() as db:
                    self._apply_delta(db, status.changes)
                    self.state.set_token(db, root.id, status.next_sync_token)
            token = status.next_sync_token
            if not status.has_more:
                self._forget_resolved(status.conflicts)
                break
        if listing:
            if report is not None:
                report.full_listing = True
            with self.state.transaction() as db:
                self.state.clear_remote(db, root.id)
                for row in files.values():
                    self.state.put_remote(db, root.id, row)
                for folder in folders:
                    self.state.put_remote_folder(db, root.id, folder, True)
                self.state.set_token(db, root.id, token)
                db.execute("UPDATE roots SET full_resync = 0 WHERE id = ?", (root.id,))
            self._mark_folders_seen()
        self._reload()

    def _remote_row(self, entry: wire.FileEntry) -> RemoteRow | None:
        rel = self.paths.to_local(entry.folder, entry.name)
        if rel is None or any(ignored(part) for part in rel.split("/")):
            return None
        return RemoteRow(entry.id, rel, entry.checksum, entry.size, entry.version)

    def _apply_delta(self, db: Any, changes: wire.Changes) -> None:
        root = self.root.id
        for entry in changes.created + changes.updated:
            row = self._remote_row(entry)
            if row is None:
                self.state.drop_remote(db, root, entry.id)  # moved out of the synced folder
            else:
                self.state.put_remote(db, root, row)
        for gone in changes.deleted:
            self.state.drop_remote(db, root, gone.id)
        for folder in changes.folders.deleted:
            self.state.put_remote_folder(db, root, folder, False)
        for moved in changes.folders.moved:
            self.state.put_remote_folder(db, root, moved.previous_folder, False)
            if self.paths.folder_to_local(moved.folder):
                self.state.put_remote_folder(db, root, moved.folder, True)
        for folder in changes.folders.created:
            if self.paths.folder_to_local(folder):
                self.state.put_remote_folder(db, root, folder, True)

    def _forget_resolved(self, open_conflicts: list[wire.ConflictView]) -> None:
        """Conflicts resolved elsewhere (another client, the web) are no longer held here."""
        if len(open_conflicts) >= 1000:
            return  # the node lists at most 1,000: cannot tell
        still = {c.conflict_id for c in open_conflicts}
        with self.state.transaction() as db:
            for row in self.state.conflicts(self.root.id):
                if row.conflict_id not in still:
                    self.state.drop_conflict(db, row.conflict_id)

    # -- the local side -------------------------------------------------------------------------

    def _apply_local(self, plan: Plan, report: RoundReport) -> None:
        root = self.root.id
        for move in plan.moves:
            self._move_here(move, report)
        with self.state.transaction() as db:
            for path, remote, here in plan.adopt:
                self.state.put_index(
                    db, root, IndexRow(path, remote.file_id, remote.version, here.checksum, here.size, here.mtime_ns)
                )
            for path in plan.forget:
                self.state.drop_index(db, root, path)
        for delete in plan.deletes:
            self._delete_here(delete, report)
        for rel in plan.make_dirs:
            (self.local / rel).mkdir(parents=True, exist_ok=True)

    def _move_here(self, move: LocalMove, report: RoundReport) -> None:
        source, target = self.local / move.path, self.local / move.new_path
        if stat_key(source) != (move.expect.size, move.expect.mtime_ns) or target.exists():
            report.skipped.append(move.path)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        moved = stat_key(target) or (move.expect.size, move.expect.mtime_ns)
        same = move.remote.checksum == move.expect.checksum
        with self.state.transaction() as db:
            base = self.state.index_row(self.root.id, move.path)
            self.state.drop_index(db, self.root.id, move.path)
            version = move.remote.version if same else (base.version if base else None)
            self.state.put_index(
                db,
                self.root.id,
                IndexRow(move.new_path, move.remote.file_id, version, move.expect.checksum, moved[0], moved[1]),
            )
        self._prune_dirs(posixpath.dirname(move.path))
        report.moved_here += 1

    def _delete_here(self, delete: LocalDelete, report: RoundReport) -> None:
        target = self.local / delete.path
        if stat_key(target) != (delete.expect.size, delete.expect.mtime_ns):
            report.skipped.append(delete.path)  # edited meanwhile: the next round sends it
            return
        target.unlink()
        with self.state.transaction() as db:
            self.state.drop_index(db, self.root.id, delete.path)
        self._prune_dirs(posixpath.dirname(delete.path))
        report.deleted_here += 1

    def _prune_dirs(self, rel: str) -> None:
        """Remove now-empty folders the node no longer has (up to the root)."""
        known = self.state.remote_folders(self.root.id)
        while rel:
            if self.paths.folder_to_remote(rel) in known:
                return
            try:
                (self.local / rel).rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise
            rel = posixpath.dirname(rel)

    def _mark_folders_seen(self) -> None:
        folders = self.state.remote_folders(self.root.id)
        here = []
        for folder, seen in folders.items():
            rel = self.paths.folder_to_local(folder)
            if not seen and rel and (self.local / rel).is_dir():
                here.append(folder)
        if here:
            with self.state.transaction() as db:
                self.state.mark_folders_seen(db, self.root.id, here)

    # -- sending local changes ------------------------------------------------------------------

    def _queue(self, plan: Plan, *, offline: bool) -> None:
        """Local changes go to the durable queue first: a run killed (or offline) from here on
        sends them later, with the token they were made on."""
        token = self.root.sync_token
        sends = list(plan.sends) + [
            Send(rel, wire.MkdirChange(folder=self.paths.folder_to_remote(rel))) for rel in plan.send_dirs
        ]
        if not sends:
            return
        with self.state.transaction() as db:
            for send in sends:
                op_id = "op_" + os.urandom(8).hex()
                # Kept in the state as JSON: the node's field names, unset ones left out, plus ours.
                wired = msgspec.to_builtins(msgspec.structs.replace(send.change, local_id=op_id))
                change = {k: v for k, v in wired.items() if v is not None}
                change.update(_path=send.path, _token=token)
                if offline:
                    change["_offline"] = True  # made while the node was away: for its queue
                if send.new_path is not None:
                    change["_newPath"] = send.new_path
                if send.local is not None:
                    change["_mtimeNs"] = send.local.mtime_ns
                self.state.add_pending(db, self.root.id, op_id, send.path, change)

    async def send_pending(self, report: RoundReport) -> None:
        """Send the pending queue in order: runs of changes made on one token, each through
        ``sync/files`` or (made offline) the node's queue. A queued run the node has not finished
        stops the rest for this round: later changes may depend on it."""
        rows = self.state.pending(self.root.id)
        while rows:
            token = rows[0].change.get("_token")
            queued = for_queue(rows[0])
            batch: list[PendingRow] = []
            for row in rows[:BATCH]:
                if row.change.get("_token") != token or for_queue(row) != queued:
                    break
                batch.append(row)
            rows = rows[len(batch) :]
            text = token if isinstance(token, str) else None
            if queued:
                if not await self._through_queue(batch, text, report):
                    return
                continue
            fresh: list[PendingRow] = []
            for row in batch:
                if not await self._resume_upload(row, report):
                    fresh.append(row)
            if not fresh:
                continue
            self.state.note_attempt([r.id for r in fresh])
            await self._send_batch(fresh, text, report)
            report.sent += len(fresh)

    async def _through_queue(self, rows: list[PendingRow], token: str | None, report: RoundReport) -> bool:
        """Hand ``rows`` to the node's queue and wait, briefly, for the node to run them; whether
        all of them finished (the others stay pending and are asked about next round)."""
        self.state.note_attempt([r.id for r in rows])
        waiting = list(rows)
        for attempt in range(QUEUE_CHECKS):
            if attempt:
                await trio.sleep(min(1.0, 0.02 * 2**attempt))  # the node's runner is woken at once
            answer = await self.client.queue_add([queue_op(r) for r in waiting], token)
            outcomes = {o.id: o for o in answer.operations}
            still: list[PendingRow] = []
            for row in waiting:
                result = as_result(row, outcomes[row.id]) if row.id in outcomes else None
                if result is None:
                    still.append(row)
                else:
                    await self._settle(row, result, report)
                    report.sent += 1
            waiting = still
            if not waiting:
                return True
        return False

    async def _send_batch(self, rows: list[PendingRow], token: str | None, report: RoundReport) -> None:
        changes: list[Any] = []
        sendable: list[PendingRow] = []
        for row in rows:
            try:
                changes.append(wire_change(row.change))
            except msgspec.ValidationError as exc:
                # The node's own schema (the generated wire structs) refuses it, e.g. a name with a
                # zero-width space: rejected here exactly as the node would, without a request.
                error = wire.ResultError(code="VALIDATION_ERROR", message=str(exc))
                await self._settle(row, wire.ChangeResult(local_id=row.id, status="rejected", error=error), report)
            else:
                sendable.append(row)
        if not sendable:
            return
        rows = sendable
        try:
            answer = await self.client.sync_files(changes, token)
        except NodeError as exc:
            if exc.code != "VALIDATION_ERROR":
                raise
            # The node refused the request as a whole (a field it does not accept): one change at
            # a time finds the culprit; the others still go.
            if len(rows) > 1:
                for row in rows:
                    await self._send_batch([row], token, report)
                return
            error = wire.ResultError(code=exc.code, message=exc.message)
            answer = wire.SyncFilesAnswer(
                results=[wire.ChangeResult(local_id=rows[0].id, status="rejected", error=error)],
                next_sync_token=token or "",
            )
        for row, result in zip(rows, answer.results, strict=True):
            await self._settle(row, result, report)

    async def _resume_upload(self, row: PendingRow, report: RoundReport) -> bool:
        """An upload a killed run had begun for this change: finish it from the node's view."""
        change = row.change
        if change.get("action") not in ("upload", "update"):
            return False
        key = self._upload_key(row.path)
        checksum, size = str(change["checksum"]), int(change["size"])  # type: ignore[call-overload]
        if self.state.open_upload(key, checksum, size) is None:
            return False
        folder, name = self.paths.to_remote(row.path)
        item = UploadItem(self.local / row.path, folder, name, checksum=checksum, key=key)
        try:
            entry = await self.client.uploader._resume(item)
        except (FileNotFoundError, ChecksumMismatch):
            self.state.drop_upload(key)
            entry = None
        if entry is None:
            return False
        self._record_content(row, entry)
        report.uploaded += 1
        return True

    def _upload_key(self, path: str) -> str:
        return f"sync:{self.root.id}:{path}"

    async def _settle(self, row: PendingRow, result: wire.ChangeResult, report: RoundReport) -> None:
        change = row.change
        action = change.get("action")
        root = self.root.id
        if result.status == "applied":
            with self.state.transaction() as db:
                self._applied(db, row, result.file_id)
                self.state.drop_pending(db, row.id)
        elif result.status == "uploadRequired" and result.upload is not None:
            folder, name = self.paths.to_remote(row.path)
            item = UploadItem(
                self.local / row.path, folder, name, checksum=str(change["checksum"]), key=self._upload_key(row.path)
            )
            try:
                entry = await self.client.uploader.send_planned(item, result.upload)
            except (ChecksumMismatch, FileNotFoundError):
                # Edited or removed while it was sent: the next round sees it as it is now.
                self.state.drop_upload(item.state_key)
                with self.state.transaction() as db:
                    self.state.drop_pending(db, row.id)
                report.skipped.append(row.path)
                return
            self._record_content(row, entry)
            report.uploaded += 1
        elif result.status == "conflict" and result.conflict_id:
            info = ConflictRow(
                conflict_id=result.conflict_id,
                root=root,
                path=row.path,
                file_id=result.file_id,
                reason="",
                change=change,
                remote=None,
                created_at="",
            )
            with self.state.transaction() as db:
                self.state.put_conflict(db, info)
                self.state.drop_pending(db, row.id)
            report.new_conflicts.append(result.conflict_id)
            await self._tell_conflict(result.conflict_id)
        else:
            code = result.error.code if result.error else "REJECTED"
            message = result.error.message if result.error else ""
            report.rejected.append(f"{row.path}: {code} {message}".strip())
            with self.state.transaction() as db:
                self.state.drop_pending(db, row.id)
                if action in ("update", "delete") and code == "NOT_FOUND":
                    self.state.drop_index(db, root, row.path)  # gone for good: sent as new next time
                elif action in ("move", "rename"):
                    db.execute("UPDATE roots SET full_resync = 1 WHERE id = ?", (root,))
                elif code in ("STORAGE_QUOTA_EXCEEDED", "INSUFFICIENT_STORAGE"):
                    report.storage_full = True  # sent again next round: space may be freed by then
                elif action == "upload":
                    self.state.put(self._skip_key(row.path, str(change.get("checksum"))), code)

    def _applied(self, db: Any, row: PendingRow, file_id: str | None) -> None:
        change, root = row.change, self.root.id
        action = change["action"]
        # One row each, not the whole index: a first sync settles thousands of these.
        if action in ("upload", "update") and file_id:
            known = self.state.remote_row(root, file_id)
            version = known.version if known else 0
            size, checksum = int(change["size"]), str(change["checksum"])  # type: ignore[call-overload]
            mtime = int(change.get("_mtimeNs", 0))  # type: ignore[call-overload]
            self.state.put_index(db, root, IndexRow(row.path, file_id, version, checksum, size, mtime))
            self.state.put_remote(db, root, RemoteRow(file_id, row.path, checksum, size, version))
        elif action == "delete":
            self.state.drop_index(db, root, row.path)
            if file_id:
                self.state.drop_remote(db, root, file_id)
        elif action in ("move", "rename"):
            base = self.state.index_row(root, row.path)
            new_path = str(change["_newPath"])
            if base is not None:
                self.state.drop_index(db, root, row.path)
                self.state.put_index(
                    db, root, IndexRow(new_path, base.file_id, base.version, base.checksum, base.size, base.mtime_ns)
                )
            r = self.state.remote_row(root, file_id) if file_id else None
            if r is not None:
                self.state.put_remote(db, root, RemoteRow(r.file_id, new_path, r.checksum, r.size, r.version))
        elif action == "mkdir":
            self.state.put_remote_folder(db, root, str(change["folder"]), True)

    def _record_content(self, row: PendingRow, entry: wire.FileEntry) -> None:
        mtime = int(row.change.get("_mtimeNs", 0))  # type: ignore[call-overload]
        with self.state.transaction() as db:
            self.state.put_index(
                db, self.root.id, IndexRow(row.path, entry.id, entry.version, entry.checksum, entry.size, mtime)
            )
            self.state.put_remote(
                db, self.root.id, RemoteRow(entry.id, row.path, entry.checksum, entry.size, entry.version)
            )
            self.state.drop_pending(db, row.id)

    async def _drop_folders(self, plan: Plan) -> None:
        for folder in plan.drop_dirs:
            with contextlib.suppress(NotFound):  # gone already
                await self.client.session.call(wire.DELETE_FOLDERS, query=wire.DeleteFoldersQuery(folder=folder))
            with self.state.transaction() as db:
                self.state.put_remote_folder(db, self.root.id, folder, False)

    # -- downloads ------------------------------------------------------------------------------

    async def _download_all(self, downloads: list[Download], files: dict[str, LocalFile], report: RoundReport) -> None:
        by_content: dict[str, LocalFile] = {}
        for f in files.values():
            by_content.setdefault(f.checksum, f)
        limiter = trio.CapacityLimiter(self.downloads_in_flight)

        async def one(item: Download) -> None:
            async with limiter:
                await self._download(item, by_content.get(item.remote.checksum), report)

        async with open_nursery() as nursery:
            for item in downloads:
                nursery.start_soon(one, item)

    async def _download(self, item: Download, same_content: LocalFile | None, report: RoundReport) -> None:
        target = self.local / item.path
        expect = item.expect

        def still_ok(path: Path) -> bool:
            now = stat_key(path)
            return now is None if expect is None else now == (expect.size, expect.mtime_ns)

        if not still_ok(target):
            report.skipped.append(item.path)
            return
        r = item.remote
        try:
            if same_content is not None and await self._copy_local(same_content, target, r, still_ok):
                report.copied_locally += 1
            else:
                await self.client.downloader.download(
                    r.file_id, r.checksum, r.size, target, label=item.path, still_ok=still_ok
                )
                report.downloaded += 1
        except LocalChanged:
            report.skipped.append(item.path)
            return
        except NotFound:
            return  # gone on the node meanwhile: the next pull says so
        landed = stat_key(target)
        if landed is None:
            return
        with self.state.transaction() as db:
            self.state.put_index(
                db, self.root.id, IndexRow(item.path, r.file_id, r.version, r.checksum, landed[0], landed[1])
            )

    async def _copy_local(
        self, source: LocalFile, target: Path, r: RemoteRow, still_ok: Callable[[Path], bool]
    ) -> bool:
        """The content is already here under another name: copy it instead of downloading."""
        origin = self.local / source.path
        if stat_key(origin) != (source.size, source.mtime_ns):
            return False
        temp = partial_path(target, r.file_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(shutil.copyfile, origin, temp)
        if stat_key(origin) != (source.size, source.mtime_ns) or not still_ok(target):
            temp.unlink(missing_ok=True)
            return False
        os.replace(temp, target)
        return True

    # -- conflicts ------------------------------------------------------------------------------

    def conflicts(self) -> list[ConflictRow]:
        return self.state.conflicts(self.root.id)

    async def _tell_conflict(self, conflict_id: str) -> None:
        status = await self.client.sync_status(self.root.sync_token, limit=1)
        view = next((c for c in status.conflicts if c.conflict_id == conflict_id), None)
        rows = {r.conflict_id: r for r in self.state.conflicts(self.root.id)}
        row = rows.get(conflict_id)
        if row is None:
            return
        if view is not None:
            remote = None if view.remote is None else msgspec.to_builtins(view.remote)
            row = dataclasses.replace(row, reason=view.reason, created_at=view.created_at, remote=remote)
            with self.state.transaction() as db:
                self.state.put_conflict(db, row)
        if self.on_conflict is None:
            return
        info = conflict_info(row)
        answer = self.on_conflict(info)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer is not None:
            await self.resolve(conflict_id, answer)

    async def resolve(self, conflict_id: str, resolution: Resolution) -> wire.ResolveResult:
        """Resolve on the node, then make the local folder agree (the next round finishes it)."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        row = {r.conflict_id: r for r in self.state.conflicts(self.root.id)}.get(conflict_id)
        result = await self.client.resolve(conflict_id, resolution)
        if (
            result.status == "rejected"
            and resolution == "keep_local"
            and row is not None
            and row.change.get("action") == "update"
            and result.error is not None
            and result.error.code == "NOT_FOUND"
        ):
            # The node cannot apply an edit to a file deleted meanwhile ("No such file"): drop
            # the change there (keep_remote) and send the local file again as a new one here.
            result = await self.client.resolve(conflict_id, "keep_remote")
            if result.status != "rejected":
                with self.state.transaction() as db:
                    self.state.drop_index(db, self.root.id, row.path)
                    self.state.drop_conflict(db, conflict_id)
                return result
        if result.status == "rejected":
            if result.error is not None and result.error.code == "NOT_FOUND" and row is not None:
                with self.state.transaction() as db:
                    self.state.drop_conflict(db, conflict_id)
            code = result.error.code if result.error else "REJECTED"
            message = result.error.message if result.error else "rejected"
            raise NodeError(code, message, status=200)
        if row is None:
            return result
        entry = result.file
        if result.status == "uploadRequired" and result.upload is not None:
            content_path = self._content_path(row)
            folder, name = self.paths.to_remote(content_path)
            item = UploadItem(
                self.local / content_path,
                folder,
                name,
                checksum=str(row.change.get("checksum")),
                key=self._upload_key(content_path),
            )
            entry = await self.client.uploader.send_planned(item, result.upload)
        self._resolve_here(row, resolution, entry)
        return result

    def _content_path(self, row: ConflictRow) -> str:
        new_path = row.change.get("_newPath")
        return new_path if isinstance(new_path, str) else row.path

    def _resolve_here(self, row: ConflictRow, resolution: Resolution, entry: wire.FileEntry | None) -> None:
        root, action = self.root.id, str(row.change.get("action"))
        here_path = self._content_path(row)
        here = stat_key(self.local / here_path)
        index = self.state.index(root)
        with self.state.transaction() as db:
            if resolution == "keep_remote":
                if action in ("move", "rename") and here is not None and not (self.local / row.path).exists():
                    os.rename(self.local / here_path, self.local / row.path)  # undo the local rename
                elif here is not None:
                    base = index.get(row.path)
                    checksum = (
                        base.checksum
                        if base is not None and action == "delete"
                        else str(row.change.get("checksum", base.checksum if base else ""))
                    )
                    if action in ("upload", "update") or base is None:
                        # Marked as the base, so the round replaces it with the node's version
                        # (or removes it when the node's is gone).
                        file_id = entry.id if entry is not None else row.file_id
                        self.state.put_index(db, root, IndexRow(row.path, file_id, None, checksum, here[0], here[1]))
                else:
                    self.state.drop_index(db, root, row.path)
            elif resolution == "keep_local" and entry is not None and here is not None:
                self.state.drop_index(db, root, row.path)
                self.state.put_index(
                    db, root, IndexRow(here_path, entry.id, entry.version, entry.checksum, here[0], here[1])
                )
                self.state.put_remote(
                    db, root, RemoteRow(entry.id, here_path, entry.checksum, entry.size, entry.version)
                )
            elif resolution == "keep_local" and action == "delete":
                self.state.drop_index(db, root, row.path)
                if row.file_id:
                    self.state.drop_remote(db, root, row.file_id)
            elif resolution == "keep_both":
                if action in ("upload", "update") and entry is not None and here is not None:
                    # Where the node kept the local version (its folder may differ: a file deleted
                    # there is kept at the root); outside the synced folder it is simply left.
                    kept = self.paths.to_local(entry.folder, entry.name) or here_path
                    if kept != here_path and not (self.local / kept).exists():
                        (self.local / kept).parent.mkdir(parents=True, exist_ok=True)
                        os.rename(self.local / here_path, self.local / kept)
                        moved = stat_key(self.local / kept) or here
                        self.state.put_index(
                            db, root, IndexRow(kept, entry.id, entry.version, entry.checksum, moved[0], moved[1])
                        )
                        self.state.put_remote(
                            db, root, RemoteRow(entry.id, kept, entry.checksum, entry.size, entry.version)
                        )
                    self.state.drop_index(db, root, row.path)  # the node's version comes down here
                elif action in ("move", "rename") and here is not None:
                    base = index.get(row.path)
                    self.state.drop_index(db, root, row.path)
                    if base is not None:
                        self.state.put_index(
                            db, root, IndexRow(here_path, base.file_id, None, base.checksum, here[0], here[1])
                        )
                else:
                    self.state.drop_index(db, root, row.path)
            self.state.drop_conflict(db, row.conflict_id)

    # -- running until stopped ------------------------------------------------------------------

    async def run(
        self,
        stop: trio.Event,
        *,
        poll_wait: int = 60,
        watch: bool = True,
        on_round: Callable[[RoundReport], None] | None = None,
        before_round: Callable[[], None] | None = None,
        offline_retry: float = 15.0,
    ) -> None:
        """Sync rounds until ``stop`` is set: one at once, then whenever the folder changes or the
        node reports a change (long poll), or every ``offline_retry`` seconds while offline."""
        wake = trio.Event()

        def poke() -> None:
            nonlocal wake
            wake.set()

        async def watcher() -> None:
            import watchfiles

            async for changes in watchfiles.awatch(self.local, stop_event=stop, debounce=300, step=50):  # type: ignore[arg-type]
                if any(not ignored(Path(p).name) for _, p in changes):
                    poke()

        async def poller() -> None:
            while not stop.is_set():
                token = self.root.sync_token
                try:
                    status = await self.client.sync_status(token, wait=poll_wait, limit=1)
                except NodeUnreachable:
                    await trio.sleep(offline_retry)
                    poke()
                    continue
                if status.has_changes or status.reset_required or status.has_more:
                    done = self.round_done
                    poke()
                    await done.wait()

        async with open_nursery() as nursery:
            nursery.start_soon(_cancel_on, stop, nursery.cancel_scope)
            if watch:
                nursery.start_soon(watcher)
            nursery.start_soon(poller)
            first = True
            while not stop.is_set():
                if not first:
                    await wake.wait()
                first = False
                wake = trio.Event()
                if before_round is not None:
                    try:
                        before_round()  # e.g. --wifi-only: not on this network
                    except NetworkNotAllowed:
                        nursery.start_soon(_poke_later, offline_retry, poke)
                        continue
                report = await self.sync_once()
                if on_round is not None:
                    on_round(report)
                if report.offline:
                    nursery.start_soon(_poke_later, offline_retry, poke)


async def _cancel_on(stop: trio.Event, scope: trio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()


async def _poke_later(delay: float, poke: Callable[[], None]) -> None:
    await trio.sleep(delay)
    poke()


def conflict_info(row: ConflictRow) -> ConflictInfo:
    remote = None if row.remote is None else msgspec.convert(row.remote, wire.FileEntry)
    return ConflictInfo(row.conflict_id, row.path, str(row.change.get("action")), row.reason, remote)
