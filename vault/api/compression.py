"""gzip for the node's own JSON bodies, applied where they are made (never to file downloads).

Compressing a large listing takes milliseconds: above ``OFFLOAD_ABOVE`` it runs in a worker
thread (``vault.offload``), so the event loop keeps serving while it does.
"""

from __future__ import annotations

import gzip

from quart import Response, request

from vault.offload import Offload

# JSON bodies smaller than this are sent as they are: gzip would not pay for its header.
_COMPRESS_MIN = 1024
OFFLOAD_ABOVE = 64 * 1024


def json_bytes_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response, gzipped (inline: callers pass small bodies) when the client accepts it."""
    if _wants_gzip(data):
        return _response(_gzip(data), status, headers, compressed=True)
    return _response(data, status, headers, compressed=False)


async def json_bytes_response_offloaded(
    data: bytes, offload: Offload, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The same for a body of any size: large ones are compressed in a worker thread."""
    if not _wants_gzip(data):
        return _response(data, status, headers, compressed=False)
    packed = await offload.run(_gzip, data) if len(data) > OFFLOAD_ABOVE else _gzip(data)
    return _response(packed, status, headers, compressed=True)


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5, mtime=0)


def _wants_gzip(data: bytes) -> bool:
    return len(data) >= _COMPRESS_MIN and "gzip" in _accepted_encodings(request.headers.get("Accept-Encoding", ""))


def _response(data: bytes, status: int, headers: dict[str, str] | None, *, compressed: bool) -> Response:
    response = Response(data, status=status, headers=headers, content_type="application/json")
    response.vary.add("Accept-Encoding")
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
    return response


def _accepted_encodings(header: str) -> set[str]:
    accepted: set[str] = set()
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if token and quality > 0:
            accepted.add(token.strip().lower())
    if "*" in accepted:
        accepted.add("gzip")
    return accepted
