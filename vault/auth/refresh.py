"""Refresh tokens: 256-bit random secrets, stored only as hashes, rotated on every use.

A token is ``rt_`` + base64url of 32 random bytes. The store keys each token's record by
SHA-256 of those bytes (a fast hash is right here: the input is 256 random bits, nothing to
brute-force), so the data directory never holds a usable token.

Rotation and reuse. Every refresh marks the presented token rotated and issues a successor in the
same family (the device's session). Presenting a rotated token again means two parties hold it:
the whole family is revoked (the device record's ``session_id`` is cleared), which stops the
newest refresh token and every access token of the family at once.

The grace window. A phone may send a refresh, the node rotates, and the answer is lost; the phone
retries with the token it still has. Within ``[auth] refresh_retry_grace``, and while the successor
has not been used, that retry must get the *same* new pair, not a third one (which would leave
two live branches) and not a revocation. So the node must be able to give back a token it did not
keep. It stores the successor's 32 secret bytes XOR-ed with a pad derived from the *presented*
token (SHA-256 with a separate domain label): a one-time pad, because each token is rotated once
and so seals exactly one successor. Only a client holding the predecessor can unseal it; the data
directory alone reveals nothing (the stored hash of the predecessor uses another label, so it
does not give the pad). The unsealed successor is checked against its stored hash before use. The
access token of the pair is signed again from its stored claims: HS256 is deterministic, so the
retry gets byte-for-byte the same JWT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from typing import Literal

import msgspec

from vault.auth.records import REFRESH_TOKENS, RefreshToken
from vault.devices.records import DEVICES, Device, device_key
from vault.meta import Txn

PREFIX = "rt_"
SECRET_BYTES = 32
_TOKEN_RE = re.compile(r"^rt_[A-Za-z0-9_-]{43}$")
_HASH_LABEL = b"megavault/refresh-token/hash\x00"
_PAD_LABEL = b"megavault/refresh-token/seal\x00"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def encode_token(secret: bytes) -> str:
    return PREFIX + base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def decode_token(token: str) -> bytes | None:
    """The secret bytes of a well-formed token, else ``None``."""
    if not _TOKEN_RE.match(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :] + "=")
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SECRET_BYTES and encode_token(raw) == token else None


def token_hash(secret: bytes) -> bytes:
    """The key a token's record is stored under."""
    return hashlib.sha256(_HASH_LABEL + secret).digest()


def _pad(secret: bytes) -> bytes:
    return hashlib.sha256(_PAD_LABEL + secret).digest()


def seal(successor: bytes, presented: bytes) -> bytes:
    """``successor`` hidden under a pad only the holder of ``presented`` can compute."""
    return bytes(a ^ b for a, b in zip(successor, _pad(presented), strict=True))


def unseal(sealed: bytes, presented: bytes) -> bytes:
    return seal(sealed, presented)


class Lifetimes(msgspec.Struct, frozen=True, kw_only=True):
    access_ttl: float
    refresh_ttl: float
    grace: float


def new_record(
    *,
    device: Device,
    family_id: str,
    now: float,
    kid: str,
    lifetimes: Lifetimes,
) -> RefreshToken:
    return RefreshToken(
        user_id=device.user_id,
        device_id=device.id,
        client_device_id=device.client_id,
        family_id=family_id,
        issued_at=now,
        expires_at=now + lifetimes.refresh_ttl,
        access_kid=kid,
        access_jti=secrets.token_hex(12),
        access_iat=int(now),
        access_exp=int(now + lifetimes.access_ttl),
    )


def issue(txn: Txn, secret: bytes, record: RefreshToken) -> None:
    """Store a new family head (at registration)."""
    txn.put(REFRESH_TOKENS, token_hash(secret), record)


Outcome = Literal["rotated", "retried", "unknown", "wrong_device", "expired", "revoked", "reused"]


class Rotation(msgspec.Struct, kw_only=True):
    """What ``rotate`` decided. ``record`` is the token to answer with (new, or the successor on a
    retry); ``sealed``/``successor_hash`` let the caller unseal the successor on a retry."""

    outcome: Outcome
    record: RefreshToken | None = None
    sealed: bytes = b""
    successor_hash: bytes = b""


def rotate(
    txn: Txn,
    *,
    presented: bytes,
    successor: bytes,
    client_device_id: str,
    now: float,
    kid: str,
    lifetimes: Lifetimes,
) -> Rotation:
    """Decide a refresh inside one write transaction (so concurrent refreshes are ordered).

    Never raises for a refused token: revoking a family must be committed, and an exception
    would roll it back. The caller maps the outcome to an error.
    """
    record = txn.get(REFRESH_TOKENS, token_hash(presented))
    if record is None:
        return Rotation(outcome="unknown")
    if client_device_id not in (record.client_device_id, record.device_id):
        return Rotation(outcome="wrong_device")
    if now >= record.expires_at:
        return Rotation(outcome="expired")
    key = device_key(record.user_id, record.device_id)
    device = txn.get(DEVICES, key)
    if device is None or not device.session_id or device.session_id != record.family_id:
        return Rotation(outcome="revoked")
    if record.rotated_at:
        newest = txn.get(REFRESH_TOKENS, record.successor_hash)
        if now - record.rotated_at <= lifetimes.grace and newest is not None and not newest.rotated_at:
            return Rotation(
                outcome="retried",
                record=newest,
                sealed=record.successor_sealed,
                successor_hash=record.successor_hash,
            )
        device.session_id = ""
        txn.put(DEVICES, key, device)
        return Rotation(outcome="reused")
    fresh = new_record(device=device, family_id=record.family_id, now=now, kid=kid, lifetimes=lifetimes)
    record.rotated_at = now
    record.successor_hash = token_hash(successor)
    record.successor_sealed = seal(successor, presented)
    txn.put(REFRESH_TOKENS, token_hash(presented), record)
    txn.put(REFRESH_TOKENS, record.successor_hash, fresh)
    return Rotation(outcome="rotated", record=fresh)


def expired_keys(txn: Txn, before: float, limit: int = 10_000) -> list[bytes]:
    """Keys of token records that expired before ``before`` (read-only scan)."""
    found: list[bytes] = []
    for key, record in txn.scan(REFRESH_TOKENS):
        if record.expires_at < before:
            found.append(key)
            if len(found) >= limit:
                break
    return found


def delete_keys(txn: Txn, keys: list[bytes]) -> int:
    return sum(txn.delete(REFRESH_TOKENS, key) for key in keys)
