"""Opaque, prefixed identifiers (``user_…``, ``device_…``, ``file_…``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A random id such as ``file_3kq9x…`` (128 bits, URL-safe)."""
    return f"{prefix}_{secrets.token_hex(16)}"
