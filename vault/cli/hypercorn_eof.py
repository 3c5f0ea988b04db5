"""Connections close when nothing more can come of them: when the client closed its side, and at
shutdown when they are between requests.

In Hypercorn's trio worker (0.18), when a client closes a kept-alive connection between requests
(seen after answers without a body: tus's 201 and 204), the read loop ends but the connection's
task group still holds the keep-alive timer, and the socket is closed only when that timer fires
(``keep_alive_timeout``, 75 s here). Every client that drops its idle connections (httpx after
5 s, OkHttp after 5 min) left a socket in CLOSE_WAIT and a file descriptor held for up to 75 s:
under a burst of reconnecting phones a descriptor leak, and whoever waited for the connections to
go (graceful stop, the memory tests on a slow disk) waited for the timer. And a graceful stop
closes idle connections only through that timer, which a fast answer often leaves stopped: one
kept-alive client held every SIGTERM for the whole ``shutdown_grace`` (5.2 s of a 5 s grace,
now 0.3 s).

``install`` wraps ``TCPServer._read_data``: once reading has ended (end of stream, reset, read
timeout) the timer is stopped and the connection closes as soon as whatever it was doing is done;
and at shutdown a connection is closed as soon as it is not answering a request. A Hypercorn
without the methods this relies on is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.trio import tcp_server

log = logging.getLogger(__name__)

_MARK = "_vault_stops_idle_timer"
# How often a connection answering a request is looked at while the node stops.
_SHUTDOWN_POLL = 0.05


def install() -> bool:
    """Put the wrapper in place (once); ``False`` when this Hypercorn's trio server differs."""
    server = tcp_server.TCPServer
    original: Callable[[Any], Awaitable[None]] | None = getattr(server, "_read_data", None)
    if original is None or not hasattr(server, "_idle_timeout") or not hasattr(server, "_initiate_server_close"):
        log.warning("Hypercorn's trio server is not the one this node knows; closed connections linger")
        return False
    if getattr(original, _MARK, False):
        return True

    async def _read_data(self: Any) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_close_when_done_at_shutdown, self, nursery.cancel_scope)
                await original(self)
                nursery.cancel_scope.cancel()
        finally:
            # Nothing more can be read: the keep-alive timer has nothing left to wait for.
            # (Outside the nursery: inside its cancelled scope this would not run.)
            await self.idle_task.stop()

    setattr(_read_data, _MARK, True)
    server._read_data = _read_data  # type: ignore[method-assign]
    return True


async def _close_when_done_at_shutdown(server: Any, reading: trio.CancelScope) -> None:
    """At shutdown, close the connection once it is not answering a request (at once if it is
    between requests), and stop its read loop. Hypercorn leaves the idle case to the keep-alive
    timer, which a fast answer often leaves stopped (its stop and restart race); and when a client
    had sent its next request while the last answer went out, the read loop waits for a resume
    that never comes once the node is stopping. Either held a graceful stop for its whole grace."""
    await server.context.terminated.wait()
    protocol: Any = getattr(getattr(server, "protocol", None), "protocol", None)
    if getattr(protocol, "connection", None) is None:
        return  # not HTTP/1.1
    # A request is being answered: let it finish (Hypercorn's state, with no event to wait on).
    while protocol.stream is not None:  # noqa: ASYNC110
        await trio.sleep(_SHUTDOWN_POLL)
    with trio.CancelScope(shield=True):
        await server._initiate_server_close()
    reading.cancel()
