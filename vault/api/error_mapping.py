"""The one place where an exception becomes an error response.

Quart routes, the raw streaming routes and tus all answer errors through ``error_parts``; only the
status may differ where tus 1.0 defines its own (460 for a checksum mismatch, 409 for an offset
mismatch). Anything that is not a ``VaultError`` is logged with its traceback and answered as a
bare ``INTERNAL_ERROR`` carrying only the request id: no stack traces, paths or LMDB internals
ever reach a client.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from werkzeug.exceptions import HTTPException

from vault import errors
from vault.api.json_codec import encode_json
from vault.chunks import StorageRefused, StorageUnavailable

log = logging.getLogger("vault.api")


def as_vault_error(
    exc: BaseException, *, request_id: str, where: str, body_limit: int | None = None
) -> errors.VaultError:
    """The client-facing error for ``exc``; unexpected ones are logged here, once."""
    if isinstance(exc, errors.VaultError):
        return exc
    if isinstance(exc, HTTPException):
        return _from_http(exc, body_limit)
    if _disk_full(exc):
        log.error("storage full in %s: %s", where, exc, extra={"request_id": request_id})
        return errors.InsufficientStorage()
    storage = _cause(exc, (StorageUnavailable, StorageRefused))
    if storage is not None:
        # The chunk store (an object store, say) cannot be reached or refuses us: nothing was
        # stored or served, and the client retries later. The message is the backend's own one
        # line (never a secret); the client gets only the generic text.
        log.error("chunk storage unavailable in %s: %s", where, storage, extra={"request_id": request_id})
        return errors.ServiceUnavailable(
            "The node's chunk storage is unavailable; try again shortly", headers={"Retry-After": "5"}
        )
    log.error("unhandled error in %s", where, exc_info=exc, extra={"request_id": request_id})
    return errors.InternalError()


def _cause(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first of ``exc`` and its causes (at most ten deep) that is one of ``kinds``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _disk_full(exc: BaseException) -> bool:
    """An OSError for a full disk or quota, however deep in a chain of causes it sits."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _from_http(exc: HTTPException, body_limit: int | None) -> errors.VaultError:
    """Quart/werkzeug's own HTTP errors (no route, wrong method, body too large or too slow)."""
    code = exc.code or 500
    if code == 404:
        return errors.NotFound("No such endpoint")
    if code == 405:
        allow = dict(exc.get_headers()).get("Allow")
        return errors.MethodNotAllowed(headers={"Allow": allow} if allow else None)
    if code == 413:
        return errors.PayloadTooLarge("Request body too large", details={"limit": body_limit} if body_limit else None)
    if code == 408:
        return errors.BodyStalled()
    if 400 <= code < 500:
        return errors.ValidationError(exc.description or "Bad request")
    return errors.InternalError()


def error_body(exc: errors.VaultError, request_id: str) -> dict[str, Any]:
    """The envelope ``{"success": false, "error": {code, message, requestId, details?}}``."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, "requestId": request_id}
    # An internal error carries only what a client can act on: the id to quote in a bug report.
    if exc.details and not isinstance(exc, errors.InternalError):
        error["details"] = exc.details
    return {"success": False, "error": error}


def error_parts(
    exc: errors.VaultError, request_id: str, *, status: int | None = None
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """(status, JSON body, extra headers such as Retry-After) for ``exc``; ``status`` overrides
    where a protocol says so."""
    return status or exc.status, encode_json(error_body(exc, request_id)), list(exc.headers.items())
