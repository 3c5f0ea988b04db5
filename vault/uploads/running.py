"""Whole-file digests computed while chunks arrive in order, so ``complete`` need not re-read.

A phone sends its chunks one after another; hashing each chunk into a running whole-file digest
as it streams makes completing a 256 MiB upload cost nothing extra. Chunks that arrive ahead of
their turn (parallel streams) are read back and hashed once the gap before them closes, while the
upload goes on. A re-sent earlier chunk or a node restart drops the running state, and
``complete`` falls back to re-reading the stored chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from vault.checksums import Hasher, new_hasher

# Pieces above this are hashed in a worker thread (BLAKE3 and SHA-256 release the GIL).
_THREAD_MIN = 256 * 1024


@dataclass
class Running:
    """Digests of bytes ``0..position`` (position: next chunk index, or byte offset for tus)."""

    position: int
    blake3: Hasher
    sha256: Hasher | None

    def fork(self) -> Running:
        """An independent copy: fed a piece that may still fail, it leaves this one intact."""
        return Running(
            self.position,
            self.blake3.copy(),  # type: ignore[attr-defined]
            self.sha256.copy() if self.sha256 is not None else None,  # type: ignore[attr-defined]
        )

    async def update(self, data: bytes) -> None:
        if len(data) >= _THREAD_MIN:
            await trio.to_thread.run_sync(self._update, data)
        else:
            self._update(data)

    def _update(self, data: bytes) -> None:
        self.blake3.update(data)
        if self.sha256 is not None:
            self.sha256.update(data)

    def hashers(self) -> list[Hasher]:
        """The hashers to feed the next piece into (``ChunkStore.put(also=...)``)."""
        return [self.blake3] if self.sha256 is None else [self.blake3, self.sha256]

    def digests(self) -> dict[str, str]:
        out = {"blake3": self.blake3.digest().hex()}
        if self.sha256 is not None:
            out["sha256"] = self.sha256.digest().hex()
        return out


class RunningDigests:
    """Per-upload running digests, held in memory only (bounded by the open uploads)."""

    def __init__(self) -> None:
        self._by_upload: dict[str, Running] = {}
        self._locks: dict[str, trio.Lock] = {}

    def trial(self, upload_id: str, position: int, *, with_sha256: bool) -> Running | None:
        """A copy to feed the next piece into, if ``position`` continues the running digest."""
        current = self._by_upload.get(upload_id)
        if current is None and position == 0:
            return Running(0, new_hasher("blake3"), new_hasher("sha256") if with_sha256 else None)
        if current is not None and current.position == position:
            return current.fork()
        if current is not None and position < current.position:
            self.forget(upload_id)  # an earlier chunk is being replaced: the digest is stale
        return None

    def accept(self, upload_id: str, trial: Running, position: int) -> None:
        """Adopt ``trial`` as covering ``0..position``, unless another request moved on meanwhile."""
        current = self._by_upload.get(upload_id)
        if current is None and trial.position != 0:
            return  # forgotten meanwhile (abort, a re-sent chunk): do not bring back a stale digest
        if current is not None and current.position != trial.position:
            return
        trial.position = position
        self._by_upload[upload_id] = trial

    def current(self, upload_id: str) -> Running | None:
        return self._by_upload.get(upload_id)

    def catch_up_lock(self, upload_id: str) -> trio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = trio.Lock()
        return lock

    def get(self, upload_id: str, position: int) -> Running | None:
        current = self._by_upload.get(upload_id)
        return current if current is not None and current.position == position else None

    def forget(self, upload_id: str) -> None:
        self._by_upload.pop(upload_id, None)
        self._locks.pop(upload_id, None)
