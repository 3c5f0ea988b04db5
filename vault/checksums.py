"""Checksums as the API writes them: ``"<algo>:<lowercase hex>"`` with algo blake3 or sha256."""

from __future__ import annotations

import hashlib
import re
from typing import Literal, Protocol

import blake3
import msgspec

from vault import errors

Algorithm = Literal["blake3", "sha256"]
_RE = re.compile(r"^(blake3|sha256):([0-9a-fA-F]{64})$")
# What ``parse_checksum`` accepts, for OpenAPI patterns (surrounding spaces are stripped).
CHECKSUM_PATTERN = r"\s*(?:blake3|sha256):[0-9a-fA-F]{64}\s*"


class Checksum(msgspec.Struct, frozen=True):
    algo: Algorithm
    hex: str

    def __str__(self) -> str:
        return f"{self.algo}:{self.hex}"

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.hex)


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def digest(self) -> bytes: ...


def parse_checksum(text: str, field: str = "checksum") -> Checksum:
    """Parse ``blake3:<64 hex>`` or ``sha256:<64 hex>``; ``VALIDATION_ERROR`` naming ``field``."""
    match = _RE.match(text.strip())
    if not match:
        raise errors.ValidationError(
            f"{field} must be 'blake3:<64 hex digits>' or 'sha256:<64 hex digits>'",
            details={"field": field},
        )
    algo: Algorithm = "blake3" if match.group(1) == "blake3" else "sha256"
    return Checksum(algo, match.group(2).lower())


def new_hasher(algo: Algorithm) -> Hasher:
    return blake3.blake3() if algo == "blake3" else hashlib.sha256()
