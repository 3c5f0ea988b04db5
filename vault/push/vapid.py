"""The node's VAPID key pair (RFC 8292): made at first start, kept in the data directory.

Web Push services (and UnifiedPush distributors) bind a subscription to the application server's
public key, so the key must outlive restarts the way the token signing keys do: a new key would
silently orphan every browser and UnifiedPush subscription made against the old one.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = "vapid_private_key.pem"


@dataclass(frozen=True)
class VapidKey:
    """An EC P-256 key pair: the private key (PEM, PKCS#8) and the public point for clients."""

    private_pem: bytes

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @property
    def public_key(self) -> str:
        """The uncompressed public point, base64url without padding (``applicationServerKey``)."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def generate() -> VapidKey:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return VapidKey(pem)


def load_or_create(directory: Path) -> VapidKey:
    """The key in ``directory``, made (and written durably, mode 0600) when there is none yet."""
    path = directory / KEY_FILE
    if path.exists():
        return VapidKey(path.read_bytes())
    directory.mkdir(parents=True, exist_ok=True)
    key = generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return key
