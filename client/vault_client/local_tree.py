"""Scanning a synced folder: every regular file with its size, mtime and BLAKE3 checksum.

A file whose size and mtime are those the index recorded keeps the index's checksum (rehashing a
whole photo library on every round would cost minutes); any other is hashed, in worker threads.
The client's own partial downloads and names the node would refuse are left out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from vault_client.hashing import checksum_of_file
from vault_client.state import IndexRow
from vault_client.tasks import open_nursery

PARTIAL_SUFFIX = ".vault-partial"
_SKIP_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative to the root, ``/``-separated
    size: int
    mtime_ns: int
    checksum: str


@dataclass
class LocalTree:
    files: dict[str, LocalFile]
    dirs: set[str]  # every folder below the root (relative), empty ones included
    # Files that changed while being hashed (or vanished meanwhile): neither present nor absent
    # this round, so a file still being written is never taken for a deleted one.
    unstable: set[str]


def ignored(name: str) -> bool:
    """Names never synced: our partial downloads, editors' lock and temp files, OS litter."""
    return (
        name.endswith(PARTIAL_SUFFIX)
        or name in _SKIP_NAMES
        or name.startswith(".~lock.")
        or name.endswith("~")
        or name.startswith(".vault-sync")
    )


def stat_key(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a regular file, ``None`` when it is not one (or is gone)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_size, info.st_mtime_ns


def _walk(root: Path) -> tuple[list[tuple[str, int, int]], set[str]]:
    files: list[tuple[str, int, int]] = []
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(d for d in dirnames if not ignored(d) and not os.path.islink(os.path.join(dirpath, d)))
        for d in dirnames:
            dirs.add(prefix + d)
        for name in filenames:
            if ignored(name):
                continue
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                files.append((prefix + name, info.st_size, info.st_mtime_ns))
    return files, dirs


async def scan(root: Path, index: Mapping[str, IndexRow]) -> LocalTree:
    listed, dirs = await trio.to_thread.run_sync(_walk, root)
    found: dict[str, LocalFile] = {}
    unstable: set[str] = set()

    async def one(rel: str, size: int, mtime_ns: int) -> None:
        known = index.get(rel)
        if known is not None and known.size == size and known.mtime_ns == mtime_ns:
            found[rel] = LocalFile(rel, size, mtime_ns, known.checksum)
            return
        try:
            checksum = await checksum_of_file(root / rel)
        except FileNotFoundError:
            unstable.add(rel)  # removed while we looked: the next round sees it gone
            return
        after = stat_key(root / rel)
        if after is None or after != (size, mtime_ns):
            unstable.add(rel)  # still being written: the next round hashes it when it is still
            return
        found[rel] = LocalFile(rel, size, mtime_ns, checksum)

    async with open_nursery() as nursery:
        for rel, size, mtime_ns in listed:
            nursery.start_soon(one, rel, size, mtime_ns)
    return LocalTree(files=found, dirs=dirs, unstable=unstable)
