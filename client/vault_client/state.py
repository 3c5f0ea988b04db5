"""The client's durable state: one SQLite file (the standard library's ``sqlite3``).

It holds what must survive the process being killed: the sign-in (tokens and the app's own device
id), and per synced folder ("root") its sync token, the index of local files as last agreed with
the node (path, file id, version, BLAKE3 checksum, size, mtime), the node's tree as last seen,
the pending local changes not yet answered, the open conflicts, and the open uploads and partial
downloads to resume.

WAL with ``synchronous=NORMAL``: a commit survives the process being killed (the case that
matters here); a power cut may lose the last commits, which the next sync recomputes from the
folder and the node. Calls are short and local, so they run on the event loop's thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (
    id INTEGER PRIMARY KEY, local TEXT UNIQUE NOT NULL, remote TEXT NOT NULL,
    sync_token TEXT, last_sync REAL, full_resync INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS files (
    root INTEGER NOT NULL, path TEXT NOT NULL, file_id TEXT, version INTEGER,
    checksum TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (root, path));
CREATE INDEX IF NOT EXISTS files_by_id ON files (root, file_id);
CREATE TABLE IF NOT EXISTS remote (
    root INTEGER NOT NULL, file_id TEXT NOT NULL, path TEXT NOT NULL, checksum TEXT NOT NULL,
    size INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (root, file_id));
CREATE TABLE IF NOT EXISTS remote_folders (
    root INTEGER NOT NULL, path TEXT NOT NULL, seen_local INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (root, path));
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY, root INTEGER NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL,
    change TEXT NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS conflicts (
    conflict_id TEXT PRIMARY KEY, root INTEGER NOT NULL, path TEXT NOT NULL, file_id TEXT,
    reason TEXT NOT NULL, change TEXT NOT NULL, remote TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    key TEXT PRIMARY KEY, upload_id TEXT NOT NULL, checksum TEXT NOT NULL, size INTEGER NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS downloads (
    target TEXT PRIMARY KEY, file_id TEXT NOT NULL, checksum TEXT NOT NULL, temp TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Root:
    id: int
    local: str
    remote: str
    sync_token: str | None
    last_sync: float | None
    full_resync: bool


@dataclass(frozen=True)
class IndexRow:
    """A local file as last agreed with the node (``file_id`` is ``None`` until the node named it)."""

    path: str  # relative to the root, ``/``-separated
    file_id: str | None
    version: int | None
    checksum: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class RemoteRow:
    file_id: str
    path: str
    checksum: str
    size: int
    version: int


@dataclass(frozen=True)
class PendingRow:
    id: str
    path: str
    change: dict[str, object]
    created_at: float
    attempts: int


@dataclass(frozen=True)
class ConflictRow:
    conflict_id: str
    root: int
    path: str
    file_id: str | None
    reason: str
    change: dict[str, object]
    remote: dict[str, object] | None
    created_at: str


class State:
    """The durable state. ``State(":memory:")`` for a throwaway one (scripts, tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the blocking wrapper opens it in its own event-loop thread;
        # the lock keeps one statement at a time whatever thread calls.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Several writes that land together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows as sqlite3 gives them (its values are untyped: callers convert each column)."""
        with self._lock:
            return list(self._db.execute(sql, args))

    # -- key/value ------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM kv WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def put(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def get_struct(self, key: str, kind: type[msgspec.Struct]) -> msgspec.Struct | None:
        raw = self.get(key)
        return None if raw is None else msgspec.json.decode(raw, type=kind)

    def put_struct(self, key: str, value: msgspec.Struct | None) -> None:
        self.put(key, None if value is None else msgspec.json.encode(value).decode())

    # -- roots ----------------------------------------------------------------------------------

    def root(self, local: str | Path, remote: str = "/") -> Root:
        """The root for a local folder, made on first use (bound to ``remote`` then)."""
        local_text = str(Path(local).resolve())
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO roots (local, remote) VALUES (?, ?)", (local_text, remote))
        found = self.find_root(local_text)
        assert found is not None
        return found

    def find_root(self, local: str | Path) -> Root | None:
        local_text = str(Path(local).resolve())
        rows = self._rows(
            "SELECT id, local, remote, sync_token, last_sync, full_resync FROM roots WHERE local = ?", local_text
        )
        return _root(rows[0]) if rows else None

    def roots(self) -> list[Root]:
        return [_root(r) for r in self._rows("SELECT id, local, remote, sync_token, last_sync, full_resync FROM roots")]

    def set_token(self, db: sqlite3.Connection, root: int, token: str | None) -> None:
        db.execute("UPDATE roots SET sync_token = ?, last_sync = ? WHERE id = ?", (token, time.time(), root))

    def set_full_resync(self, root: int, value: bool) -> None:
        with self._lock:
            self._db.execute("UPDATE roots SET full_resync = ? WHERE id = ?", (int(value), root))

    def forget_roots(self) -> None:
        with self.transaction() as db:
            for table in ("roots", "files", "remote", "remote_folders", "pending", "conflicts"):
                db.execute(f"DELETE FROM {table}")

    # -- the local index ------------------------------------------------------------------------

    def index(self, root: int) -> dict[str, IndexRow]:
        rows = self._rows("SELECT path, file_id, version, checksum, size, mtime_ns FROM files WHERE root = ?", root)
        return {str(r[0]): IndexRow(*r) for r in rows}

    def index_row(self, root: int, path: str) -> IndexRow | None:
        rows = self._rows(
            "SELECT path, file_id, version, checksum, size, mtime_ns FROM files WHERE root = ? AND path = ?", root, path
        )
        return IndexRow(*rows[0]) if rows else None

    def put_index(self, db: sqlite3.Connection, root: int, row: IndexRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO files (root, path, file_id, version, checksum, size, mtime_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (root, row.path, row.file_id, row.version, row.checksum, row.size, row.mtime_ns),
        )

    def drop_index(self, db: sqlite3.Connection, root: int, path: str) -> None:
        db.execute("DELETE FROM files WHERE root = ? AND path = ?", (root, path))

    # -- the node's tree as last seen -----------------------------------------------------------

    def remote(self, root: int) -> dict[str, RemoteRow]:
        rows = self._rows("SELECT file_id, path, checksum, size, version FROM remote WHERE root = ?", root)
        return {str(r[0]): RemoteRow(*r) for r in rows}

    def remote_row(self, root: int, file_id: str) -> RemoteRow | None:
        rows = self._rows(
            "SELECT file_id, path, checksum, size, version FROM remote WHERE root = ? AND file_id = ?", root, file_id
        )
        return RemoteRow(*rows[0]) if rows else None

    def put_remote(self, db: sqlite3.Connection, root: int, row: RemoteRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO remote (root, file_id, path, checksum, size, version) VALUES (?, ?, ?, ?, ?, ?)",
            (root, row.file_id, row.path, row.checksum, row.size, row.version),
        )

    def drop_remote(self, db: sqlite3.Connection, root: int, file_id: str) -> None:
        db.execute("DELETE FROM remote WHERE root = ? AND file_id = ?", (root, file_id))

    def clear_remote(self, db: sqlite3.Connection, root: int) -> None:
        db.execute("DELETE FROM remote WHERE root = ?", (root,))
        db.execute("DELETE FROM remote_folders WHERE root = ?", (root,))

    def remote_folders(self, root: int) -> dict[str, bool]:
        """The node's folders below the root, each with whether it has existed locally since."""
        rows = self._rows("SELECT path, seen_local FROM remote_folders WHERE root = ?", root)
        return {str(r[0]): bool(r[1]) for r in rows}

    def mark_folders_seen(self, db: sqlite3.Connection, root: int, folders: list[str]) -> None:
        db.executemany(
            "UPDATE remote_folders SET seen_local = 1 WHERE root = ? AND path = ?", [(root, f) for f in folders]
        )

    def put_remote_folder(self, db: sqlite3.Connection, root: int, path: str, present: bool) -> None:
        if present:
            db.execute("INSERT OR IGNORE INTO remote_folders (root, path) VALUES (?, ?)", (root, path))
        else:
            db.execute(
                "DELETE FROM remote_folders WHERE root = ? AND (path = ? OR path LIKE ?)", (root, path, path + "/%")
            )

    # -- pending local changes ------------------------------------------------------------------

    def pending(self, root: int) -> list[PendingRow]:
        rows = self._rows(
            "SELECT id, path, change, created_at, attempts FROM pending WHERE root = ? ORDER BY seq", root
        )
        return [PendingRow(str(r[0]), str(r[1]), msgspec.json.decode(str(r[2])), float(r[3]), int(r[4])) for r in rows]

    def add_pending(self, db: sqlite3.Connection, root: int, op_id: str, path: str, change: dict[str, object]) -> None:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM pending").fetchone()[0]
        db.execute(
            "INSERT INTO pending (id, root, seq, path, change, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (op_id, root, seq, path, msgspec.json.encode(change).decode(), time.time()),
        )

    def note_attempt(self, ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE pending SET attempts = attempts + 1 WHERE id = ?", [(i,) for i in ids])

    def drop_pending(self, db: sqlite3.Connection, op_id: str) -> None:
        db.execute("DELETE FROM pending WHERE id = ?", (op_id,))

    def pending_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM pending")[0][0])

    # -- conflicts ------------------------------------------------------------------------------

    def conflicts(self, root: int | None = None) -> list[ConflictRow]:
        sql = "SELECT conflict_id, root, path, file_id, reason, change, remote, created_at FROM conflicts"
        rows = self._rows(sql + " WHERE root = ? ORDER BY created_at", root) if root is not None else self._rows(sql)
        return [
            ConflictRow(
                str(r[0]),
                int(r[1]),
                str(r[2]),
                None if r[3] is None else str(r[3]),
                str(r[4]),
                msgspec.json.decode(str(r[5])),
                None if r[6] is None else msgspec.json.decode(str(r[6])),
                str(r[7]),
            )
            for r in rows
        ]

    def put_conflict(self, db: sqlite3.Connection, row: ConflictRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO conflicts (conflict_id, root, path, file_id, reason, change, remote, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.conflict_id,
                row.root,
                row.path,
                row.file_id,
                row.reason,
                msgspec.json.encode(row.change).decode(),
                None if row.remote is None else msgspec.json.encode(row.remote).decode(),
                row.created_at,
            ),
        )

    def drop_conflict(self, db: sqlite3.Connection, conflict_id: str) -> None:
        db.execute("DELETE FROM conflicts WHERE conflict_id = ?", (conflict_id,))

    # -- open uploads and partial downloads -----------------------------------------------------

    def open_upload(self, key: str, checksum: str, size: int) -> str | None:
        """The upload id of an upload begun for ``key`` with this very content, if any."""
        rows = self._rows(
            "SELECT upload_id FROM uploads WHERE key = ? AND checksum = ? AND size = ?", key, checksum, size
        )
        return str(rows[0][0]) if rows else None

    def put_upload(self, key: str, upload_id: str, checksum: str, size: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO uploads (key, upload_id, checksum, size, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, upload_id, checksum, size, time.time()),
            )

    def drop_upload(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM uploads WHERE key = ?", (key,))

    def upload_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM uploads")[0][0])

    def partial_download(self, target: str, file_id: str, checksum: str) -> str | None:
        rows = self._rows(
            "SELECT temp FROM downloads WHERE target = ? AND file_id = ? AND checksum = ?", target, file_id, checksum
        )
        return str(rows[0][0]) if rows else None

    def put_download(self, target: str, file_id: str, checksum: str, temp: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO downloads (target, file_id, checksum, temp) VALUES (?, ?, ?, ?)",
                (target, file_id, checksum, temp),
            )

    def drop_download(self, target: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM downloads WHERE target = ?", (target,))


def _root(row: tuple[Any, ...]) -> Root:
    return Root(
        id=int(row[0]),
        local=str(row[1]),
        remote=str(row[2]),
        sync_token=None if row[3] is None else str(row[3]),
        last_sync=None if row[4] is None else float(row[4]),
        full_resync=bool(row[5]),
    )
