"""Opaque, prefixed identifiers (``user_…``, ``device_…``, ``file_…``)."""

from __future__ import annotations

import re
import secrets

_ID_RE = re.compile(r"^[a-z]+_[A-Za-z0-9]{10,64}$")


def new_id(prefix: str) -> str:
    """A random id such as ``file_3kq9x…`` (128 bits, URL-safe)."""
    return f"{prefix}_{secrets.token_hex(16)}"


def looks_like(prefix: str, value: str) -> bool:
    """Whether ``value`` has the shape of an id of this type (cheap pre-check before lookups)."""
    return value.startswith(prefix + "_") and bool(_ID_RE.match(value))
