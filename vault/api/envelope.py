"""The API's JSON envelope: ``{"success": true, "data": ...}`` and the error form, in one place."""

from __future__ import annotations

import re
import secrets
from typing import Any, TypeVar

import msgspec
from quart import Response, g, request

from vault import errors
from vault.api.compression import json_bytes_response
from vault.api.error_mapping import error_parts
from vault.api.json_codec import encode_json

S = TypeVar("S")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def choose_request_id(incoming: str | None) -> str:
    """Echo a well-formed client id (≤128 of ``[A-Za-z0-9._-]``), otherwise make one."""
    if incoming and _REQUEST_ID_RE.match(incoming):
        return incoming
    return "req_" + secrets.token_hex(12)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_bytes_response(encode_json(body), status, headers)


def success_body(data: Any = None, **top: Any) -> dict[str, Any]:
    """``{"success": true, "data": data}``; ``top`` fields go beside ``data`` (or replace it when
    ``data`` is None, as ``register``/``refresh`` answer)."""
    body: dict[str, Any] = {"success": True}
    if data is not None:
        body["data"] = data
    body.update(top)
    return body


def ok(data: Any = None, status: int = 200, **top: Any) -> Response:
    """A success response (small bodies; the router sends route results, of any size)."""
    return json_response(success_body(data, **top), status)


def error_response(exc: errors.VaultError, request_id: str) -> Response:
    status, body, headers = error_parts(exc, request_id)
    return json_bytes_response(body, status, dict(headers))


def current_request_id() -> str:
    rid = getattr(g, "request_id", None)
    if rid is None:
        rid = choose_request_id(request.headers.get("X-Request-Id"))
        g.request_id = rid
    return str(rid)


def describe_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> tuple[str, dict[str, Any]]:
    text = str(exc)
    match = re.search(r" - at `\$\.?([^`]*)`$", text)
    message = text[: match.start()] if match else text
    details: dict[str, Any] = {}
    if match and match.group(1):
        details["field"] = match.group(1)
    unknown = re.search(r"unknown field `([^`]*)`", text)
    missing = re.search(r"missing required field `([^`]*)`", text)
    if unknown or missing:
        name = (unknown or missing).group(1)  # type: ignore[union-attr]
        details["field"] = f"{details['field']}.{name}" if "field" in details else name
    return message, details


def decode(raw: bytes, kind: type[S]) -> S:
    """Decode a JSON body into ``kind``; any problem is a ``VALIDATION_ERROR`` naming the field."""
    if not raw.strip():
        raise errors.ValidationError("request body must be a JSON object")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        message, details = describe_error(exc)
        raise errors.ValidationError(message, details=details or None) from None
    except msgspec.DecodeError:
        raise errors.ValidationError("request body is not valid JSON") from None


async def body_as(kind: type[S]) -> S:
    """The current request's JSON body decoded into ``kind`` (size-limited by the app)."""
    raw = await request.get_data(cache=False, as_text=False)
    assert isinstance(raw, bytes)
    return decode(raw, kind)
