"""Parsing numbers that clients send in headers, paths and query strings (pure), in one place.

Only ASCII digits count: ``str.isdigit`` also accepts "²" or "٣", which ``int`` then refuses or
reads as something the client never meant. Very long numbers are refused (or, where a protocol
says to, clamped by the caller) before ``int`` sees them: Python refuses to convert more than a
few thousand digits, and no size or offset here needs more than 20.
"""

from __future__ import annotations

MAX_DIGITS = 20  # enough for any 64-bit count or offset


def is_ascii_digits(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def ascii_int(text: str, *, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a non-negative integer, or ``None`` unless it is 1..``max_digits`` ASCII digits."""
    if not is_ascii_digits(text) or len(text) > max_digits:
        return None
    return int(text)
