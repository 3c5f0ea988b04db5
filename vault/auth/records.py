"""Account and refresh-token records as stored in the metadata store.

Nothing here holds a secret in usable form: passwords are argon2id hashes and refresh tokens are
known only by their SHA-256 (see ``vault.auth.refresh``).
"""

from __future__ import annotations

import msgspec

from vault.meta import RawTable, Table
from vault.policies import Account


class User(msgspec.Struct, kw_only=True):
    id: str
    email: str  # normalised: stripped, lower-case
    name: str
    password_hash: str  # argon2id PHC string
    plan: str
    created_at: float

    def account(self) -> Account:
        """The secret-free view handed to plan policies."""
        return Account(id=self.id, email=self.email, name=self.name, plan=self.plan)


class RefreshToken(msgspec.Struct, kw_only=True):
    """One refresh token of a device's token family, keyed by the token's hash.

    ``family_id`` is the device session the token belongs to; the family is live while the
    device record's ``session_id`` equals it. A rotated token keeps its record (until it expires)
    so that presenting it again is recognised as reuse.
    """

    user_id: str
    device_id: str
    client_device_id: str  # deviceInfo.deviceId, which refresh requests name
    family_id: str
    issued_at: float
    expires_at: float
    # Claims of the access token issued together with this refresh token: with them the node can
    # sign the very same JWT again for a retry within the grace window.
    access_kid: str
    access_jti: str
    access_iat: int
    access_exp: int
    rotated_at: float = 0.0  # 0 while this is the family's newest token
    successor_hash: bytes = b""
    successor_sealed: bytes = b""  # the successor's secret, one-time-padded (vault.auth.refresh)


USERS = Table("users", User)
USERS_BY_EMAIL = RawTable("users_by_email")  # normalised email -> user id
REFRESH_TOKENS = Table("refresh_tokens", RefreshToken)


def user_key(user_id: str) -> bytes:
    return user_id.encode()


def email_key(email: str) -> bytes:
    return email.encode()
