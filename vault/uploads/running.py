"""Whole-file digests computed while chunks arrive in order, so ``complete`` need not re-read.

A phone sends its chunks one after another; hashing each chunk into a running whole-file digest
as it streams makes completing a 256 MiB upload cost nothing extra. Chunks that arrive ahead of
their turn (parallel streams) are hashed once the gap before them closes, while the upload goes
on: from their own bytes, kept in memory since they streamed in (``HOLD_BUDGET`` for the whole
node), or, past that budget, read back from the store. Kept bytes are the very pieces that hashed
to the chunk's id as it was stored, and they are used only for a receipt naming that id, so the
digest describes the stored content whichever of two racing PUTs won. A re-sent earlier chunk or
a node restart drops the running state, and ``complete`` falls back to re-reading the stored
chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from vault.checksums import Hasher, new_hasher
from vault.offload import Offload

# Bytes of chunks that arrived ahead of their turn the node keeps for the running digests (four
# parallel streams of 8 MiB chunks keep about three chunks each). Beyond it they are read back.
HOLD_BUDGET = 32 * 1024 * 1024
# Kept bytes older than this give up their room when a newer chunk needs it (an upload whose
# gap never closes must not keep the budget from the others).
HOLD_SECONDS = 30.0


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


class KnownDigest:
    """Stands in for a hasher whose digest is already known: a file of one chunk hashes to its
    chunk's id (both are the BLAKE3 of the same bytes), which the store computes anyway, so a
    second pass over those bytes would only repeat it."""

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def update(self, data: bytes, /) -> None:
        raise AssertionError("a known digest takes no more bytes")

    def digest(self) -> bytes:
        return self._digest

    def copy(self) -> KnownDigest:
        return self


class PieceKeeper:
    """Fed like a hasher (``ChunkStore.put(also=...)``), it keeps the pieces: a chunk ahead of
    its turn, for the running digest to hash once the gap closes. Pieces are ``bytes`` the store
    does not change; keeping them copies nothing."""

    def __init__(self, size: int) -> None:
        self.reserved = size
        self.pieces: list[bytes] = []

    def update(self, data: bytes, /) -> None:
        self.pieces.append(data)


@dataclass
class _Held:
    chunk_id: bytes
    keeper: PieceKeeper
    since: float


class RunningDigests:
    """Per-upload running digests, held in memory only (bounded by the open uploads), and the
    bytes of chunks waiting for their turn (bounded by ``HOLD_BUDGET``)."""

    def __init__(self, *, hold_budget: int = HOLD_BUDGET) -> None:
        self._by_upload: dict[str, Running] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._held: dict[str, dict[int, _Held]] = {}
        # The highest chunk index received per upload: a catch-up is worth starting only when
        # something at or past the running position has arrived.
        self._latest: dict[str, int] = {}
        self.hold_budget = hold_budget
        self.hold_free = hold_budget
        self._stale: set[str] = set()  # open uploads whose digest was dropped (``forget``)

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
            self.forget(upload_id, stale=True)  # an earlier chunk is being replaced: the digest is stale
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
        held = self._held.get(upload_id)
        if held:
            for index in [i for i in held if i < position]:  # passed by (read back instead)
                self._release(upload_id, index)

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

    def forget(self, upload_id: str, *, stale: bool = False) -> None:
        """Drop the upload's digest and kept bytes: it ended, or (``stale``) its digest can no
        longer be trusted (a replaced chunk, a chunk unreadable): then no chunk ahead of its turn
        starts a new one, and ``complete`` re-reads what is stored."""
        self._by_upload.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        self._latest.pop(upload_id, None)
        for index in list(self._held.get(upload_id, ())):
            self._release(upload_id, index)
        if stale:
            self._stale.add(upload_id)
        else:
            self._stale.discard(upload_id)

    # -- chunks ahead of their turn ------------------------------------------------------------

    def received(self, upload_id: str, index: int) -> None:
        """Chunk ``index`` of the upload has its receipt."""
        if index > self._latest.get(upload_id, -1):
            self._latest[upload_id] = index

    def waiting(self, upload_id: str) -> bool:
        """Whether a chunk at or past the running position has arrived (a catch-up may move on)."""
        current = self._by_upload.get(upload_id)
        return current is not None and self._latest.get(upload_id, -1) >= current.position

    def keeper(self, upload_id: str, index: int, size: int, *, with_sha256: bool) -> PieceKeeper | None:
        """Room to keep chunk ``index`` (of ``size`` bytes) while the running digest is behind it;
        ``None`` when no running digest waits for it or there is no room (it is read back).

        A chunk that arrives before the first one ever did (parallel streams starting together)
        starts the upload's digest at 0, as the first chunk would have."""
        current = self._by_upload.get(upload_id)
        if current is None and upload_id not in self._stale:
            current = self._by_upload[upload_id] = Running(
                0, new_hasher("blake3"), new_hasher("sha256") if with_sha256 else None
            )
        if current is None or index <= current.position or size <= 0:
            return None
        if size > self.hold_free:
            self._release_stale()
        if size > self.hold_free:
            return None
        self.hold_free -= size
        return PieceKeeper(size)

    def hold(self, upload_id: str, index: int, chunk_id: bytes, keeper: PieceKeeper) -> None:
        """Keep ``keeper``'s pieces (which hashed to ``chunk_id``) until the digest reaches
        ``index``; replaces what was kept for that index."""
        current = self._by_upload.get(upload_id)
        if current is None or index < current.position:
            self.drop(keeper)
            return
        self._release(upload_id, index)
        self._held.setdefault(upload_id, {})[index] = _Held(chunk_id, keeper, time.monotonic())

    def unhold(self, upload_id: str, index: int, chunk_id: bytes) -> None:
        """Let go of what ``hold`` kept for ``index``, if it is still ``chunk_id``'s bytes."""
        held = self._held.get(upload_id, {}).get(index)
        if held is not None and held.chunk_id == chunk_id:
            self._release(upload_id, index)

    def take(self, upload_id: str, index: int, chunk_id: bytes) -> list[bytes] | None:
        """The kept bytes of chunk ``index`` if they are ``chunk_id``'s (what its receipt names),
        else ``None`` (read it back); either way the room is given back."""
        held = self._held.get(upload_id, {}).get(index)
        if held is None:
            return None
        pieces = held.keeper.pieces
        self._release(upload_id, index)
        return pieces if held.chunk_id == chunk_id else None

    def drop(self, keeper: PieceKeeper) -> None:
        """Give back a keeper's room (its chunk failed, or is not kept after all)."""
        self.hold_free = min(self.hold_budget, self.hold_free + keeper.reserved)
        keeper.reserved = 0
        keeper.pieces = []

    @property
    def held_bytes(self) -> int:
        return self.hold_budget - self.hold_free

    def _release(self, upload_id: str, index: int) -> None:
        held = self._held.get(upload_id)
        if held is None or index not in held:
            return
        self.drop(held.pop(index).keeper)
        if not held:
            del self._held[upload_id]

    def _release_stale(self) -> None:
        limit = time.monotonic() - HOLD_SECONDS
        for upload_id, held in list(self._held.items()):
            for index, entry in list(held.items()):
                if entry.since < limit:
                    self._release(upload_id, index)
