"""The trash: deleted files, newest first, and restoring one."""

from __future__ import annotations

import binascii
from typing import Annotated

from msgspec import Meta

from vault import errors
from vault.api.file_routes import DEFAULT_PAGE, MAX_PAGE, FileResponse, encode_cursor, page_args
from vault.api.routing import ApiRouter, Ctx
from vault.clock import rfc3339
from vault.files import trash
from vault.files.changes import RestoreFile
from vault.files.records import FileEntry, FileRecord, file_entry
from vault.meta import MetaStore
from vault.wire import WireAnswer, WireRequest

router = ApiRouter("trash")


class TrashedFile(FileEntry):
    """A file entry as it was when deleted, and when that was."""

    deleted_at: str = ""


class TrashListing(WireAnswer, omit_defaults=True):
    files: list[TrashedFile]
    has_more: bool = False
    next_cursor: str | None = None


class TrashQuery(WireRequest):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="files per page")] = DEFAULT_PAGE
    cursor: Annotated[str, Meta(description="nextCursor of the previous page")] = ""


@router.get("/trash", response=TrashListing, query=TrashQuery)
async def list_trash(ctx: Ctx) -> TrashListing:
    """Deleted files, newest first, a page at a time (restorable until their retention passes)."""
    limit, cursor = page_args(ctx)
    after: bytes | None = None
    if cursor is not None:
        try:
            after = bytes.fromhex(cursor)
        except ValueError:
            raise errors.ValidationError("cursor is not one this node gave out", details={"field": "cursor"}) from None
    return await ctx.node.offload.run(_listing, ctx.node.meta, ctx.principal.user_id, after, limit)


def _listing(meta: MetaStore, user_id: str, after: bytes | None, limit: int) -> TrashListing:
    with meta.read() as txn:
        records, more = trash.page(txn, user_id, after=after, limit=limit)
    return TrashListing(
        files=[_trashed(r) for r in records],
        has_more=more is not None,
        next_cursor=encode_cursor(binascii.hexlify(more).decode()) if more is not None else None,
    )


def _trashed(record: FileRecord) -> TrashedFile:
    entry = file_entry(record)
    return TrashedFile(
        id=entry.id,
        name=entry.name,
        folder=entry.folder,
        size=entry.size,
        mime_type=entry.mime_type,
        modified_at=entry.modified_at,
        checksum=entry.checksum,
        version=entry.version,
        sha256=entry.sha256,
        deleted_at=rfc3339(record.deleted_at or 0.0),
    )


@router.post("/trash/<file_id>/restore", response=FileResponse)
async def restore(ctx: Ctx, file_id: str) -> FileResponse:
    """Bring a file back to its folder (recreated if need be; a name like ``a (restored 1).jpg``
    when its own is taken)."""
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id
    applied = await ctx.node.changes.write(
        lambda c: c.apply(RestoreFile(file_id=file_id), user_id=user_id, device_id=device_id),
        now=ctx.node.clock.now(),
    )
    assert applied.file is not None
    return FileResponse(file=file_entry(applied.file))
