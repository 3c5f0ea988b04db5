"""Talking to a node: one ``httpx.AsyncClient``, the node's envelopes in and out, typed by the
generated endpoint table, retried with backoff, with the bearer token refreshed when it expires."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from vault_client import wire
from vault_client.errors import AuthError, NodeError, node_error
from vault_client.ratelimit import RateLimit
from vault_client.retry import RetryPolicy, retrying

T = TypeVar("T")
SLICE = 1024 * 1024  # bytes per body piece when nothing limits the rate
PACED_SLICE = 64 * 1024  # ... and when ``--limit-rate`` does, so several streams share it smoothly


class Envelope(msgspec.Struct, Generic[T]):
    data: T


class TokenSource(Protocol):
    """Where the session gets its bearer token, and a new one when the node says it expired."""

    async def access_token(self) -> str: ...

    async def renew(self, rejected: str) -> str: ...


class Session:
    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.rate_limit = rate_limit
        self.tokens: TokenSource | None = None
        # Long polls hold a request for up to 300 s: reads get their own generous timeout per call.
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._decoders: dict[type, msgspec.json.Decoder[Any]] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- JSON calls -----------------------------------------------------------------------------

    async def call(
        self,
        endpoint: wire.Endpoint,
        body: msgspec.Struct | None = None,
        *,
        path: dict[str, str | int] | None = None,
        query: msgspec.Struct | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send ``body`` to ``endpoint`` and answer the decoded ``answer`` struct."""
        url = expand(endpoint.path, path)
        content = None if body is None else msgspec.json.encode(body)
        params = _params(query)
        extra = {"Content-Type": "application/json"} if content is not None else {}
        extra.update(headers or {})

        async def send(auth_headers: dict[str, str]) -> Any:
            response = await self.http.request(
                endpoint.method,
                url,
                content=content,
                params=params,
                headers={**extra, **auth_headers},
                timeout=read_timeout if read_timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            return self.decode(endpoint, response)

        return await self.authorized(endpoint.auth, send, retry)

    async def authorized(
        self,
        auth: bool,
        send: Callable[[dict[str, str]], Any],
        retry: RetryPolicy | None = None,
    ) -> Any:
        """``send(headers)`` with the bearer token, retried; an expired token is renewed once."""
        renewed = False
        while True:
            token = await self.tokens.access_token() if auth and self.tokens is not None else None
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                return await retrying(lambda headers=headers: send(headers), retry or self.retry)  # type: ignore[misc]
            except AuthError as exc:
                if token is None or renewed or exc.code not in ("TOKEN_EXPIRED", "UNAUTHORIZED"):
                    raise
                assert self.tokens is not None
                await self.tokens.renew(token)
                renewed = True

    def decode(self, endpoint: wire.Endpoint, response: httpx.Response) -> Any:
        raise_for_error(response)
        if endpoint.answer is None:
            return response
        kind = Envelope[endpoint.answer] if endpoint.envelope else endpoint.answer  # type: ignore[name-defined]
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = msgspec.json.Decoder(kind)
        decoded = decoder.decode(response.content)
        return decoded.data if endpoint.envelope else decoded

    # -- raw bodies -----------------------------------------------------------------------------

    def body(self, data: bytes | memoryview, on_bytes: Callable[[int], None] | None) -> AsyncIterator[bytes]:
        """``data`` as an async stream, paced by the rate limit, reporting bytes as they go."""
        view = memoryview(data)
        limit = self.rate_limit
        step = PACED_SLICE if limit is not None else SLICE

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(view), step):
                piece = view[start : start + step]
                if limit is not None:
                    await limit.take(len(piece))
                yield bytes(piece)
                if on_bytes is not None:
                    on_bytes(len(piece))

        return pieces()

    @asynccontextmanager
    async def stream(self, method: str, url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        """A streamed response (errors raised after reading their small body)."""
        async with self.http.stream(method, url, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for_error(response)
            yield response


def expand(template: str, values: dict[str, str | int] | None) -> str:
    path = template
    for name, value in (values or {}).items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return path


def _params(query: msgspec.Struct | None) -> dict[str, str] | None:
    if query is None:
        return None
    raw = msgspec.to_builtins(query)
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items() if v is not None}


class _ErrorBody(msgspec.Struct):
    error: wire.ErrorDetail


def raise_for_error(response: httpx.Response) -> None:
    """Raise the node's error for a failed answer (also for a proxy's non-JSON one)."""
    if response.status_code < 400:
        return
    retry_after = _retry_after(response.headers.get("retry-after"))
    try:
        detail = msgspec.json.decode(response.content, type=_ErrorBody).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = response.text[:200].strip() if response.content else response.reason_phrase
        raise NodeError(
            f"HTTP_{response.status_code}", text, status=response.status_code, retry_after=retry_after
        ) from None
    raise node_error(
        detail.code,
        detail.message,
        status=response.status_code,
        request_id=detail.request_id,
        details=detail.details,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
