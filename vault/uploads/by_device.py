"""Open upload sessions by device: what ``syncData.pendingUploads`` counts, without a scan.

A session is in this index while its status is ``"uploading"``: ``init`` (and tus ``create``) add
it in the transaction that stores the session, ``complete`` and ``release_session`` (abort,
expiry) take it out in theirs. Keys are ``user NUL device NUL expiresAt NUL upload id``, so the
device's sessions that have not expired yet are one range scan from ``now`` (a session past its
expiry but not yet expired by the node's sweep is not counted).

Data written before the index existed is indexed once at start (``ensure_built``).
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterator

from vault import errors
from vault.meta import META, MetaStore, RawTable, Txn
from vault.offload import Offload
from vault.uploads.records import UPLOADS, UploadSession

OPEN_UPLOADS = RawTable("uploads_open_by_device")
_BUILT = b"uploads_open_by_device_built"
_MS = struct.Struct(">Q")


def _device_prefix(user_id: str, device_id: str) -> bytes:
    return user_id.encode() + b"\x00" + device_id.encode() + b"\x00"


def _at(seconds: float) -> bytes:
    return _MS.pack(max(0, int(seconds * 1000)))


def _key(upload: UploadSession) -> bytes:
    return _device_prefix(upload.user_id, upload.device_id) + _at(upload.expires_at) + b"\x00" + upload.id.encode()


def add(txn: Txn, upload: UploadSession) -> None:
    """Index a new open session (in the transaction that stores it)."""
    txn.put_bytes(OPEN_UPLOADS, _key(upload), b"")


def remove(txn: Txn, upload: UploadSession) -> None:
    """Forget a session that stops being open (in the transaction that changes its status)."""
    txn.delete_key(OPEN_UPLOADS, _key(upload))


def count_open(txn: Txn, user_id: str, device_id: str, now: float) -> int:
    """The device's sessions still uploading and not past their expiry."""
    return sum(1 for _ in _open_keys(txn, user_id, device_id, now))


def _open_keys(txn: Txn, user_id: str, device_id: str, now: float) -> Iterator[bytes]:
    """The index keys of the device's sessions not past their expiry, soonest to expire first."""
    prefix = _device_prefix(user_id, device_id)
    return txn.keys(OPEN_UPLOADS, prefix, start=prefix + _at(now + 0.001))


def require_room(txn: Txn, user_id: str, device_id: str, adding: int, now: float, cap: int) -> None:
    """Refuse (429, ``Retry-After`` until the device's first open session expires) when ``adding``
    more sessions would leave the device more than ``cap`` open ones: one device cannot fill the
    metadata store with sessions it never uses. More than ``cap`` at once can never fit: 400.
    Reads at most ``cap`` index keys."""
    if adding > cap:
        raise errors.ValidationError(
            f"At most {cap} uploads may be open on a device ([uploads] max_open_per_device); this asks for {adding}",
            details={"limit": cap, "requested": adding},
        )
    keys = _open_keys(txn, user_id, device_id, now)
    first = next(keys, None)
    if first is None or adding <= 0:
        return
    open_now = 1 + sum(1 for _ in itertools.islice(keys, max(0, cap - 1)))
    if open_now + adding <= cap:
        return
    prefix = _device_prefix(user_id, device_id)
    (expires_ms,) = _MS.unpack(first[len(prefix) : len(prefix) + _MS.size])
    error = errors.RateLimitExceeded(
        max(1, math.ceil(expires_ms / 1000 - now)),
        f"This device has {open_now} open uploads (at most {cap}, [uploads] max_open_per_device): "
        "complete or abort some before starting more",
    )
    error.details = {"limit": cap, "open": open_now, "requested": adding}
    raise error


def _build(txn: Txn) -> None:
    if txn.get_bytes(META, _BUILT) is not None:
        return
    for _, upload in txn.scan(UPLOADS):
        if upload.status == "uploading":
            add(txn, upload)
    txn.put_bytes(META, _BUILT, b"1")


async def ensure_built(meta: MetaStore, offload: Offload) -> None:
    """Index the open sessions of data written before this index existed (once: a scan of every
    session, on a first start only; new data is indexed as it is written)."""

    def built() -> bool:
        with meta.read() as txn:
            return txn.get_bytes(META, _BUILT) is not None

    if not await offload.run(built):
        await meta.write(_build)
