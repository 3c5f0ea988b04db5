"""Ending upload sessions: release what an open session holds, expire overdue ones, forget old ones.

Used by the running node (every ``uploads.gc_interval``) and by ``vault gc`` on a stopped node,
so sessions that expired while the node was down give their chunks back too.
"""

from __future__ import annotations

from collections.abc import Callable

from vault.chunks.ids import ChunkId
from vault.chunks.refs import decref
from vault.meta import MetaStore, Txn
from vault.offload import Offload
from vault.quota import get_usage, put_usage
from vault.uploads import by_device
from vault.uploads.records import UPLOAD_CHUNKS, UPLOADS, UploadSession, UploadStatus, chunk_prefix

# Finished sessions are kept this long past their expiry, so a late client learns "expired" or
# gets its completed file again rather than a bare 404.
FORGET_AFTER = 7 * 86400.0
_BATCH = 200


def release_session(txn: Txn, upload: UploadSession, status: UploadStatus) -> list[ChunkId]:
    """Close an open session: its reserved bytes and its references on received chunks go."""
    released: list[ChunkId] = []
    for key, chunk in list(txn.scan(UPLOAD_CHUNKS, chunk_prefix(upload.id))):
        released += decref(txn, [ChunkId(chunk.chunk_id)])
        txn.delete(UPLOAD_CHUNKS, key)
    usage = get_usage(txn, upload.user_id)
    usage.reserved = max(0, usage.reserved - upload.size)
    put_usage(txn, upload.user_id, usage)
    upload.status = status
    txn.put(UPLOADS, upload.id.encode(), upload)
    by_device.remove(txn, upload)
    return released


def overdue(txn: Txn, now: float, session_ttl: float) -> tuple[list[str], list[str]]:
    """(open sessions past their expiry, finished sessions old enough to forget)."""
    keep = max(session_ttl, FORGET_AFTER)
    expire: list[str] = []
    forget: list[str] = []
    for _, upload in txn.scan(UPLOADS):
        if upload.status == "uploading" and upload.expires_at <= now:
            expire.append(upload.id)
        elif upload.status != "uploading" and upload.expires_at + keep <= now:
            forget.append(upload.id)
    return expire, forget


def _overdue(meta: MetaStore, now: float, session_ttl: float) -> tuple[list[str], list[str]]:
    # A scan of every session: in a worker thread, off the event loop.
    with meta.read() as txn:
        return overdue(txn, now, session_ttl)


async def expire_sessions(
    meta: MetaStore,
    now: float,
    session_ttl: float,
    *,
    on_expired: Callable[[str], None] | None = None,
    offload: Offload | None = None,
) -> int:
    """Expire overdue open sessions and forget old finished ones; returns how many expired."""
    expire, forget = await (offload or Offload()).run(_overdue, meta, now, session_ttl)
    keep = max(session_ttl, FORGET_AFTER)
    count = 0
    due = [(upload_id, True) for upload_id in expire] + [(upload_id, False) for upload_id in forget]
    for start in range(0, len(due), _BATCH):
        batch = due[start : start + _BATCH]

        def write(txn: Txn, batch: list[tuple[str, bool]] = batch) -> list[str]:
            expired: list[str] = []
            for upload_id, open_one in batch:
                upload = txn.get(UPLOADS, upload_id.encode())
                if upload is None:
                    continue
                # Re-checked inside the write: the session may have changed since the read.
                if open_one and upload.status == "uploading" and upload.expires_at <= now:
                    release_session(txn, upload, "expired")
                    expired.append(upload_id)
                elif not open_one and upload.status != "uploading" and upload.expires_at + keep <= now:
                    txn.delete(UPLOADS, upload_id.encode())
            return expired

        expired = await meta.write(write)
        count += len(expired)
        if on_expired is not None:
            for upload_id in expired:
                on_expired(upload_id)
    return count
