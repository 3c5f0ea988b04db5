"""What a sync round must do, decided from three views of every path (pure, no I/O):

- the **local** folder as scanned now,
- the **index**: each file as last agreed with the node (the common base),
- the **remote** tree as the node last reported it (after this round's pull).

A side that still matches the index did not change; the side that changed wins; when both
changed, the local change is sent with the base version it was made on, so the *node* decides
and records a conflict the user can resolve (``keep_local``, ``keep_remote``, ``keep_both``).
Nothing local is ever overwritten or deleted here unless it still matches the index, which is
what makes "no local edit is lost" hold: a changed local file is only ever sent.

Local renames are recognised (a path gone and an untracked one with the same content), and so
are the node's moves (a file id at another path), so neither costs a transfer.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import msgspec

from vault_client import wire
from vault_client.local_tree import LocalFile, LocalTree
from vault_client.state import IndexRow, RemoteRow

# A change for ``sync/files``: the node's own structs (generated from its OpenAPI document).
LocalChange = (
    wire.UploadChange | wire.UpdateChange | wire.DeleteChange | wire.MoveChange | wire.RenameChange | wire.MkdirChange
)


def wire_change(change: dict[str, object]) -> LocalChange:
    """A change as the state keeps it (the node's field names, plus private ``_`` keys of ours)
    decoded back into the node's struct."""
    public = {k: v for k, v in change.items() if not k.startswith("_")}
    decoded: LocalChange = msgspec.convert(public, LocalChange)  # type: ignore[arg-type]
    return decoded


@dataclass(frozen=True)
class PathMap:
    """Local relative paths <-> the node's folder and name, below the root's remote folder."""

    remote_root: str = "/"

    def to_remote(self, rel: str) -> tuple[str, str]:
        folder, name = posixpath.split(rel)
        base = self.remote_root.rstrip("/")
        return (base + "/" + folder if folder else base) or "/", name

    def folder_to_remote(self, rel_dir: str) -> str:
        return (self.remote_root.rstrip("/") + "/" + rel_dir) if rel_dir else (self.remote_root or "/")

    def to_local(self, folder: str, name: str) -> str | None:
        """The relative path of the node's ``folder``/``name``; ``None`` outside the root."""
        rel = self.folder_to_local(folder)
        if rel is None:
            return None
        return f"{rel}/{name}" if rel else name

    def folder_to_local(self, folder: str) -> str | None:
        base = self.remote_root.rstrip("/")
        if not base:
            return folder.strip("/")
        if folder == base:
            return ""
        if folder.startswith(base + "/"):
            return folder[len(base) + 1 :]
        return None


@dataclass(frozen=True)
class Send:
    """A local change for ``sync/files``, about local ``path``."""

    path: str
    change: LocalChange
    new_path: str | None = None  # moves and renames: where the file is now
    local: LocalFile | None = None  # uploads and updates: the content sent


@dataclass(frozen=True)
class Download:
    path: str
    remote: RemoteRow
    expect: LocalFile | None  # what must still be on disk (None: nothing) when it lands


@dataclass(frozen=True)
class LocalMove:
    path: str
    new_path: str
    remote: RemoteRow
    expect: LocalFile


@dataclass(frozen=True)
class LocalDelete:
    path: str
    expect: LocalFile


@dataclass
class Plan:
    sends: list[Send] = field(default_factory=list)
    downloads: list[Download] = field(default_factory=list)
    moves: list[LocalMove] = field(default_factory=list)
    deletes: list[LocalDelete] = field(default_factory=list)
    adopt: list[tuple[str, RemoteRow, LocalFile]] = field(default_factory=list)  # same content: index it
    forget: list[str] = field(default_factory=list)  # gone on both sides: drop from the index
    make_dirs: list[str] = field(default_factory=list)  # remote folders missing locally
    send_dirs: list[str] = field(default_factory=list)  # local empty folders the node lacks
    drop_dirs: list[str] = field(default_factory=list)  # folders deleted here that the node still has

    @property
    def empty(self) -> bool:
        return not (self.sends or self.downloads or self.moves or self.deletes or self.make_dirs or self.send_dirs)


def _same(local: LocalFile | None, checksum: str) -> bool:
    return local is not None and local.checksum == checksum


def plan_round(
    local: LocalTree,
    index: dict[str, IndexRow],
    remote: dict[str, RemoteRow],
    remote_folders: dict[str, bool],
    held: set[str],
    paths: PathMap,
    *,
    trust_deletes: bool = True,
) -> Plan:
    """``remote_folders``: the node's folders, each with whether it has existed here since.
    ``trust_deletes`` false (after ``resetRequired``): a synced file the node no longer has is
    sent again rather than deleted here (the node may have lost it, not deleted it)."""
    plan = Plan()
    held = held | local.unstable
    by_path = {r.path: r for r in remote.values()}
    done: set[str] = set()  # paths already decided

    # The node moved a file that is unchanged here: move it locally too (no transfer).
    for path, base in sorted(index.items()):
        r = remote.get(base.file_id) if base.file_id else None
        here = local.files.get(path)
        if r is None or r.path == path or path in held or r.path in held or not _same(here, base.checksum):
            continue
        target_here = local.files.get(r.path)
        if r.path in index or r.path in done or (target_here is not None and target_here.checksum != base.checksum):
            continue
        assert here is not None
        plan.moves.append(LocalMove(path, r.path, r, here))
        done.update((path, r.path))
        if r.checksum != base.checksum:
            plan.downloads.append(Download(r.path, r, LocalFile(r.path, here.size, here.mtime_ns, here.checksum)))

    # A file gone from its indexed path and the same content at an untracked path: renamed here.
    untracked = {p: f for p, f in local.files.items() if p not in index and p not in done and p not in held}
    by_content: dict[str, list[str]] = {}
    for p, f in sorted(untracked.items()):
        by_content.setdefault(f.checksum, []).append(p)
    for path, base in sorted(index.items()):
        if path in local.files or path in held or path in done or not base.file_id:
            continue
        candidates = [p for p in by_content.get(base.checksum, []) if p not in done and p not in by_path]
        r = remote.get(base.file_id)
        if not candidates or r is None:
            continue
        new_path = candidates[0]
        done.update((path, new_path))
        version = base.version if r.version != base.version and base.version else None
        old_folder, old_name = paths.to_remote(path)
        new_folder, new_name = paths.to_remote(new_path)
        step = path
        if new_folder != old_folder:
            # A move keeps the name: a rename after it (if any) goes from that in-between path.
            step = posixpath.join(posixpath.dirname(new_path), posixpath.basename(path))
            move = wire.MoveChange(file_id=base.file_id, folder=new_folder, base_version=version)
            plan.sends.append(Send(path, move, step))
            version = None
        if new_name != old_name:
            rename = wire.RenameChange(file_id=base.file_id, name=new_name, base_version=version)
            plan.sends.append(Send(step, rename, new_path))

    everything = set(local.files) | set(index) | set(by_path)
    for path in sorted(everything - done - held):
        here = local.files.get(path)
        agreed = index.get(path)
        there = by_path.get(path)
        mine = remote.get(agreed.file_id) if agreed is not None and agreed.file_id else None
        if here is not None and there is not None and here.checksum == there.checksum:
            if (
                agreed is None
                or agreed.file_id != there.file_id
                or agreed.version != there.version
                or agreed.checksum != here.checksum
            ):
                plan.adopt.append((path, there, here))
            continue
        if agreed is not None and mine is not None and mine.path == path:
            _same_file(plan, path, here, agreed, mine)
        elif agreed is not None:
            # The indexed file left this path on the node (deleted, or moved where we could not follow).
            if here is None:
                plan.forget.append(path)
                if there is not None:
                    plan.downloads.append(Download(path, there, None))
            elif here.checksum == agreed.checksum:
                if there is not None:
                    plan.downloads.append(Download(path, there, here))
                elif trust_deletes or mine is not None:
                    plan.deletes.append(LocalDelete(path, here))
                else:
                    plan.sends.append(_upload(path, here, paths))
            elif agreed.file_id:
                # Edited here, gone or moved there: the node judges (deleted_remotely / version_mismatch).
                plan.sends.append(_update(path, here, agreed, force_base=True))
            else:
                plan.sends.append(_upload(path, here, paths))
        elif there is not None:
            if here is None:
                plan.downloads.append(Download(path, there, None))
            else:
                plan.sends.append(_upload(path, here, paths))  # both made this path: name_taken unless equal
        elif here is not None:
            plan.sends.append(_upload(path, here, paths))

    # Folders: the node's missing here are made; empty local ones the node lacks are sent.
    local_dirs = local.dirs
    remote_files_below = {posixpath.dirname(r.path) for r in remote.values()}
    for folder, seen_here in sorted(remote_folders.items()):
        rel = paths.folder_to_local(folder)
        if not rel or rel in local_dirs:
            continue
        if not seen_here:
            plan.make_dirs.append(rel)
        elif not any(d == rel or d.startswith(rel + "/") for d in remote_files_below if d not in held):
            # It was here and the user removed it: once its files are gone on the node too, so
            # is the folder (never while the node holds a file below it that was not seen here).
            plan.drop_dirs.append(folder)
    known = {paths.folder_to_local(f) for f in remote_folders}
    parents = {posixpath.dirname(p) for p in local.files} | {posixpath.dirname(d) for d in local_dirs}
    for rel in sorted(local_dirs):
        if rel not in known and rel not in parents:
            plan.send_dirs.append(rel)
    return plan


def _same_file(plan: Plan, path: str, here: LocalFile | None, base: IndexRow, there: RemoteRow) -> None:
    assert base.file_id is not None  # only a file the node named has a remote side
    remote_changed = there.checksum != base.checksum
    if here is None:
        # Deleted here, changed there: sent with the base version, a conflict.
        changed_there = there.version != base.version and base.version
        plan.sends.append(
            Send(path, wire.DeleteChange(file_id=base.file_id, base_version=base.version if changed_there else None))
        )
    elif here.checksum == base.checksum:
        if remote_changed:
            plan.downloads.append(Download(path, there, here))
        elif base.version != there.version:
            plan.adopt.append((path, there, here))
    else:
        plan.sends.append(_update(path, here, base, force_base=there.version != base.version))


def _update(path: str, here: LocalFile, base: IndexRow, *, force_base: bool) -> Send:
    assert base.file_id is not None  # callers send updates only for a file the node named
    # Made on a version the node has moved past: sent with it, so the node sees the conflict.
    change = wire.UpdateChange(
        file_id=base.file_id,
        size=here.size,
        checksum=here.checksum,
        base_version=base.version if force_base and base.version else None,
    )
    return Send(path, change, local=here)


def _upload(path: str, here: LocalFile, paths: PathMap) -> Send:
    folder, name = paths.to_remote(path)
    change = wire.UploadChange(name=name, folder=folder, size=here.size, checksum=here.checksum)
    return Send(path, change, local=here)
