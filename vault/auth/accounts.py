"""Accounts in the metadata store: lookups and changes inside a transaction (shared by API and CLI)."""

from __future__ import annotations

import re

from vault import errors
from vault.auth.records import USERS, USERS_BY_EMAIL, User, email_key, user_key
from vault.ids import new_id
from vault.meta import Txn
from vault.wire import EMAIL_PATTERN, MAX_EMAIL_LENGTH

_EMAIL_RE = re.compile(EMAIL_PATTERN)


def normalise_email(email: str, field: str = "email") -> str:
    """Stripped and lower-cased; ``ValidationError`` unless it looks like ``local@domain.tld``
    (the OpenAPI document's pattern, checked before lower-casing: that can lengthen a string)."""
    value = email.strip()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL_RE.search(value):
        raise errors.ValidationError(f"{field} is not a valid email address", details={"field": field})
    return value.lower()


def find_by_email(txn: Txn, email: str) -> User | None:
    user_id = txn.get_bytes(USERS_BY_EMAIL, email_key(email))
    return None if user_id is None else txn.get(USERS, user_id)


def get_user(txn: Txn, user_id: str) -> User | None:
    return txn.get(USERS, user_key(user_id))


def create_user(txn: Txn, *, email: str, name: str, password_hash: str, plan: str, now: float) -> User:
    """A new account; if the email was taken meanwhile, the existing account is returned."""
    existing = find_by_email(txn, email)
    if existing is not None:
        return existing
    user = User(
        id=new_id("user"),
        email=email,
        name=name or email.partition("@")[0],
        password_hash=password_hash,
        plan=plan,
        created_at=now,
    )
    txn.put(USERS, user_key(user.id), user)
    txn.put_bytes(USERS_BY_EMAIL, email_key(email), user.id.encode())
    return user


def replace_password_hash(txn: Txn, user_id: str, old_hash: str, new_hash: str) -> None:
    """Store a re-hash unless the password changed meanwhile."""
    user = get_user(txn, user_id)
    if user is not None and user.password_hash == old_hash:
        user.password_hash = new_hash
        txn.put(USERS, user_key(user_id), user)


def set_plan(txn: Txn, email: str, plan: str) -> User | None:
    user = find_by_email(txn, email)
    if user is not None:
        user.plan = plan
        txn.put(USERS, user_key(user.id), user)
    return user


def all_users(txn: Txn) -> list[User]:
    return sorted((user for _, user in txn.scan(USERS)), key=lambda u: (u.created_at, u.email))
