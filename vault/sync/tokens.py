"""Sync tokens (pure): where a device's view of its user's journal stands, opaque and tamper-evident.

A token names a journal (by its identity: a new or rebuilt journal has a new one) and a position
in it. While a first sync pages through the whole tree, it also carries the journal head the
listing started at and the path to continue after. The text is ``st_`` + base64url of the
msgpack-encoded fields and a 16-byte HMAC-SHA256 over the user id and those fields, so a token is
bound to its user: another user's token, a garbled one or one whose fields were edited is refused
(``InvalidToken``), and never read as a position in someone else's journal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

PREFIX = "st_"
_MAC_SIZE = 16
_VERSION = 1
_MAX_TEXT = 2048


class InvalidToken(ValueError):
    """Not a token this node issued for this user."""


class SyncToken(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    journal_id: bytes
    seq: int  # changes up to and including this sequence number are reflected
    listing_head: int | None = None  # a first sync in progress: the head its listing started at
    after_folder: str | None = None  # ... and the last path it listed
    after_name: str | None = None
    version: int = _VERSION

    @property
    def listing(self) -> bool:
        return self.listing_head is not None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SyncToken)


def _mac(key: bytes, user_id: str, payload: bytes) -> bytes:
    return hmac.new(key, user_id.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_MAC_SIZE]


def encode(key: bytes, user_id: str, token: SyncToken) -> str:
    payload = _encoder.encode(token)
    raw = payload + _mac(key, user_id, payload)
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(key: bytes, user_id: str, text: str) -> SyncToken:
    """The token in ``text``; ``InvalidToken`` unless this node issued it for ``user_id``."""
    if not text.startswith(PREFIX) or len(text) > _MAX_TEXT:
        raise InvalidToken("not a sync token")
    body = text[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not a sync token") from None
    payload, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    if len(raw) <= _MAC_SIZE or not hmac.compare_digest(mac, _mac(key, user_id, payload)):
        raise InvalidToken("not a sync token of this account")
    try:
        token = _decoder.decode(payload)
    except msgspec.DecodeError:  # pragma: no cover - only a forged MAC gets here
        raise InvalidToken("not a sync token") from None
    if token.version != _VERSION or token.seq < 0:
        raise InvalidToken("not a sync token of this node version")
    return token
