"""Files: listing, metadata, downloads with ranges and ETags; delete, rename/move, versions."""

from __future__ import annotations

import base64
import dataclasses
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, ClassVar
from urllib.parse import quote

from msgspec import Meta
from quart import Response

from vault import errors
from vault.api.routing import ApiRouter, Ctx
from vault.chunks import ChunkCorrupt, ChunkMissing
from vault.clock import rfc3339
from vault.files import queries as files
from vault.files import versions
from vault.files.changes import ChangeTxn, DeleteFile, MoveFile, RestoreVersion, check_version
from vault.files.download import stream_range
from vault.files.paths import FileName, FolderPath, normalize_folder, normalize_name, servable_mime
from vault.files.ranges import Unsatisfiable, parse_range
from vault.files.records import FileEntry, FileRecord, Manifest, file_entry
from vault.meta import MetaStore
from vault.numbers import ascii_int
from vault.wire import WireAnswer, WireRequest

log = logging.getLogger("vault.api")
router = ApiRouter("files")


class FolderListing(WireAnswer, omit_defaults=True):
    folder: str
    files: list[FileEntry]
    folders: list[str]
    has_more: bool = False
    next_cursor: str | None = None


class FileResponse(WireAnswer):
    file: FileEntry


DEFAULT_PAGE = 1000
MAX_PAGE = 5000


class ListQuery(WireRequest):
    folder: FolderPath = "/"
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="files per page")] = DEFAULT_PAGE
    cursor: Annotated[str, Meta(description="nextCursor of the previous page")] = ""


def encode_cursor(position: str) -> str:
    """A ``nextCursor``: the position to continue after, opaque to clients."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def page_args(ctx: Ctx) -> tuple[int, str | None]:
    """``limit`` and the decoded ``cursor`` of a paged listing (400 naming the field)."""
    raw_limit = ctx.request.args.get("limit", str(DEFAULT_PAGE))
    limit = ascii_int(raw_limit)
    if limit is None or not 1 <= limit <= MAX_PAGE:
        raise errors.ValidationError(f"limit must be between 1 and {MAX_PAGE}", details={"field": "limit"})
    cursor = ctx.request.args.get("cursor")
    if not cursor:
        return limit, None
    try:
        padded = cursor.encode() + b"=" * (-len(cursor) % 4)
        return limit, base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (ValueError, UnicodeError):
        raise errors.ValidationError("cursor is not one this node gave out", details={"field": "cursor"}) from None


@router.get("/files", response=FolderListing, query=ListQuery)
async def list_files(ctx: Ctx) -> FolderListing:
    """Files (by name, a page at a time) and subfolders of a folder."""
    folder = normalize_folder(ctx.request.args.get("folder", "/"))
    limit, after = page_args(ctx)
    # Up to 5,000 records to read and decode: a scan, so in a worker thread (vault.offload).
    return await ctx.node.offload.run(_listing, ctx.node.meta, ctx.principal.user_id, folder, after, limit)


def _listing(meta: MetaStore, user_id: str, folder: str, after: str | None, limit: int) -> FolderListing:
    with meta.read() as txn:
        records, folders, more = files.list_folder(txn, user_id, folder, after=after, limit=limit)
    return FolderListing(
        folder=folder,
        files=[file_entry(r) for r in records],
        folders=sorted(folders),
        has_more=more is not None,
        next_cursor=encode_cursor(more) if more is not None else None,
    )


@router.get("/files/<file_id>", response=FileResponse)
async def get_file(ctx: Ctx, file_id: str) -> FileResponse:
    """One file's entry."""
    async with ctx.node.meta.snapshot() as txn:
        record = files.readable_file(txn, ctx.principal.user_id, file_id)
    return FileResponse(file=file_entry(record))


def _content_of(meta: MetaStore, user_id: str, file_id: str) -> tuple[FileRecord, Manifest]:
    with meta.read() as txn:
        record = files.readable_file(txn, user_id, file_id)
        return record, files.manifest(txn, record)


def _etag(record: FileRecord) -> str:
    return f'"blake3:{record.blake3}"'


