"""The offline operation queue (``queue/add``, ``GET /queue``): what a device did while offline.

An app queues what its user did without a connection and hands it over once online, each
operation under an id of its own choosing (its idempotency key: sending the same operation again
answers the stored one; the same id for a different operation is refused, and nothing changes).

- Server-side operations (``delete``, ``move``, ``rename``, ``mkdir``) are ``queued`` and run in
  the background by ``vault.queue.runner``, with the conflict rules of ``sync/files`` judged from
  the operation's base: the request's ``syncToken`` when it has one, otherwise the journal's
  position at the operation's ``createdAt``.
- ``upload`` operations are ``waiting`` until an upload of the account completes at their
  ``remotePath`` (``on_file_change``, in that upload's own transaction). A file already at that
  path when the operation is added counts as done: the app queued the upload while offline and
  the bytes usually arrived before the queue was handed over.
"""

from __future__ import annotations

import base64
import binascii

from vault import errors
from vault.clock import Clock, parse_rfc3339, rfc3339
from vault.config import QueueConfig
from vault.files import journal, queries
from vault.files.journal import JournalEntry
from vault.files.paths import normalize_folder, normalize_name, split_path
from vault.meta import MetaStore, Txn
from vault.offload import Offload
from vault.queue import records
from vault.queue.records import QueuedOp
from vault.queue.runner import QueueRunner
from vault.queue.wire import (
    Operation,
    QueueAddAnswer,
    QueueAddRequest,
    QueueDelete,
    QueueEntry,
    QueueError,
    QueueList,
    QueueMkdir,
    QueueMove,
    QueueQuery,
    QueueRename,
    QueueResult,
    QueueUpload,
)
from vault.sync.service import SyncService
from vault.uploads import by_device

TOO_MANY = "too many open operations"


class QueueService:
    def __init__(
        self, *, meta: MetaStore, clock: Clock, config: QueueConfig, sync: SyncService, offload: Offload
    ) -> None:
        self.meta = meta
        self.clock = clock
        self.config = config
        self.sync = sync
        self.offload = offload
        self.runner = QueueRunner(meta=meta, clock=clock, config=config, sync=sync)

    async def open(self) -> None:
        await by_device.ensure_built(self.meta, self.offload)

    # -- add -----------------------------------------------------------------------------------

    async def add(self, user_id: str, device_id: str, request: QueueAddRequest) -> QueueAddAnswer:
        now = self.clock.now()
        received = [_received(i, op, now) for i, op in enumerate(request.operations)]
        token_base = await self._token_base(user_id, request.sync_token)
        cap = self.config.max_open_per_device
        keep = float(self.config.keep_finished)
        wait = float(self.config.upload_wait)

        def write(txn: Txn) -> tuple[list[QueueResult], bool]:
            results: list[QueueResult] = []
            queued = False
            for op in received:
                op.user_id, op.device_id = user_id, device_id
                stored = records.load(txn, records.op_key(user_id, device_id, op.id))
                if stored is not None:
                    if stored.same_operation(op):
                        results.append(_result(stored))
                    else:
                        results.append(
                            _refused(op.id, f"operation id {op.id!r} was already used for another operation")
                        )
                    continue
                if records.counts(txn, user_id, device_id).open >= cap:
                    results.append(_refused(op.id, f"{TOO_MANY} (at most {cap} queued or waiting per device)"))
                    continue
                op.seq = records.next_seq(txn)
                op.base = token_base if token_base is not None else journal.last_seq_before(txn, user_id, op.created_at)
                if op.type == "upload":
                    assert op.folder is not None and op.name is not None
                    there = queries.find_by_path(txn, user_id, op.folder, op.name)
                    if there is not None:
                        op.status, op.result_file_id, op.finished_at = "done", there.id, now
                        op.timer_at = now + keep
                    else:
                        op.status, op.timer_at = "waiting", now + wait
                else:
                    op.status = "queued"
                    queued = True
                records.insert(txn, op)
                results.append(_result(op))
            return results, queued

        results, queued = await self.meta.write(write)
        if queued:
            self.runner.wake()
        return QueueAddAnswer(operations=results)

    async def _token_base(self, user_id: str, text: str | None) -> int | None:
        """The journal position a ``syncToken`` stands for, as ``sync/files`` judges it."""
        return await self.sync.base_of(user_id, text) if text else None

    # -- list ----------------------------------------------------------------------------------

    async def listing(self, user_id: str, device_id: str, query: QueueQuery) -> QueueList:
        after = _cursor_seq(query.cursor)
        # Up to 5,000 records to read and decode: a scan, so in a worker thread (vault.offload).
        ops, more = await self.offload.run(self._page, user_id, device_id, after, query.limit)
        cursor = _cursor(ops[-1].seq) if more and ops else None
        return QueueList(operations=[_entry(op) for op in ops], has_more=more, next_cursor=cursor)

    def _page(self, user_id: str, device_id: str, after: int | None, limit: int) -> tuple[list[QueuedOp], bool]:
        with self.meta.read() as txn:
            return records.page(txn, user_id, device_id, after, limit)

    # -- counts --------------------------------------------------------------------------------

    async def pending_uploads(self, user_id: str, device_id: str) -> int:
        """The device's open upload sessions (not expired) plus its waiting upload operations."""
        now = self.clock.now()
        async with self.meta.snapshot() as txn:
            sessions = by_device.count_open(txn, user_id, device_id, now)
            return sessions + records.counts(txn, user_id, device_id).waiting

    # -- the change subscriber -----------------------------------------------------------------

    def on_file_change(self, txn: Txn, user_id: str, entry: JournalEntry) -> None:
        """``FileChanges`` subscriber: an upload that completed at a path some upload operations
        wait for makes them done, in the completing transaction (a lookup: no scan)."""
        if entry.op not in ("created", "updated") or not entry.file_id:
            return
        forget_at = entry.at + float(self.config.keep_finished)
        for op in records.waiting_for(txn, user_id, entry.folder, entry.name):
            records.finish(txn, op, "done", now=entry.at, forget_at=forget_at, file_id=entry.file_id)


