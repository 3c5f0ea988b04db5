"""The sync service: ``sync/status`` (with ETag and long poll), ``sync/files`` and conflict resolution."""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath

import msgspec

from vault import errors
from vault.clock import Clock, parse_rfc3339
from vault.devices.registry import get_device, mark_synced
from vault.files import journal
from vault.files.changes import ChangeTxn, FileChanges
from vault.files.feed import ChangeFeed
from vault.files.records import FILES, file_entry
from vault.meta import META, MetaStore, Txn
from vault.offload import Offload
from vault.sync import conflicts, tokens
from vault.sync import status as pages
from vault.sync.local_changes import Outcome, UploadNeeded, apply_change, read_remote
from vault.sync.tokens import SyncToken
from vault.sync.wire import (
    ChangeResult,
    DeleteChange,
    LocalChange,
    Resolution,
    ResolveAnswer,
    ResolveRequest,
    ResolveResult,
    ResultError,
    StatusQuery,
    SyncFilesAnswer,
    SyncFilesRequest,
    SyncStatus,
    UpdateChange,
    UploadChange,
)
from vault.uploads.service import UploadService
from vault.uploads.wire import InitFile, InitRequest, PlannedFile

_SYNC_KEY = b"sync_token_key"
_SYNC_NOTE_EVERY = 60.0


