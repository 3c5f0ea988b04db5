"""One node per data directory: an advisory ``flock`` on ``DATA_DIR/node.lock``.

The running node holds the lock for its lifetime; tools that must not run beside it (``vault gc``)
ask ``node_is_running`` first. ``flock`` locks belong to an open file description and vanish
when the process dies, so a crashed node never leaves a stale lock behind, and the file itself is
never deleted (deleting a lock file races with the next process opening it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "node.lock"


class DataDirLocked(Exception):
    """Another process holds the data directory's node lock."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(
            f"another vault node is running with data directory {data_dir} "
            f"(it holds {data_dir / LOCK_NAME}); stop it first"
        )
        self.data_dir = data_dir


class NodeLock:
    """The node lock of one data directory; ``acquire`` and ``release`` block briefly (file I/O)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``DataDirLocked`` at once (never waits for the holder)."""
        if self._fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLocked(self.data_dir) from None
        except BaseException:
            os.close(fd)
            raise
        # The pid is for a human looking at the file; the lock itself is what counts.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.contextmanager
def hold_node_lock(data_dir: Path) -> Iterator[NodeLock]:
    """Hold the node lock of ``data_dir`` for the ``with`` block; ``DataDirLocked`` if taken."""
    lock = NodeLock(data_dir)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def node_is_running(data_dir: Path) -> bool:
    """Whether some open file description (another node, or this process) holds the node lock."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
