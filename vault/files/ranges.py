"""HTTP ``Range`` parsing and mapping byte ranges onto a file's chunks (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from vault.files.records import ChunkRef
from vault.numbers import MAX_DIGITS, is_ascii_digits


class Unsatisfiable(Exception):
    """The range lies outside the file (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` / ``a-`` / ``-n`` range as inclusive (start, end).

    ``None`` means "send the whole file": no header, another unit, several ranges, or a malformed
    header (RFC 9110 lets a server ignore those). ``Unsatisfiable`` for a range past the end.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if (first and not is_ascii_digits(first)) or (last and not is_ascii_digits(last)):
        return None
    if first == "":
        if not last:
            return None
        # A suffix longer than any file is the whole file (clamped before int() sees it).
        suffix = size if len(last) > MAX_DIGITS else int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    if len(first) > MAX_DIGITS:
        raise Unsatisfiable()  # starts past the end of any file
    start = int(first)
    end = size - 1 if not last or len(last) > MAX_DIGITS else int(last)
    if last and len(last) <= MAX_DIGITS and end < start:
        return None
    if start >= size:
        raise Unsatisfiable()
    return start, min(end, size - 1)


def slices(chunks: Sequence[ChunkRef], start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """For an inclusive byte range: (chunk position, offset within chunk, bytes to take)."""
    offset = 0
    for position, chunk in enumerate(chunks):
        chunk_end = offset + chunk.size - 1
        if chunk_end >= start and offset <= end:
            lo = max(start, offset) - offset
            hi = min(end, chunk_end) - offset
            yield position, lo, hi - lo + 1
        if offset > end:
            return
        offset += chunk.size