def _received(index: int, wire: Operation, now: float) -> QueuedOp:
    """A received operation checked and normalised (``VALIDATION_ERROR`` naming the field)."""
    where = f"operations[{index}]"
    created = now
    if wire.created_at is not None:
        try:
            created = parse_rfc3339(wire.created_at)
        except (ValueError, OverflowError):
            raise errors.ValidationError(
                "createdAt must be an RFC 3339 timestamp", details={"field": f"{where}.createdAt"}
            ) from None
    op = QueuedOp(
        id=wire.id,
        user_id="",
        device_id="",
        seq=0,
        type="mkdir",
        priority=wire.priority,
        created_at=created,
        created_given=wire.created_at is not None,
        added_at=now,
        base=0,
        status="queued",
    )
    if isinstance(wire, QueueUpload):
        op.type = "upload"
        op.folder, op.name = split_path(wire.remote_path, f"{where}.remotePath")
        op.local_path = wire.local_path
    elif isinstance(wire, QueueDelete):
        op.type, op.file_id = "delete", wire.file_id
    elif isinstance(wire, QueueMove):
        op.type, op.file_id = "move", wire.file_id
        op.folder = normalize_folder(wire.folder, f"{where}.folder")
    elif isinstance(wire, QueueRename):
        op.type, op.file_id = "rename", wire.file_id
        op.name = normalize_name(wire.name, f"{where}.name")
    else:
        assert isinstance(wire, QueueMkdir)
        op.folder = normalize_folder(wire.folder, f"{where}.folder")
    return op


def _error(op: QueuedOp) -> QueueError | None:
    if op.status != "failed":
        return None
    return QueueError(
        code=op.error_code or "INTERNAL_ERROR", message=op.error_message or "failed", conflict_id=op.conflict_id
    )


def _result(op: QueuedOp) -> QueueResult:
    return QueueResult(id=op.id, status=op.status, error=_error(op), file_id=op.result_file_id or op.file_id)


def _refused(op_id: str, message: str) -> QueueResult:
    """Not stored: nothing to list, and the same id may be sent again."""
    return QueueResult(id=op_id, status="failed", error=QueueError(code="VALIDATION_ERROR", message=message))


def remote_path(op: QueuedOp) -> str | None:
    if op.type != "upload" or op.folder is None or op.name is None:
        return None
    return f"{op.folder.rstrip('/')}/{op.name}"


def _entry(op: QueuedOp) -> QueueEntry:
    upload = op.type == "upload"
    return QueueEntry(
        id=op.id,
        type=op.type,
        status=op.status,
        priority=op.priority,
        created_at=rfc3339(op.created_at),
        added_at=rfc3339(op.added_at),
        error=_error(op),
        file_id=op.result_file_id or op.file_id,
        remote_path=remote_path(op),
        local_path=op.local_path or None,
        folder=None if upload else op.folder,
        name=None if upload else op.name,
        finished_at=rfc3339(op.finished_at) if op.finished_at is not None else None,
    )


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def _cursor_seq(cursor: str) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        text = ""
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise errors.ValidationError("cursor is not one this node gave out", details={"field": "cursor"})
    return int(text)
