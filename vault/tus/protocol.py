"""tus 1.0 header parsing (pure): Upload-Metadata, Upload-Checksum, HTTP dates."""

from __future__ import annotations

import base64
import binascii
import hashlib
from email.utils import formatdate

import blake3

from vault import errors
from vault.checksums import Hasher

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
CHECKSUM_ALGORITHMS = "sha1,sha256,blake3"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


def parse_metadata(header: str | None) -> dict[str, str]:
    """``key base64,key2 base64`` -> dict; values that are not UTF-8 are rejected."""
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise errors.ValidationError(f"Upload-Metadata value of {key!r} is not base64 UTF-8") from None
        result[key] = decoded
    return result


def parse_upload_checksum(header: str) -> tuple[Hasher, bytes]:
    """``sha1 <base64>`` -> (a fresh hasher, expected digest); 400 for unknown algorithms."""
    algo, _, value = header.strip().partition(" ")
    algo = algo.lower()
    hasher: Hasher
    if algo == "sha1":
        hasher = hashlib.sha1(usedforsecurity=False)
    elif algo == "sha256":
        hasher = hashlib.sha256()
    elif algo == "blake3":
        hasher = blake3.blake3()
    else:
        raise errors.ValidationError(f"unsupported checksum algorithm {algo!r} (use {CHECKSUM_ALGORITHMS})")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise errors.ValidationError("Upload-Checksum value is not base64") from None
    return hasher, digest


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)
