"""Bare ASGI routes for streamed request bodies (chunk PUT, tus PATCH, one-request upload).

Quart's request body buffers without backpressure when the handler is slower than the client
(PERFORMANCE.md: RSS 88 -> 658 MB in a stall test). These routes read Hypercorn's bounded receive
queue directly, one piece at a time, so the server reads the next piece only after the previous
one was handled and memory stays flat. They share the request id, metrics and error envelope
with the Quart routes.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import trio

from vault import errors
from vault.api.envelope import choose_request_id, describe_error
from vault.api.error_mapping import as_vault_error, error_parts
from vault.api.json_codec import encode_json
from vault.api.origin import public_origin
from vault.api.request_log import CLIENT_GONE, log_request
from vault.numbers import ascii_int

if TYPE_CHECKING:
    from vault.node import Node

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Q = TypeVar("Q")

# A rejected body up to this size is read and dropped so the connection can serve the next
# request; a larger one is not worth receiving: the answer says ``Connection: close`` instead.
_DRAIN_LIMIT = 1024 * 1024
_DISCARD_SECONDS = 30.0
_DISCARD_IDLE = 2.0


class ClientDisconnected(Exception):
    """The client went away before its body was complete."""


class RawRequest:
    """A streamed request: headers, path parameters and the body as an async iterator."""

    def __init__(self, node: Node, scope: Scope, receive: Receive, params: dict[str, str]) -> None:
        self.node = node
        self.scope = scope
        self._receive = receive
        self.params = params
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        self.request_id = choose_request_id(self.headers.get("x-request-id"))
        self._body_done = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_as(self, kind: type[Q]) -> Q:
        """The query parameters decoded into ``kind`` (numbers from their text, as the Quart
        routes' ``query_as``); a parameter given twice, text that is not UTF-8 or any field the
        struct refuses is a ``VALIDATION_ERROR`` naming it."""
        raw: bytes = self.scope.get("query_string", b"")
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise errors.ValidationError("the query string must be percent-encoded UTF-8") from None
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise errors.ValidationError(f"query parameter {key} is given twice", details={"field": key})
            params[key] = value
        try:
            return msgspec.convert(params, kind, strict=False)
        except msgspec.ValidationError as exc:
            message, details = describe_error(exc)
            raise errors.ValidationError(message, details=details or None) from None

    @property
    def content_length(self) -> int | None:
        raw = self.header("content-length")
        if raw is None:
            return None
        length = ascii_int(raw.strip())
        if length is None:
            raise errors.ValidationError("Content-Length must be a non-negative integer")
        return length

    async def body(self, read_timeout: float | None = None) -> AsyncIterator[bytes]:
        """The body, piece by piece as Hypercorn hands it over. Each wait is limited
        (``server.body_read_timeout``) and so is the whole body (that plus its length at
        ``server.min_body_rate``), so a slow-loris client cannot hold the request forever."""
        server = self.node.config.server
        timeout = read_timeout if read_timeout is not None else float(server.body_read_timeout)
        length = self.content_length or 0
        deadline = trio.current_time() + timeout + length / max(1, int(server.min_body_rate))
        while not self._body_done:
            wait = min(timeout, deadline - trio.current_time())
            with trio.move_on_after(max(0.0, wait)) as scope:
                message = await self._receive()
            if scope.cancelled_caught:
                raise errors.BodyStalled(
                    f"request body stalled for more than {timeout:g}s"
                    if wait >= timeout
                    else "request body arrived too slowly"
                )
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            data = message.get("body", b"")
            self._body_done = not message.get("more_body", False)
            del message
            if data:
                self.node.metrics.body_received(len(data))
                yield data
            # Not held while the next piece is awaited: a client that stalls mid-body would
            # otherwise keep the last piece it sent in memory for as long as it stays connected.
            del data

    @property
    def origin(self) -> str:
        """Base for absolute URLs in answers (``[server] public_url`` or this request's origin)."""
        server = self.scope.get("server")
        return public_origin(
            self.node.config.server.public_url,
            self.scope.get("scheme", "http"),
            self.header("host"),
            tuple(server) if server else None,  # type: ignore[arg-type]
        )

    @property
    def body_unread(self) -> bool:
        """The request has a body that was not read to its end."""
        if self._body_done:
            return False
        chunked = "chunked" in (self.header("transfer-encoding") or "").lower()
        raw = self.header("content-length")
        return chunked or (raw is not None and raw.strip() not in ("", "0"))

    async def drain(self, limit: int = _DRAIN_LIMIT) -> None:
        """Read and drop a small leftover body so the connection can be reused."""
        seen = 0
        async for piece in self.body():
            seen += len(piece)
            if seen > limit:
                return


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def json_raw(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> RawResponse:
    return RawResponse(status, [("content-type", "application/json"), *headers], encode_json(body))


RawHandler = Callable[[RawRequest], Awaitable[RawResponse]]


class RawRoute:
    """A method + path pattern (``{name}`` segments) served outside Quart."""

    def __init__(self, methods: Iterable[str], pattern: str, handler: RawHandler, name: str) -> None:
        self.method_order = [m.upper() for m in methods]
        self.methods = set(self.method_order)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._regex = re.compile(f"^{regex}$")
        self.handler = handler
        self.name = name
        self.pattern = pattern

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() not in self.methods:
            return None
        found = self._regex.match(path)
        return None if found is None else found.groupdict()

    def matches_path(self, path: str) -> bool:
        return self._regex.match(path) is not None


async def serve_raw(
    node: Node, route: RawRoute, scope: Scope, receive: Receive, send: Send, params: dict[str, str]
) -> None:
    """Run a raw handler with the same envelope, request id, logging and metrics as Quart routes."""
    started = time.perf_counter()
    req = RawRequest(node, scope, receive, params)
    try:
        response = await route.handler(req)
    except ClientDisconnected:
        log_request(
            node.metrics,
            request_id=req.request_id,
            method=req.method,
            route=route.pattern,
            status=CLIENT_GONE,
            seconds=time.perf_counter() - started,
        )
        return
    except Exception as exc:
        error = as_vault_error(exc, request_id=req.request_id, where=f"{req.method} {route.pattern}")
        response = error_raw(error, req.request_id)
        declared = _declared_length(req)
        if req.body_unread and declared is not None and declared <= _DRAIN_LIMIT:
            # Read what is left of a small rejected body so the client, still sending, gets to read
            # the error and may reuse the connection.
            await _discard_body(req, 5)
    headers = [*response.headers, ("x-request-id", req.request_id)]
    unread = req.body_unread
    if unread:
        # The rest of the body would be read as the next request: never reuse this connection.
        headers.append(("connection", "close"))
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers.append(("content-length", str(len(response.body))))
    start = {
        "type": "http.response.start",
        "status": response.status,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }
    async with trio.open_nursery() as nursery:
        if unread:
            # Hypercorn cannot send the answer (nor close) while its queue of body pieces for the
            # app is full and the client still sending: take the rest of the body, and drop it,
            # while the answer goes out, for a while (the client stops once it reads the answer).
            nursery.start_soon(_discard_body, req, _DISCARD_SECONDS)
        await send(start)
        await send({"type": "http.response.body", "body": response.body, "more_body": False})
    log_request(
        node.metrics,
        request_id=req.request_id,
        method=req.method,
        route=route.pattern,
        status=response.status,
        seconds=time.perf_counter() - started,
    )


async def _discard_body(req: RawRequest, seconds: float) -> None:
    """Read and drop the rest of the body for up to ``seconds``, or until it pauses for
    ``_DISCARD_IDLE`` (a client that stopped sending is waiting for the answer it has)."""
    with trio.move_on_after(seconds):
        try:
            async for _ in req.body(read_timeout=min(seconds, _DISCARD_IDLE)):
                pass
        except (errors.VaultError, ClientDisconnected):
            pass


def _declared_length(req: RawRequest) -> int | None:
    try:
        return req.content_length
    except errors.VaultError:
        return None


def error_raw(
    error: errors.VaultError, request_id: str, *, status: int | None = None, headers: Iterable[tuple[str, str]] = ()
) -> RawResponse:
    """The error envelope as a raw response (``status``/``headers``: a protocol's own, as tus's)."""
    code, body, extra = error_parts(error, request_id, status=status)
    return RawResponse(code, [("content-type", "application/json"), *headers, *extra], body)
