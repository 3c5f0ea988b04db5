"""Parsing of human sizes ("64KiB", "5GiB") and durations ("90s", "7d") used in config.

Pure functions; the config decoder wraps them so a bad value is reported with its key.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_size(value: str | int) -> int:
    """Bytes from an integer or a string such as ``"64KiB"``, ``"5GiB"``, ``"0"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 5GiB or an integer number of bytes")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE_RE.match(value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {value!r}: use e.g. 64KiB, 5GiB, 1TiB or a byte count")
    try:
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    except OverflowError:  # hundreds of digits: float() gives inf
        raise ValueError(f"invalid size {value!r}: too large") from None


def parse_duration(value: str | int | float) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(f"invalid duration {value!r}: use e.g. 90s, 15m, 24h or 7d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact unit form, e.g. 604800 -> "7d" (used for ``expiresIn``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