class SyncService:
    def __init__(
        self,
        *,
        meta: MetaStore,
        changes: FileChanges,
        feed: ChangeFeed,
        uploads: UploadService,
        clock: Clock,
        offload: Offload,
        quota_of: Callable[[str], Awaitable[int]],
    ) -> None:
        self.meta = meta
        self.changes = changes
        self.feed = feed
        self.uploads = uploads
        self.clock = clock
        self.offload = offload
        self.quota_of = quota_of
        self._key = b""

    async def open(self) -> None:
        """Make the journal's identity and the token key on first start (kept in metadata, so a
        restored backup keeps them, and its tokens from the future are recognised by position)."""

        def ensure(txn: Txn) -> bytes:
            journal.ensure_identity(txn, lambda: os.urandom(8))
            key = txn.get_bytes(META, _SYNC_KEY)
            if key is None:
                key = secrets.token_bytes(32)
                txn.put_bytes(META, _SYNC_KEY, key)
            return key

        self._key = await self.meta.write(ensure)

    def _decode(self, user_id: str, text: str | None) -> SyncToken | None:
        if not text:
            return None
        try:
            return tokens.decode(self._key, user_id, text)
        except tokens.InvalidToken:
            raise errors.ValidationError(
                "syncToken is not one this node gave this account", details={"field": "syncToken"}
            ) from None

    # -- status --------------------------------------------------------------------------------

    async def status(
        self, user_id: str, query: StatusQuery, if_none_match: str | None, *, device_id: str | None = None
    ) -> tuple[SyncStatus | None, str]:
        """The page of changes after ``query``'s token, or ``None`` (304) when ``if_none_match``
        is still the answer's ETag; returns the ETag too."""
        token = self._decode(user_id, query.sync_token)
        since = None
        if query.last_sync and token is None:
            try:
                since = parse_rfc3339(query.last_sync)
            except ValueError:
                raise errors.ValidationError(
                    "lastSync must be an RFC 3339 timestamp", details={"field": "lastSync"}
                ) from None
        # Watch before looking, so a change that lands in between still wakes the long poll.
        with self.feed.watch(user_id) as watch:
            where = await self._position(user_id)
            tag = pages.etag(query.sync_token, query.limit, where)
            nothing_new = pages.up_to_date(token, where) or (if_none_match is not None and if_none_match == tag)
            if query.wait and nothing_new and await watch.wait(float(query.wait)):
                where = await self._position(user_id)
                tag = pages.etag(query.sync_token, query.limit, where)
            if if_none_match is not None and if_none_match == tag:
                return None, tag
            page, open_conflicts, where = await self.offload.run(self._page, user_id, token, since, query.limit)
        now = self.clock.now()
        answer = pages.answer(page, key=self._key, user_id=user_id, now=now, open_conflicts=open_conflicts)
        if device_id is not None:
            await self._note_sync(user_id, device_id, now)
        return answer, pages.etag(query.sync_token, query.limit, where)

    async def _note_sync(self, user_id: str, device_id: str, now: float) -> None:
        """``syncData.lastSyncAt`` of the device, written at most once a minute (a durable write
        per poll would cost more than the poll)."""
        async with self.meta.snapshot() as txn:
            device = get_device(txn, user_id, device_id)
        if device is None or (device.last_sync_at is not None and now - device.last_sync_at < _SYNC_NOTE_EVERY):
            return
        await self.meta.write(lambda txn: mark_synced(txn, user_id, device_id, now))

    async def _position(self, user_id: str) -> pages.Position:
        async with self.meta.snapshot() as txn:
            return pages.position(txn, user_id)

    def _page(
        self, user_id: str, token: SyncToken | None, since: float | None, limit: int
    ) -> tuple[pages.Page, list[conflicts.Conflict], pages.Position]:
        with self.meta.read() as txn:  # the page, its conflicts and its ETag from one snapshot
            page = pages.compute(txn, user_id, token, since, limit)
            return page, conflicts.open_conflicts(txn, user_id), pages.position(txn, user_id)

    # -- local changes -------------------------------------------------------------------------

    async def apply(self, user_id: str, device_id: str, request: SyncFilesRequest, origin: str) -> SyncFilesAnswer:
        """Apply each change in order (``sync/files``); conflicts are recorded, not applied."""
        where = await self._position(user_id)
        base = await self.base_of(user_id, request.sync_token, where)
        results = await self.apply_changes(user_id, device_id, request.local_changes, base, origin)
        # The base, not the head: changes of other devices since the base must still reach this
        # device through sync/status (its own come back too; applying them again is harmless).
        next_token = SyncToken(journal_id=where.journal_id, seq=base)
        return SyncFilesAnswer(results=results, next_sync_token=tokens.encode(self._key, user_id, next_token))

    async def base_of(self, user_id: str, text: str | None, where: pages.Position | None = None) -> int:
        """The journal position local changes based on ``text`` (a sync token) are judged from:
        its own position; the head when there is none (only path rules can conflict then); the
        oldest position still remembered for a stale one. ``VALIDATION_ERROR`` for a bad token."""
        token = self._decode(user_id, text)
        where = where or await self._position(user_id)
        if token is None:
            return where.head
        if pages.is_current(token, where):
            return token.listing_head if token.listing_head is not None else token.seq
        return where.floor

    async def apply_changes(
        self,
        user_id: str,
        device_id: str,
        changes: list[LocalChange],
        base: int,
        origin: str,
        *,
        force: bool = False,
        unique: bool = False,
    ) -> list[ChangeResult]:
        """The changes of one device based on journal position ``base``, each in its own write."""
        remote = await self.offload.run(read_remote, self.meta, user_id, device_id, base)
        quota = await self.quota_of(user_id)
        name = await self._device_name(user_id, device_id)
        results: list[ChangeResult] = []
        for change in changes:

            def one(ctx: ChangeTxn, change: LocalChange = change) -> Outcome:
                return apply_change(
                    ctx,
                    change,
                    user_id=user_id,
                    device_id=device_id,
                    device_name=name,
                    remote=remote,
                    quota=quota,
                    force=force,
                    unique=unique,
                )

            try:
                outcome = await self.changes.write(one, now=self.clock.now())
            except errors.VaultError as exc:
                results.append(_rejected(change.local_id, exc))
                continue
            results.append(await self._with_upload(user_id, device_id, outcome, origin, change.local_id))
        return results

    async def _with_upload(
        self, user_id: str, device_id: str, outcome: Outcome, origin: str, local_id: str
    ) -> ChangeResult:
        if outcome.upload_for is None:
            return outcome.result
        try:
            planned = await self._plan_upload(user_id, device_id, outcome.upload_for, origin, local_id)
        except errors.VaultError as exc:  # e.g. the quota: this change is refused, the others go on
            return _rejected(local_id, exc)
        return msgspec.structs.replace(outcome.result, upload=planned)

    async def _plan_upload(
        self, user_id: str, device_id: str, needed: UploadNeeded, origin: str, local_id: str
    ) -> PlannedFile:
        """Exactly what ``upload/init`` answers for one file."""
        item = InitFile(
            local_id=local_id or needed.name,
            name=needed.name,
            size=needed.size,
            mime_type=needed.mime_type,
            folder=needed.folder,
            checksum=needed.checksum,
            last_modified=needed.last_modified,
        )
        plan = await self.uploads.init(user_id, device_id, InitRequest(files=[item]), origin)
        return plan.files[0]

    async def _device_name(self, user_id: str, device_id: str) -> str:
        async with self.meta.snapshot() as txn:
            device = get_device(txn, user_id, device_id)
        return device.name if device is not None else "another device"

    # -- conflicts -----------------------------------------------------------------------------

    async def resolve(self, user_id: str, device_id: str, request: ResolveRequest, origin: str) -> ResolveAnswer:
        results = [await self._resolve_one(user_id, device_id, r, origin) for r in request.conflicts]
        return ResolveAnswer(results=results)

    async def _resolve_one(self, user_id: str, device_id: str, wanted: Resolution, origin: str) -> ResolveResult:
        async with self.meta.snapshot() as txn:
            conflict = conflicts.get(txn, user_id, wanted.conflict_id)
        if conflict is None:
            return ResolveResult(
                conflict_id=wanted.conflict_id,
                status="rejected",
                error=ResultError(code="NOT_FOUND", message="No such conflict"),
            )
        if conflict.resolved_at is None:
            change = _resolved_change(conflict, wanted)
            if change is not None:
                where = await self._position(user_id)
                (result,) = await self.apply_changes(
                    user_id,
                    conflict.device_id,
                    [change],
                    where.head,
                    origin,
                    force=True,
                    unique=wanted.resolution == "keep_both",
                )
                if result.status == "rejected":
                    return ResolveResult(conflict_id=conflict.id, status="rejected", error=result.error)
                file_id = result.file_id or conflict.file_id
                upload = result.upload
            else:
                file_id, upload = conflict.file_id, None
            now = self.clock.now()

            def mark(ctx: ChangeTxn) -> None:
                current = conflicts.get(ctx.txn, user_id, conflict.id)
                if current is not None and current.resolved_at is None:
                    conflicts.mark_resolved(ctx.txn, current, wanted.resolution, file_id, now)
                    ctx.touch(user_id)

            await self.changes.write(mark, now=now)
        else:
            file_id, upload = conflict.result_file_id, None
        entry = None
        if file_id:
            async with self.meta.snapshot() as txn:
                record = txn.get(FILES, file_id.encode())
            if record is not None and record.user_id == user_id and record.deleted_at is None:
                entry = file_entry(record)
        if upload is not None:
            return ResolveResult(conflict_id=conflict.id, status="uploadRequired", file=entry, upload=upload)
        return ResolveResult(conflict_id=conflict.id, status="resolved", file=entry)


