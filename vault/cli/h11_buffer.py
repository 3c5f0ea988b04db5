"""h11's receive buffer, with request bodies passed on without copying them.

h11 appends every socket read to one ``bytearray`` and hands a body piece out as a slice of it:
for each body byte one copy in, two out (``maybe_extract_at_most`` slices twice), and Hypercorn
makes ``bytes`` of the piece for the ASGI message, a fourth. On a chunk upload those copies (and
the fresh memory each one touches) cost about as much CPU as hashing the bytes twice.

``FastReceiveBuffer`` keeps a socket read that arrives while the buffer is empty as the ``bytes``
object it is, and when the parser asks for body bytes returns it whole: no copy here, and
Hypercorn's ``bytes(...)`` of a ``bytes`` object is that object. Everything else (headers, chunked
framing, a read that holds the end of one request and the start of the next) goes through h11's
own code on its ``bytearray``, as before. ``install`` puts it in place of h11's class for the
connections Hypercorn makes; the class is checked against the methods it overrides, so an h11
that changed them keeps its own buffer.
"""

from __future__ import annotations

import logging

from h11 import _connection as h11_connection
from h11._receivebuffer import ReceiveBuffer

log = logging.getLogger(__name__)

# The methods h11 0.14-0.16 calls on its receive buffer (and this class has reviewed).
_KNOWN = frozenset(
    {
        "__iadd__",
        "__bool__",
        "__len__",
        "__bytes__",
        "_extract",
        "maybe_extract_at_most",
        "maybe_extract_next_line",
        "maybe_extract_lines",
        "is_next_line_obviously_invalid_request_line",
    }
)


class FastReceiveBuffer(ReceiveBuffer):
    def __init__(self) -> None:
        super().__init__()
        # A whole socket read not yet copied into ``_data`` (only ever while ``_data`` is empty).
        self._whole: bytes | None = None

    def _settle(self) -> None:
        """Move a held read into h11's own buffer, before any of h11's own methods runs."""
        if self._whole is not None:
            self._data += self._whole
            self._whole = None

    def __iadd__(self, byteslike: bytes | bytearray) -> FastReceiveBuffer:
        if self._whole is None and not self._data and type(byteslike) is bytes:
            self._whole = byteslike
        else:
            self._settle()
            self._data += byteslike
        return self

    def __len__(self) -> int:
        return len(self._data) + (len(self._whole) if self._whole is not None else 0)

    def __bool__(self) -> bool:
        return bool(len(self))

    def __bytes__(self) -> bytes:
        self._settle()
        return super().__bytes__()

    def _extract(self, count: int) -> bytearray:
        self._settle()
        return super()._extract(count)

    def maybe_extract_at_most(self, count: int) -> bytes | bytearray | None:  # type: ignore[override]
        whole = self._whole
        if whole is not None and len(whole) <= count:
            # The body piece is the read itself (h11 asks for at most what is left of the body).
            self._whole = None
            self._next_line_search = 0
            self._multiple_lines_search = 0
            return whole
        self._settle()
        if not self._data:
            return None
        return self._extract(count)  # one copy (h11's own made two)

    def maybe_extract_next_line(self) -> bytearray | None:
        self._settle()
        return super().maybe_extract_next_line()

    def maybe_extract_lines(self) -> list[bytearray] | None:
        self._settle()
        return super().maybe_extract_lines()

    def is_next_line_obviously_invalid_request_line(self) -> bool:
        self._settle()
        return super().is_next_line_obviously_invalid_request_line()


def _compatible() -> bool:
    if getattr(h11_connection, "ReceiveBuffer", None) not in (ReceiveBuffer, FastReceiveBuffer):
        return False
    methods = {name for name, value in vars(ReceiveBuffer).items() if callable(value) and name != "__init__"}
    return methods <= _KNOWN and set(dir(ReceiveBuffer)) >= _KNOWN


def install() -> bool:
    """Make h11 connections use ``FastReceiveBuffer``; ``False`` (and h11's own) when this h11
    has a receive buffer this class does not know."""
    if not _compatible():
        log.warning("h11's receive buffer is not the one this node knows; request bodies are copied as before")
        return False
    h11_connection.ReceiveBuffer = FastReceiveBuffer  # type: ignore[attr-defined,misc]
    return True
