"""Whole-file digests computed while chunks arrive in order, so ``complete`` need not re-read.

A phone sends its chunks one after another; hashing each chunk into a running whole-file digest
as it streams makes completing a 256 MiB upload cost nothing extra. Chunks that arrive ahead of
their turn (parallel streams) are read back and hashed once the gap before them closes, while the
upload goes on. A re-sent earlier chunk or a node restart drops the running state, and
``complete`` falls back to re-reading the stored chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from vault.checksums import Hasher, new_hasher
from vault.offload import Offload


@dataclass
class Running:
    """Digests of bytes ``0..position`` (position: next chunk index, or byte offset for tus)."""

    position: int
    blake3: Hasher
    sha256: Hasher | None
    # The digest this one was forked from: a trial is adopted only while that is still current.
    base: Running | None = field(default=None, repr=False, compare=False)

    def fork(self) -> Running:
        """An independent copy: fed a piece that may still fail, it leaves this one intact."""
        return Running(
            self.position,
            self.blake3.copy(),  # type: ignore[attr-defined]
            self.sha256.copy() if self.sha256 is not None else None,  # type: ignore[attr-defined]
            base=self,
        )

    async def update(self, data: bytes, offload: Offload) -> None:
        await offload.hash(self.hashers(), data)

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
            # The empty digest is kept as the base every first piece forks from, so a trial
            # started before a ``forget`` can never be adopted after it.
            current = self._by_upload[upload_id] = Running(
                0, new_hasher("blake3"), new_hasher("sha256") if with_sha256 else None
            )
        if current is not None and current.position == position:
            return current.fork()
        if current is not None and position < current.position:
            self.forget(upload_id)  # an earlier chunk is being replaced: the digest is stale
        return None

    def accept(self, upload_id: str, trial: Running, position: int) -> None:
        """Adopt ``trial`` as covering ``0..position``, unless the digest it was forked from is no
        longer current (another request moved on, or it was forgotten: an abort, a replaced
        chunk): a stale digest must never come back."""
        current = self._by_upload.get(upload_id)
        if current is trial:  # one tus PATCH moving on piece by piece
            trial.position = position
            return
        if trial.base is None or current is not trial.base:
            return
        trial.position = position
        trial.base = None  # adopted: keep no chain of earlier digests alive
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
