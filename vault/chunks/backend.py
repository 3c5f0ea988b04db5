"""The chunk backend interface: what a plugin in the ``vault.backends`` group implements.

Like restic's and Perkeep's backends, a backend trusts its input: hashing, size limits and
verification live once, in ``ChunkStore`` above it. A backend only has to store bytes under an id
durably and atomically, give them back, and enumerate what it holds.

Backends are async so that each can offload blocking work its own way (a thread for LMDB and
files, an async HTTP client for object storage); none may block the Trio event loop.

A backend declares its ``[storage.options]`` as a struct, its class attribute ``Options`` (a
subclass of ``BackendOptions``; a backend without options keeps the base). The node decodes the
table into it, so a wrong key or type stops the node with a message naming the key, and then
constructs the backend as ``Backend(path, options)``: ``path`` is ``DATA_DIR/chunks``, ``options``
the decoded struct. Then it calls ``open``. ``vault.chunks.conformance`` is the suite every
backend must pass.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import msgspec

from vault.chunks.ids import ChunkId


class BackendOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of a backend's ``[storage.options]`` struct: unknown keys are refused by name.

    Give every field a default where one makes sense; a field without one is a required key.
    """


OptionsT = TypeVar("OptionsT", bound=BackendOptions)


def options_as(kind: type[OptionsT], options: OptionsT | Mapping[str, Any] | None) -> OptionsT:
    """``options`` as a ``kind`` struct, for a backend's constructor.

    The node always passes the struct. ``None`` stands for the defaults, and a plain mapping is
    decoded as ``[storage.options]`` would be, for tools and tests that build a backend by hand
    (``FsBackend(path, {})``); a wrong key then raises ``msgspec.ValidationError``, a
    ``ValueError`` naming it.
    """
    if options is None:
        return kind()
    if isinstance(options, kind):
        return options
    if isinstance(options, msgspec.Struct):
        raise TypeError(f"expected {kind.__name__} options, got {type(options).__name__}")
    return msgspec.convert(dict(options), kind)


class BackendClosed(RuntimeError):
    """The backend was used before ``open`` or after ``close``."""


class StorageUnavailable(OSError):
    """The storage cannot be reached just now (a network storage down, throttling, a timeout).

    Transient: ``RetryingBackend`` retries it, and a request that still fails is answered
    ``503 SERVICE_UNAVAILABLE`` with ``Retry-After``; nothing is lost and the node recovers by
    itself once the storage answers again. The message says what failed, never a secret.
    """


class StorageRefused(Exception):
    """The storage refuses this configuration (bad credentials, no such bucket, no permission,
    in use by another node). Permanent: not retried; the node refuses to start with the message,
    which is one line saying what to fix and never contains a secret."""


class BackendStats(msgspec.Struct, frozen=True):
    """How many chunks a backend holds and their total size in bytes."""

    chunks: int
    bytes: int


class ChunkWriter(abc.ABC):
    """A staged chunk: invisible under any id until ``commit`` returns."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data`` (the store hands over pieces of at most 4 MiB, never concurrently)."""

    @abc.abstractmethod
    async def commit(self, chunk_id: ChunkId) -> None:
        """Make the staged bytes durable and visible as ``chunk_id``; a no-op if it exists.

        Returns only once the chunk would survive a crash. Concurrent commits of one id must
        leave exactly one copy. After a failed commit nothing is visible and nothing is left.
        """

    async def commit_if_absent(self, chunk_id: ChunkId) -> bool:
        """``commit`` and the existence check in one step: whether this call stored the chunk.

        When ``chunk_id`` is already stored nothing is written and the staged bytes are kept, so
        the caller can still ``commit`` them (once it has removed a stored copy that fails
        verification) or ``abort``. Only backends whose ``blind_put_is_cheap`` is true need it:
        ``ChunkStore`` calls it on no other.
        """
        raise NotImplementedError(f"{type(self).__name__} has no commit_if_absent")

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the staged bytes; safe to call after a failed write or twice."""


class ChunkBackend(abc.ABC):
    """Stores opaque bytes under 32-byte ids. Implementations must be safe for concurrent use."""

    name: str = "abstract"
    # The struct ``[storage.options]`` is decoded into before the backend is constructed.
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    @property
    def blind_put_is_cheap(self) -> bool:
        """Whether ``ChunkStore.put`` should write a chunk without asking first if it is stored.

        False (the default): a put of a known id asks the backend, and skips the write when the
        stored copy verifies. True: the store writes at once and commits with the writers'
        ``commit_if_absent``, which says whether the chunk was already there; only then does it
        verify the stored copy (and replace it when it is corrupt), so deduplication and repair
        behave as before. For an object store a lookup is a request of its own (a HEAD) before
        every upload of new content, while an upload of an object already there is refused by the
        server (``If-None-Match: *``) and costs the bytes sent: worth it where new content is the
        common case, as it is for chunk uploads (a file the user already has is answered
        ``exists`` at upload init, and a resumed upload sends only the chunks still missing).
        Read after ``open``: a backend may decide then, as the s3 one does.
        """
        return False

    @abc.abstractmethod
    async def open(self) -> None:
        """Open or create the storage; remove leftovers of interrupted writes.

        Leftovers may belong to another process using the same storage (``vault fsck`` beside a
        running node): remove them only when this process is the storage's sole user.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every resource once operations in progress have finished.

        Writers neither committed nor aborted are dropped as a crash would leave them; the next
        ``open`` removes what they staged. Their later ``abort`` must not fail.
        """

    @abc.abstractmethod
    async def begin_put(self) -> ChunkWriter:
        """Start staging a new chunk."""

    @abc.abstractmethod
    def read(self, chunk_id: ChunkId) -> AsyncIterator[bytes]:
        """Stream a stored chunk's bytes; raises ``KeyError`` when it is absent."""

    async def read_range(self, chunk_id: ChunkId, start: int, length: int) -> bytes:
        """At most ``length`` bytes of a stored chunk from ``start`` (fewer at its end); raises
        ``KeyError`` when it is absent.

        Downloads to slow clients read this way, a small piece at a time, so a client that takes
        minutes over a chunk holds one small piece rather than the chunk. This default goes through
        ``read`` (correct for any backend, but it reads from the chunk's start each time); a
        backend that can seek overrides it.
        """
        out = bytearray()
        stop = start + length
        position = 0
        source = self.read(chunk_id)
        try:
            async for piece in source:
                end = position + len(piece)
                if end > start:
                    out += piece[max(0, start - position) : stop - position]
                position = end
                if position >= stop:
                    break
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        return bytes(out)

    @abc.abstractmethod
    async def has_many(self, chunk_ids: Iterable[ChunkId]) -> set[ChunkId]:
        """The subset of ``chunk_ids`` that is stored."""

    @abc.abstractmethod
    async def delete_many(self, chunk_ids: Iterable[ChunkId]) -> int:
        """Delete the given chunks durably; returns how many existed."""

    @abc.abstractmethod
    async def list_ids(self, after: ChunkId | None, limit: int) -> list[ChunkId]:
        """Up to ``limit`` stored ids in ascending byte order, strictly greater than ``after``."""

    @abc.abstractmethod
    async def stat(self, chunk_id: ChunkId) -> int | None:
        """The stored size of a chunk, or ``None`` when it is absent."""

    @abc.abstractmethod
    async def stats(self) -> BackendStats:
        """Chunk count and total bytes (may be maintained incrementally)."""

    async def check(self) -> None:
        """Raise ``OSError`` when the storage cannot be read (used by the health check)."""
        await self.list_ids(None, 1)
