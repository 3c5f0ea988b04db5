"""Folders: create (with parents), rename/move and delete, each carrying its whole subtree."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from msgspec import Meta

from vault import errors
from vault.api.routing import ApiRouter, Ctx
from vault.files import queries
from vault.files.changes import ChangeTxn, DeleteFolder, MakeFolder, MoveFolder
from vault.files.paths import FileName, FolderPath, NonRootFolder, normalize_folder, normalize_name
from vault.wire import WireAnswer, WireRequest

router = ApiRouter("folders")


class NewFolder(WireRequest):
    folder: FolderPath


class FolderPatch(WireRequest):
    """Rename the folder's last segment (``name``) and/or move it under another ``parent``."""

    # "At least one of name and parent", in the OpenAPI schema's words (build_openapi merges it in).
    __openapi_extra__: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": ["name"], "properties": {"name": {"type": "string"}}},
            {"required": ["parent"], "properties": {"parent": {"type": "string"}}},
        ]
    }

    folder: NonRootFolder
    name: Annotated[FileName, Meta(description="new last segment")] | None = None
    parent: Annotated[FolderPath, Meta(description="absolute folder to move it under")] | None = None


class FolderQuery(WireRequest):
    folder: NonRootFolder


class FolderAnswer(WireAnswer):
    folder: str


class FolderDeleted(WireAnswer):
    deleted: str
    files: int  # how many files went to the trash with it


@router.post("/folders", body=NewFolder, response=FolderAnswer)
async def make_folder(ctx: Ctx, body: NewFolder) -> FolderAnswer:
    """Create a folder and its missing parents (an existing folder is answered as is)."""
    folder = normalize_folder(body.folder, "folder")
    if folder == "/":
        return FolderAnswer(folder=folder)
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id

    def write(change: ChangeTxn) -> None:
        if not queries.folder_exists(change.txn, user_id, folder):
            change.apply(MakeFolder(folder=folder), user_id=user_id, device_id=device_id)

    await ctx.node.changes.write(write, now=ctx.node.clock.now())
    return FolderAnswer(folder=folder)


@router.route("PATCH", "/folders", body=FolderPatch, response=FolderAnswer)
async def move_folder(ctx: Ctx, body: FolderPatch) -> FolderAnswer:
    """Rename and/or move a folder with everything below it (409 into itself or onto a taken name)."""
    folder = normalize_folder(body.folder, "folder")
    if folder == "/":
        raise errors.ValidationError("the root folder cannot be moved", details={"field": "folder"})
    if body.name is None and body.parent is None:
        raise errors.ValidationError("name or parent is required", details={"field": "name"})
    current_parent, _, current_name = folder.rpartition("/")
    name = normalize_name(body.name, "name") if body.name is not None else current_name
    parent = normalize_folder(body.parent, "parent") if body.parent is not None else (current_parent or "/")
    target = normalize_folder(f"{parent.rstrip('/')}/{name}", "parent")
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id
    await ctx.node.changes.write(
        lambda c: c.apply(MoveFolder(folder=folder, to=target), user_id=user_id, device_id=device_id),
        now=ctx.node.clock.now(),
    )
    return FolderAnswer(folder=target)


@router.delete("/folders", query=FolderQuery, response=FolderDeleted)
async def delete_folder(ctx: Ctx) -> FolderDeleted:
    """Delete a folder with everything below it: every file goes to the trash."""
    raw = ctx.request.args.get("folder")
    if raw is None:
        raise errors.ValidationError("folder is required", details={"field": "folder"})
    folder = normalize_folder(raw, "folder")
    if folder == "/":
        raise errors.ValidationError("the root folder cannot be deleted", details={"field": "folder"})
    user_id, device_id = ctx.principal.user_id, ctx.principal.device_id
    applied = await ctx.node.changes.write(
        lambda c: c.apply(DeleteFolder(folder=folder), user_id=user_id, device_id=device_id),
        now=ctx.node.clock.now(),
    )
    return FolderDeleted(deleted=folder, files=len(applied.carried))
