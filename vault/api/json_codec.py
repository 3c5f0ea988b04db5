"""JSON encoding for every body the node makes (one encoder, made once)."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def encode_json(body: Any) -> bytes:
    return _encoder.encode(body)