def _resolved_change(conflict: conflicts.Conflict, wanted: Resolution) -> LocalChange | None:
    """The change to apply for a resolution; ``None`` when nothing is to be applied."""
    if wanted.resolution == "keep_remote":
        return None
    change = _with_local_data(conflict.change, wanted.local_data or {})
    if wanted.resolution == "keep_local":
        return change
    # keep_both: the remote version stays; the local one is kept beside it under a new name.
    if isinstance(change, DeleteChange):
        return None  # keeping the remote file is keeping both: there is no local content
    if isinstance(change, UploadChange | UpdateChange):
        folder, name = _where(conflict, change)
        return UploadChange(
            local_id=change.local_id,
            name=conflict_name(name, conflict.device_name, conflict.created_at),
            folder=folder,
            size=change.size,
            checksum=change.checksum,
            last_modified=change.last_modified,
        )
    return change  # a rename or move applied to the remote content keeps both changes


def _where(conflict: conflicts.Conflict, change: UploadChange | UpdateChange) -> tuple[str, str]:
    if isinstance(change, UploadChange):
        return change.folder, change.name
    if conflict.remote is not None:
        return conflict.remote.folder, conflict.remote.name
    return "/", conflict.local_id or "file"


def _with_local_data(change: LocalChange, data: dict[str, object]) -> LocalChange:
    """``localData`` of a keep_local resolution: a new name or modification time for the change."""
    names = {f.name for f in msgspec.structs.fields(change)}
    updates: dict[str, object] = {}
    if isinstance(data.get("name"), str) and "name" in names:
        updates["name"] = data["name"]
    if isinstance(data.get("folder"), str) and "folder" in names:
        updates["folder"] = data["folder"]
    if isinstance(data.get("modifiedAt"), str) and "last_modified" in names:
        updates["last_modified"] = data["modifiedAt"]
    return msgspec.structs.replace(change, **updates) if updates else change


def conflict_name(name: str, device_name: str, when: float) -> str:
    """``photo (conflict Ann's Pixel 7 2024-01-20).jpg`` (made unique when applied, if taken)."""
    path = PurePosixPath(name)
    day = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d")
    device = device_name.replace("/", "-").strip() or "device"
    stem, suffix = (path.stem, path.suffix) if path.suffix and path.stem else (name, "")
    return f"{stem} (conflict {device} {day}){suffix}"


def _rejected(local_id: str, error: errors.VaultError) -> ChangeResult:
    return ChangeResult(local_id=local_id, status="rejected", error=ResultError(code=error.code, message=error.message))
