"""``sync/status``: what changed for a user since a sync token, as one consistent page.

Everything in a page is read in one metadata snapshot (in a worker thread: the scan grows with the
changes since the token, never with the files the account holds). A token into another journal
(rebuilt, or a different node), one past the journal's head (a restored backup) or one older than
what the journal still remembers answers ``resetRequired``: the client resyncs from no token
rather than receive a wrong answer. With no token the whole tree is listed as ``created``, a page
at a time, and the last page's token continues from the journal head the listing began at.
"""

from __future__ import annotations

import hashlib

import msgspec

from vault.clock import rfc3339
from vault.files import journal
from vault.files.queries import received_files
from vault.files.records import FILES, FILES_BY_PATH, FOLDERS, FileRecord, file_entry, path_key
from vault.meta import Txn
from vault.sync import conflicts, tokens
from vault.sync.coalesce import Changes, FolderChanges, coalesce
from vault.sync.tokens import SyncToken
from vault.sync.wire import SyncStatus


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """Where the journal stands for a user: what an ETag and a long-poll look at."""

    journal_id: bytes
    head: int
    floor: int
    conflict_generation: int


def position(txn: Txn, user_id: str) -> Position:
    return Position(
        journal_id=journal.identity(txn) or b"",
        head=journal.head(txn, user_id),
        floor=journal.floor(txn, user_id),
        conflict_generation=conflicts.generation(txn, user_id),
    )


def is_current(token: SyncToken, where: Position) -> bool:
    """The token points into this journal at a position it still remembers."""
    return token.journal_id == where.journal_id and where.floor <= _base(token) <= where.head


def up_to_date(token: SyncToken | None, where: Position) -> bool:
    """Nothing to tell a client holding ``token`` (a long poll may wait for a change)."""
    return token is not None and not token.listing and is_current(token, where) and token.seq == where.head


def etag(text: str | None, limit: int, where: Position) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in (text or "", str(limit), where.journal_id.hex(), where.head, where.floor, where.conflict_generation):
        digest.update(str(part).encode() + b"\x00")
    return f'"{digest.hexdigest()}"'


def _base(token: SyncToken) -> int:
    return token.listing_head if token.listing_head is not None else token.seq


class Page(msgspec.Struct, kw_only=True):
    """A computed answer (the token still to be signed by the caller)."""

    changes: Changes
    next_token: SyncToken
    has_more: bool = False
    reset_required: bool = False


def compute(txn: Txn, user_id: str, token: SyncToken | None, since: float | None, limit: int) -> Page:
    """One page of changes for ``user_id``, read in ``txn`` (a scan: in a worker thread)."""
    where = position(txn, user_id)
    if token is not None and not is_current(token, where):
        return _reset(where)
    if token is None and since is not None:
        first = journal.entry(txn, user_id, where.floor + 1)
        if where.floor > 0 and (first is None or first.at > since):
            return _reset(where)  # changes after ``since`` may have been pruned
        token = SyncToken(journal_id=where.journal_id, seq=journal.last_seq_before(txn, user_id, since))
    if token is None or token.listing:
        return _listing(txn, user_id, where, token, limit)
    entries = journal.since(txn, user_id, token.seq, limit=limit)
    last = entries[-1].seq if entries else token.seq
    return Page(
        changes=coalesce(entries),
        next_token=SyncToken(journal_id=where.journal_id, seq=last),
        has_more=last < where.head,
    )


def _reset(where: Position) -> Page:
    return Page(
        changes=coalesce(()),
        next_token=SyncToken(journal_id=where.journal_id, seq=where.head, listing_head=where.head),
        reset_required=True,
    )


def _listing(txn: Txn, user_id: str, where: Position, token: SyncToken | None, limit: int) -> Page:
    """The whole tree as ``created``, by path, a page at a time."""
    head = where.head if token is None or token.listing_head is None else token.listing_head
    prefix = f"{user_id}\x00".encode()
    start = None
    if token is not None and token.after_folder is not None and token.after_name is not None:
        start = path_key(user_id, token.after_folder, token.after_name) + b"\x00"
    files: list[FileRecord] = []
    more = False
    for _, raw_id in txn.scan_bytes(FILES_BY_PATH, prefix, start=start):
        record = txn.get(FILES, raw_id)
        if record is None or record.deleted_at is not None:
            continue
        if len(files) == limit:
            more = True
            break
        files.append(record)
    folders: list[str] = []
    if start is None:  # the folders come with the first page
        folders = [key[len(prefix) :].decode() for key in txn.keys(FOLDERS, prefix)]
    if not more:  # files others share with the user come with the last page
        files.extend(received_files(txn, user_id))
    if more:
        last = files[-1]
        next_token = SyncToken(
            journal_id=where.journal_id, seq=head, listing_head=head, after_folder=last.folder, after_name=last.name
        )
    else:
        next_token = SyncToken(journal_id=where.journal_id, seq=head)
    changes = Changes(
        created=[file_entry(r) for r in files],
        updated=[],
        deleted=[],
        folders=FolderChanges(created=folders, deleted=[], moved=[]),
    )
    return Page(changes=changes, next_token=next_token, has_more=more)


def answer(page: Page, *, key: bytes, user_id: str, now: float, open_conflicts: list[conflicts.Conflict]) -> SyncStatus:
    return SyncStatus(
        last_sync_at=rfc3339(now),
        has_changes=not page.changes.empty,
        changes=page.changes,
        conflicts=[conflicts.view(c) for c in open_conflicts],
        next_sync_token=tokens.encode(key, user_id, page.next_token),
        has_more=page.has_more,
        reset_required=page.reset_required,
    )
