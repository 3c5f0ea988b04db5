"""Access tokens: HS256 JWTs signed with a key ring kept in the data directory.

The ring (``DATA_DIR/keys.json``, mode 0600) is created at first start with one key. ``vault keys
rotate`` adds a new current key and retires the old one: new tokens carry the new ``kid``, tokens
signed with a retired key keep verifying until they expire, after which the key is dropped at the
next rotation. A running node notices a rotation by the file's stat changing.

Decoding pins the algorithm (``alg: none`` or any other is refused), requires a known ``kid``, and
checks issuer and audience. Expiry is checked against the node's clock, not the system's, so
tests drive it with Trio's mock clock.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import msgspec

from vault import errors

ISSUER = "megavault-node"
AUDIENCE = "megavault-mobile"
ALGORITHM = "HS256"
KEY_BYTES = 32


class SigningKey(msgspec.Struct, kw_only=True, rename="camel"):
    kid: str
    secret: str  # base64url of KEY_BYTES random bytes
    created_at: float
    retired_at: float | None = None

    def secret_bytes(self) -> bytes:
        return base64.urlsafe_b64decode(self.secret + "=" * (-len(self.secret) % 4))


class KeyFile(msgspec.Struct, kw_only=True):
    current: str
    keys: list[SigningKey]


def _new_key(now: float) -> SigningKey:
    raw = secrets.token_bytes(KEY_BYTES)
    return SigningKey(
        kid="k_" + secrets.token_hex(8),
        secret=base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        created_at=now,
    )


class KeyRing:
    """The signing keys in ``path``. Blocking file I/O: call from a worker thread or the CLI."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: dict[str, bytes] = {}
        self._current = ""
        self._stamp: tuple[int, int, int] | None = None

    @property
    def current_kid(self) -> str:
        return self._current

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        return list(self._keys)

    def load_or_create(self, now: float) -> None:
        """Load the ring, creating it with one key when the file does not exist yet."""
        if not self.path.exists():
            self._write(self._fresh(now), exclusive=True)
        self._load()

    def reload_if_changed(self) -> bool:
        """Re-read the file when another process (``vault keys rotate``) replaced it."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        if (stat.st_mtime_ns, stat.st_size, stat.st_ino) == self._stamp:
            return False
        self._load()
        return True

    def rotate(self, now: float, keep_retired_for: float) -> str:
        """Add a new current key, retire the previous one, and drop keys retired longer ago than
        ``keep_retired_for`` (the access-token lifetime). Returns the new ``kid``."""
        if not self.path.exists():
            self.load_or_create(now)
        ring = self._read()
        key = _new_key(now)
        kept: list[SigningKey] = []
        for old in ring.keys:
            if old.kid == ring.current and old.retired_at is None:
                old.retired_at = now
            if old.retired_at is not None and old.retired_at + keep_retired_for < now:
                continue
            kept.append(old)
        self._write(KeyFile(current=key.kid, keys=[*kept, key]), exclusive=False)
        self._load()
        return key.kid

    def _fresh(self, now: float) -> KeyFile:
        key = _new_key(now)
        return KeyFile(current=key.kid, keys=[key])

    def _read(self) -> KeyFile:
        return msgspec.json.decode(self.path.read_bytes(), type=KeyFile)

    def _load(self) -> None:
        stat = self.path.stat()
        if stat.st_mode & 0o077:
            os.chmod(self.path, 0o600)
        ring = self._read()
        keys = {k.kid: k.secret_bytes() for k in ring.keys}
        if ring.current not in keys:
            raise ValueError(f"key ring {self.path} names a current key it does not hold")
        self._keys, self._current = keys, ring.current
        self._stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _write(self, ring: KeyFile, *, exclusive: bool) -> None:
        """Write a temp file (0600), fsync, then rename over (or link as new) the ring."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgspec.json.format(msgspec.json.encode(ring)))
                fh.flush()
                os.fsync(fh.fileno())
            if exclusive:
                # Two processes starting at once: the first link wins, the other loads its ring.
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, self.path)
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What an access token says: whose, which device, which token family, and its lifetime."""

    user_id: str
    device_id: str
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int


def sign_access_token(claims: AccessClaims, kid: str, key: bytes) -> str:
    """The JWT for ``claims``; deterministic, so the same claims and key give the same token."""
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": claims.user_id,
        "did": claims.device_id,
        "sid": claims.session_id,
        "jti": claims.token_id,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid})


_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_header_decoder = msgspec.json.Decoder(dict[str, Any])


def token_kid(token: str) -> str:
    """The ``kid`` of a well-formed HS256 token; ``Unauthorized`` for anything else.

    Reads the unverified header only to choose the key; ``jwt.decode`` then checks everything.
    (Parsed here rather than with ``jwt.get_unverified_header``, which costs several times more.)
    """
    segment = token.partition(".")[0]
    try:
        if token.count(".") != 2 or not _SEGMENT_RE.match(segment):
            raise ValueError("not a compact JWS")
        header = _header_decoder.decode(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, msgspec.DecodeError):
        raise errors.Unauthorized("Malformed access token") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise errors.Unauthorized("Access token is not signed the way this node signs")
    return kid


def verify_access_token(token: str, key_for: Callable[[str], bytes | None], now: float) -> AccessClaims:
    """Check signature, algorithm, issuer, audience and expiry; ``Unauthorized`` or ``TokenExpired``."""
    kid = token_kid(token)
    key = key_for(kid)
    if key is None:
        raise errors.Unauthorized("Access token was signed with an unknown key")
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "verify_exp": False,  # checked below against the node's clock
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["iss", "aud", "sub", "iat", "exp", "jti"],
            },
        )
    except jwt.InvalidTokenError:
        raise errors.Unauthorized("Invalid access token") from None
    try:
        claims = AccessClaims(
            user_id=_text(payload["sub"]),
            device_id=_text(payload.get("did")),
            session_id=_text(payload.get("sid")),
            token_id=_text(payload["jti"]),
            issued_at=_whole(payload["iat"]),
            expires_at=_whole(payload["exp"]),
        )
    except (TypeError, ValueError):
        raise errors.Unauthorized("Invalid access token") from None
    if now >= claims.expires_at:
        raise errors.TokenExpired("Access token has expired; refresh it")
    return claims


class VerifiedTokens:
    """``verify_access_token`` that checks each token's signature once, not on every request.

    A chunk PUT is authenticated per request, and decoding and checking a JWT cost about as much
    as the rest of the request's bookkeeping. The claims of a token that verified are kept, keyed
    by the token itself together with the key that verified it: only that exact string can hit,
    a key that changed (rotation, a ring reloaded without it) misses and verifies afresh, and
    expiry is checked against ``now`` on every call. Bounded: the oldest entry goes first.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._claims: dict[str, tuple[bytes, AccessClaims]] = {}

    def verify(self, token: str, key_for: Callable[[str], bytes | None], now: float) -> AccessClaims:
        hit = self._claims.get(token)
        if hit is not None:
            key = key_for(token_kid(token))
            if key is not None and key == hit[0]:
                if now >= hit[1].expires_at:
                    raise errors.TokenExpired("Access token has expired; refresh it")
                return hit[1]
        claims = verify_access_token(token, key_for, now)
        key = key_for(token_kid(token))
        if key is not None:
            while len(self._claims) >= self.capacity:
                self._claims.pop(next(iter(self._claims)))
            self._claims[token] = (key, claims)
        return claims


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string claim")
    return value


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer claim")
    return value