def _etag_matches(header: str, etag: str) -> bool:
    for token in header.split(","):
        token = token.strip()
        if token == "*" or token.removeprefix("W/") == etag:
            return True
    return False


def _disposition(name: str) -> str:
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.route("GET", "/files/<file_id>/content")
async def content(ctx: Ctx, file_id: str) -> Response:
    """The file's bytes: single ranges (206/416), ETag, If-None-Match (304), HEAD."""
    # A manifest lists every chunk (160,000 for 10 GB in 64 KiB chunks): decoded in a worker thread.
    record, manifest = await ctx.node.offload.run(_content_of, ctx.node.meta, ctx.principal.user_id, file_id)
    etag = _etag(record)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": servable_mime(record.mime_type),
        "Content-Disposition": _disposition(record.name),
        "Cache-Control": "private, no-cache",
    }
    inm = ctx.request.headers.get("If-None-Match")
    if inm and _etag_matches(inm, etag):
        return Response(b"", status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    status = 200
    start, end = 0, record.size - 1
    try:
        wanted = parse_range(ctx.request.headers.get("Range"), record.size)
    except Unsatisfiable:
        raise errors.RangeNotSatisfiable(
            headers={"Content-Range": f"bytes */{record.size}"}, details={"size": record.size}
        ) from None
    if_range = ctx.request.headers.get("If-Range")
    if wanted is not None and (if_range is None or if_range.strip() == etag):
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{record.size}"
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    if ctx.request.method == "HEAD" or length == 0:
        response = Response(b"", status=status, headers=headers)
        response.headers["Content-Length"] = str(length)
        return response
    user_id = ctx.principal.user_id
    ctx.node.transfers.take(user_id)  # given back when the body ends, however it ends
    body = stream_range(ctx.node.chunks, manifest, start, end)
    try:
        first = await body.__anext__()
    except (ChunkCorrupt, ChunkMissing):
        ctx.node.transfers.give(user_id)
        log.error("file %s has unreadable content", record.id, extra={"request_id": ctx.request_id})
        raise errors.InternalError() from None
    except BaseException:
        ctx.node.transfers.give(user_id)
        raise
    slot = _Slot(lambda: ctx.node.transfers.give(user_id))
    chained = _chain(first, body, record.id, slot.release)
    # A response whose body is never iterated (the client left before it started) runs no
    # ``finally``: the slot then comes back when the body is collected.
    weakref.finalize(chained, slot.release)
    response = Response(chained, status=status, headers=headers)
    response.timeout = None
    return response


# Quart answers HEAD through the GET route; the document says so too.
_content_doc = next(d for d in router.docs if d.method == "GET" and d.path.endswith("/files/{file_id}/content"))
router.docs.append(dataclasses.replace(_content_doc, method="HEAD", summary="The file's headers, no body"))


class _Slot:
    """A transfer slot given back exactly once, by whichever end comes first."""

    def __init__(self, give: Callable[[], None]) -> None:
        self._give: Callable[[], None] | None = give

    def release(self) -> None:
        give, self._give = self._give, None
        if give is not None:
            give()


async def _chain(
    first: bytes, rest: AsyncIterator[bytes], file_id: str, done: Callable[[], None]
) -> AsyncIterator[bytes]:
    try:
        yield first
        async for piece in rest:
            yield piece
    except (ChunkCorrupt, ChunkMissing):
        # Headers are gone already: end the response short, so the client sees a truncated body
        # and never a complete-looking copy of corrupt content.
        log.error("file %s: a chunk failed verification mid-download", file_id)
        raise
    finally:
        done()


class FileDeleted(WireAnswer):
    deleted: str


class FilePatch(WireRequest):
    """Rename and/or move a file; at least one of ``name`` and ``folder``."""

    # The OpenAPI schema's own words for "at least one of them" (build_openapi merges it in).
    __openapi_extra__: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": ["name"], "properties": {"name": {"type": "string"}}},
            {"required": ["folder"], "properties": {"folder": {"type": "string"}}},
        ]
    }

    name: Annotated[FileName, Meta(description="new name (one path segment)")] | None = None
    folder: Annotated[FolderPath, Meta(description="absolute folder to move the file to")] | None = None
    base_version: (
        Annotated[int, Meta(ge=1, description="the version this change is based on (409 CONFLICT otherwise)")] | None
    ) = None


