"""Where the lmdb backend's lock file lives: on tmpfs, so that a stalled chunk disk cannot stop the node.

LMDB keeps its reader table in ``lock.mdb``, memory-mapped and written at the start and end of
every read transaction. When the filesystem under it is frozen or stalled, the first write to a
page of that map blocks in the kernel (``page_mkwrite``), and py-lmdb ends a read transaction
while holding Python's interpreter lock: one stuck reader then stopped every thread, the event
loop included (health, listings and downloads all hung while one chunk PUT waited on the disk).
The lock file holds nothing durable (LMDB rebuilds it whenever the first process opens the
environment), so it can live in memory: ``DATA_DIR/chunks/lock.mdb`` becomes a symlink to a file
in a private directory under ``lock_dir`` (``/dev/shm`` by default), which never stalls.

Every process that opens the same chunk store must see the same ``lock_dir`` (the same host and
IPC namespace: containers that share the data directory must share ``/dev/shm`` too). The link is
only changed while no process has the environment open: LMDB holds a shared ``fcntl`` lock on the
first byte of the lock file for as long as it is open, and we test for it before replacing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

import lmdb

from vault_backends._common import fsync_dir

log = logging.getLogger(__name__)

LOCK_NAME = "lock.mdb"
# Stores this process has open: probing their lock file would drop this process's own LMDB lock
# (fcntl locks are per process, and closing any descriptor of the file releases them).
_open_here: set[Path] = set()


def place_lock_file(env_dir: Path, lock_dir: str) -> Path:
    """Point ``env_dir/lock.mdb`` into ``lock_dir`` (or keep it beside the data when ``lock_dir`` is
    empty or unusable) before LMDB opens ``env_dir``; answers the lock file LMDB will use. Call
    ``closed`` once the environment is closed (or failed to open)."""
    link = env_dir / LOCK_NAME
    key = env_dir.resolve()
    if key in _open_here:
        raise lmdb.Error(f"The environment '{env_dir}' is already open in this process.")
    _open_here.add(key)
    try:
        return _place(env_dir, link, lock_dir)
    except BaseException:
        _open_here.discard(key)
        raise


def _place(env_dir: Path, link: Path, lock_dir: str) -> Path:
    private = _private_dir(Path(lock_dir), env_dir) if lock_dir else None
    wanted = private / LOCK_NAME if private is not None else None
    current = Path(os.readlink(link)) if link.is_symlink() else None
    if current == wanted:
        return wanted or link
    if not unused(link):
        # Another process has the store open through the current file: follow it, change nothing.
        log.info("chunk store %s is open elsewhere; its lock file stays at %s", env_dir, current or link)
        if current is not None:
            _ensure_parent(current)
        return current or link
    if wanted is not None:
        staged = env_dir / f".{LOCK_NAME}.link"
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        os.symlink(wanted, staged)
        os.replace(staged, link)
    else:
        link.unlink(missing_ok=True)
    fsync_dir(env_dir)
    return wanted or link


def closed(env_dir: Path) -> None:
    _open_here.discard(env_dir.resolve())


def _private_dir(base: Path, env_dir: Path) -> Path | None:
    """``base/megavault-lmdb-DEV-INODE`` of the store's directory: ours alone (mode 0700), or None."""
    if not base.is_dir():
        log.warning("lmdb lock_dir %s is not a directory; the lock file stays beside the chunks", base)
        return None
    st = os.stat(env_dir)
    private = base / f"megavault-lmdb-{st.st_dev:x}-{st.st_ino:x}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(private, 0o700)
    found = os.lstat(private)
    # /dev/shm is writable by everyone: a directory someone else made (or a symlink) is not ours.
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o077:
        log.warning("%s is not a private directory of this user; the lock file stays beside the chunks", private)
        return None
    return private


def unused(lock_file: Path) -> bool:
    """True when no process has the environment open (nobody holds LMDB's lock on byte 0)."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # absent, or a link whose target is gone (e.g. /dev/shm after a reboot)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the probe's lock
    return True


def _ensure_parent(target: Path) -> None:
    with contextlib.suppress(OSError):
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
