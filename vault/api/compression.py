"""gzip for the node's own JSON bodies, applied where they are made (never to file downloads)."""

from __future__ import annotations

import gzip

from quart import Response, request

# JSON bodies smaller than this are sent as they are: gzip would not pay for its header.
_COMPRESS_MIN = 1024


def json_bytes_response(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response, gzipped when the client accepts it and the body is worth it."""
    response = Response(data, status=status, headers=headers, content_type="application/json")
    response.vary.add("Accept-Encoding")
    if len(data) >= _COMPRESS_MIN and "gzip" in _accepted_encodings(request.headers.get("Accept-Encoding", "")):
        response.set_data(gzip.compress(data, compresslevel=5, mtime=0))
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