class VersionEntry(WireAnswer):
    version: int
    size: int
    checksum: str
    modified_at: str
    current: bool


class VersionList(WireAnswer):
    versions: list[VersionEntry]


@router.delete("/files/<file_id>", response=FileDeleted)
async def delete_file(ctx: Ctx, file_id: str) -> FileDeleted:
    """Move a file to the trash (restorable for ``[files] trash_retention``)."""
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id
    await ctx.node.changes.write(
        lambda c: c.apply(DeleteFile(file_id=file_id), user_id=user_id, device_id=device_id),
        now=ctx.node.clock.now(),
    )
    return FileDeleted(deleted=file_id)


@router.route("PATCH", "/files/<file_id>", body=FilePatch, response=FileResponse)
async def update_file(ctx: Ctx, body: FilePatch, file_id: str) -> FileResponse:
    """Rename and/or move a file (409 CONFLICT when ``baseVersion`` is not current or the name is taken)."""
    name = normalize_name(body.name, "name") if body.name is not None else None
    folder = normalize_folder(body.folder, "folder") if body.folder is not None else None
    if name is None and folder is None:
        raise errors.ValidationError("name or folder is required", details={"field": "name"})
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id

    def write(change: ChangeTxn) -> FileRecord:
        record = files.get_file(change.txn, user_id, file_id)
        if (folder or record.folder, name or record.name) == (record.folder, record.name):
            check_version(record, body.base_version)
            return record  # already there: nothing changes, no journal entry
        move = MoveFile(file_id=file_id, folder=folder, name=name)
        applied = change.apply(move, user_id=user_id, device_id=device_id, expected_version=body.base_version)
        assert applied.file is not None
        return applied.file

    record = await ctx.node.changes.write(write, now=ctx.node.clock.now())
    return FileResponse(file=file_entry(record))


@router.get("/files/<file_id>/versions", response=VersionList)
async def list_versions(ctx: Ctx, file_id: str) -> VersionList:
    """The file's contents, newest first: the current one (``current: true``) and those kept."""
    return await ctx.node.offload.run(_versions, ctx.node.meta, ctx.principal.user_id, file_id)


def _versions(meta: MetaStore, user_id: str, file_id: str) -> VersionList:
    with meta.read() as txn:
        record = files.get_file(txn, user_id, file_id)
        kept = versions.history(txn, record.id)
    current = VersionEntry(
        version=record.version,
        size=record.size,
        checksum=f"blake3:{record.blake3}",
        modified_at=rfc3339(record.modified_at),
        current=True,
    )
    return VersionList(
        versions=[current]
        + [
            VersionEntry(
                version=v.version,
                size=v.size,
                checksum=f"blake3:{v.blake3}",
                modified_at=rfc3339(v.modified_at),
                current=False,
            )
            for v in kept
        ]
    )


@router.post(
    "/files/<file_id>/versions/<version>/restore",
    response=FileResponse,
    path_schemas={"version": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
)
async def restore_version(ctx: Ctx, file_id: str, version: str) -> FileResponse:
    """Make an earlier content the newest version (the current one is kept as an earlier one)."""
    number = ascii_int(version)
    if number is None or number < 1:
        raise errors.ValidationError("version must be a positive whole number", details={"field": "version"})
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id

    def write(change: ChangeTxn) -> FileRecord:
        record = files.get_file(change.txn, user_id, file_id)
        if number == record.version:
            return record  # already the current content
        restore = RestoreVersion(file_id=file_id, version=number)
        applied = change.apply(restore, user_id=user_id, device_id=device_id)
        assert applied.file is not None
        return applied.file

    record = await ctx.node.changes.write(write, now=ctx.node.clock.now())
    return FileResponse(file=file_entry(record))
