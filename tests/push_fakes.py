"""What the push-service fakes share: a local Hypercorn server (plain or TLS), ASGI plumbing, a clock.

Each fake is a tiny ASGI app speaking one real service's documented wire format; it runs in the
test's own Trio run on 127.0.0.1 with an ephemeral port and is cancelled when the test ends.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trustme
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = tuple[int, Mapping[str, str], bytes]  # status, headers, body
Handler = Callable[[Scope, bytes], Awaitable[Reply]]

START = 1_700_000_000.0


class WallClock:
    """An injectable wall clock that moves only when the test says: token ages without sleeping."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def asgi(handler: Handler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app that reads each request's whole body and answers what ``handler`` returns."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status, headers, content = await handler(scope, body)
        raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})

    return app


def request_headers(scope: Scope) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in scope["headers"]}


@asynccontextmanager
async def serving(
    handler: Handler,
    *,
    tls: trustme.CA | None = None,
    cert_dir: Path | None = None,
    alpn: list[str] | None = None,
) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1 and yield its URL.

    With ``tls``, over TLS with a certificate that CA issued, offering ``alpn`` (h2 and http/1.1
    unless told otherwise) the way APNs negotiates HTTP/2.
    """
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    if tls is not None:
        assert cert_dir is not None, "TLS needs a directory for the certificate files"
        pem = cert_dir / "server.pem"
        tls.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
        config.certfile = config.keyfile = str(pem)
        if alpn is not None:
            config.alpn_protocols = alpn
    async with trio.open_nursery() as nursery:
        bound: list[str] = await nursery.start(partial(serve, asgi(handler), config))  # type: ignore[arg-type]
        try:
            yield bound[0]
        finally:
            nursery.cancel_scope.cancel()  # at once, even with a request still hanging


def refused_url(scheme: str = "http") -> str:
    """A loopback URL where nothing listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"
