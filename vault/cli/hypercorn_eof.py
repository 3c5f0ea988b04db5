"""A connection the client closed is closed by the node at once, not when keep-alive runs out.

In Hypercorn's trio worker (0.18), when a client closes a kept-alive connection between requests
(seen after answers without a body: tus's 201 and 204), the read loop ends but the connection's
task group still holds the keep-alive timer, and the socket is closed only when that timer fires
(``keep_alive_timeout``, 75 s here). Every client that drops its idle connections (httpx after
5 s, OkHttp after 5 min) left a socket in CLOSE_WAIT and a file descriptor held for up to 75 s:
under a burst of reconnecting phones a descriptor leak, and whoever waited for the connections to
go (graceful stop, the memory tests on a slow disk) waited for the timer. ``install`` wraps
``TCPServer._read_data`` so that once reading has ended (end of stream, reset, read timeout) the
timer is stopped and the connection closes as soon as whatever it was doing is done. A Hypercorn
without the methods this relies on is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.trio import tcp_server

log = logging.getLogger(__name__)

_MARK = "_vault_stops_idle_timer"


def install() -> bool:
    """Put the wrapper in place (once); ``False`` when this Hypercorn's trio server differs."""
    server = tcp_server.TCPServer
    original: Callable[[Any], Awaitable[None]] | None = getattr(server, "_read_data", None)
    if original is None or not hasattr(server, "_idle_timeout"):
        log.warning("Hypercorn's trio server is not the one this node knows; closed connections linger")
        return False
    if getattr(original, _MARK, False):
        return True

    async def _read_data(self: Any) -> None:
        try:
            await original(self)
        finally:
            # Nothing more can be read: the keep-alive timer has nothing left to wait for.
            await self.idle_task.stop()

    setattr(_read_data, _MARK, True)
    server._read_data = _read_data  # type: ignore[method-assign]
    return True
