"""Connections close when nothing more can come of them: after their keep-alive time, when the
client closed its side, and at shutdown once they are not answering a request.

Hypercorn's trio worker (0.18) closes an idle kept-alive connection with a keep-alive timer that
each answer restarts, and writes an answer with no time limit; five ways it failed, each fixed
here (``install``):

- The timer is restarted from the task that sent the answer, and Quart cancels that task as the
  answer ends: the restart was cancelled, so after any Quart answer (every JSON route) the
  connection had no timer at all. It stayed open until the 330 s read timeout, and a client that
  trickles a byte of its next request head now and then held it (and a file descriptor) for ever:
  the slowloris attack. The timer's start and stop now run shielded.
- When a client closed a kept-alive connection between requests, the read loop ended but the
  connection was only closed when the timer fired: a socket in CLOSE_WAIT and a descriptor held
  for up to the keep-alive time after each phone dropped a connection (httpx drops idle ones
  after 5 s). Once reading has ended, the timer is stopped and the connection closes.
- At shutdown, a client that had sent its next request as the last answer went out left the read
  loop waiting for a resume that never comes once the node is stopping, and a stop sat out its
  whole ``shutdown_grace`` (5.2 s of a 5 s grace under load; now 0.4 s). A connection is closed
  as soon as it is not answering a request.
- The timer (woken by its time or by the shutdown) closed the connection whatever it was doing:
  in the moment between a request head being parsed and Hypercorn setting up its stream, that
  cut a chunk PUT off mid-body and left its handler waiting for the rest until the grace ran out
  (1 graceful stop in 3 under load). It now closes only a connection between requests.
- A write of answer bytes waited, shielded, for as long as the client took nothing: one stalled
  downloader held its connection and transfer slot for ever and no graceful stop ended (20 s and
  counting with a 3 s grace). A write now gives up when the client takes nothing for
  ``[server] send_timeout``, and when the shutdown grace runs out.

A Hypercorn without the methods this relies on is left as it is (with a warning).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio import tcp_server

from vault.config import ServerConfig

log = logging.getLogger(__name__)

_MARK = "_vault_closes_connections"
# How often a connection answering a request is looked at while the node stops.
_SHUTDOWN_POLL = 0.05
# How long telling a stopped connection's request that it is gone may take (one ASGI message).
_CLOSE_NOTICE = 1.0
# h11's states of the node's side in which no answer is under way.
_NOT_ANSWERING = frozenset({h11.IDLE, h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR})
# Over TLS (no socket to watch for progress), answer bytes written at a time, each within the
# send timeout.
_TLS_SLICE = 256 * 1024


def install() -> bool:
    """Put the wrappers in place (once); ``False`` when this Hypercorn's trio server differs."""
    server = tcp_server.TCPServer
    original: Callable[[Any], Awaitable[None]] | None = getattr(server, "_read_data", None)
    send: Callable[[Any, Any], Awaitable[None]] | None = getattr(server, "protocol_send", None)
    needed = ("_idle_timeout", "_initiate_server_close")
    if original is None or send is None or not all(hasattr(server, name) for name in needed):
        log.warning("Hypercorn's trio server is not the one this node knows; closed connections linger")
        return False
    if getattr(original, _MARK, False):
        return True

    async def _read_data(self: Any) -> None:
        ended = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_close_when_done_at_shutdown, self, nursery.cancel_scope)
                await original(self)
                ended = True
                nursery.cancel_scope.cancel()
        finally:
            if not ended:
                await _tell_streams_closed(self)
            # Nothing more can be read: the keep-alive timer has nothing left to wait for.
            # (Outside the nursery: inside its cancelled scope this would not run.)
            await self.idle_task.stop()

    async def protocol_send(self: Any, event: Any) -> None:
        if isinstance(event, Updated):
            # Starts or stops the keep-alive timer: must happen even when the task that answered
            # is being cancelled as its answer ends (Quart's are).
            with trio.CancelScope(shield=True):
                await send(self, event)
        elif isinstance(event, RawData):
            await _send_raw(self, event.data)
        else:
            await send(self, event)

    setattr(_read_data, _MARK, True)
    server._read_data = _read_data  # type: ignore[method-assign]
    server.protocol_send = protocol_send  # type: ignore[method-assign]
    server._idle_timeout = _idle_timeout  # type: ignore[method-assign,assignment]
    return True


def set_send_timeout(hc: Any, seconds: float) -> None:
    """How long one write may wait for a client that takes nothing (``[server] send_timeout``),
    kept on Hypercorn's config, which every connection has."""
    hc.vault_send_timeout = seconds


def send_timeout(hc: Any) -> float:
    """The configured one, or the config's default for a Hypercorn config made elsewhere."""
    configured = getattr(hc, "vault_send_timeout", None)
    return float(configured if configured is not None else ServerConfig().send_timeout)


async def _send_raw(server: Any, data: bytes) -> None:
    """Hypercorn's write of answer bytes: shielded as Hypercorn has it (a task being cancelled
    must not leave half a frame on the wire), but bounded. Hypercorn's waited for ever: a client
    that stops reading (a zero receive window) held its connection, its transfer slot and the
    node's graceful stop for as long as it liked. A write whose client takes nothing for
    ``send_timeout``, or that the end of the shutdown grace interrupts, closes the connection."""
    timeout = send_timeout(server.config)
    view = memoryview(data)
    async with server.send_lock:
        try:
            with trio.CancelScope(shield=True) as scope:
                server.vault_send_scope = scope
                await _write(server.stream, view, scope, timeout)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await server.protocol.handle(Closed())
            return
        finally:
            server.vault_send_scope = None
        if scope.cancelled_caught:
            log.info("closing a connection: its client took no answer bytes in time, or the node is stopping")
            with trio.CancelScope(shield=True):
                await server.stream.aclose()
            await server.protocol.handle(Closed())


async def _write(stream: Any, view: memoryview, scope: trio.CancelScope, idle: float) -> None:
    """``stream.send_all(view)``, with ``scope``'s deadline moved on whenever the client takes
    bytes: a slow client that keeps reading is never cut off, one that took nothing for
    ``idle`` seconds is. On a plain socket this is trio's own loop (a ``send`` whenever the kernel
    has room); a TLS stream has no socket to watch, so it goes a slice at a time."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        for start in range(0, len(view), _TLS_SLICE):
            scope.deadline = trio.current_time() + idle
            await stream.send_all(view[start : start + _TLS_SLICE])
        return
    sent = 0
    while sent < len(view):
        scope.deadline = trio.current_time() + idle
        try:
            sent += await sock.send(view[sent:])
        except OSError as exc:  # what SocketStream.send_all makes of it
            raise trio.BrokenResourceError from exc


def _http11(server: Any) -> Any:
    """The connection's HTTP/1.1 protocol (h11 underneath), or None (HTTP/2, not set up yet)."""
    protocol = getattr(getattr(server, "protocol", None), "protocol", None)
    return protocol if getattr(protocol, "connection", None) is not None else None


def _between_requests(protocol: Any) -> bool:
    """No request is being answered: none has arrived whole since the last answer (a head may be
    arriving), or the last answer is complete. h11 says ``SEND_RESPONSE`` from the moment a
    request head is parsed, before Hypercorn has set up the request's stream."""
    return protocol.stream is None and protocol.connection.our_state in _NOT_ANSWERING


async def _idle_timeout(server: Any) -> None:
    """Hypercorn's keep-alive timer, which closes only a connection that is between requests: its
    start (by the task that sent an answer) and its stop (by the next request) race, and a timer
    left running during a request cut that request off when it fired (or at shutdown). If a
    request is under way it does nothing; that request's answer starts the timer again."""
    with trio.move_on_after(server.config.keep_alive_timeout):
        await server.context.terminated.wait()
    protocol = _http11(server)
    if protocol is not None and not _between_requests(protocol):
        return
    with trio.CancelScope(shield=True):
        await server._initiate_server_close()


async def _tell_streams_closed(server: Any) -> None:
    """What Hypercorn's read loop does as it ends, for a loop that was stopped instead: tell the
    protocol the connection is gone, so that a request that began after all closes (its handler
    hears ``http.disconnect`` and is cancelled) rather than waiting for a body that cannot come.

    The shutdown closes a connection it finds between requests, and Hypercorn may still parse a
    next request that h11 held in its buffer (a client sends it as the last answer goes out):
    the task that resumes after that answer runs before the read loop is stopped. That request's
    handler then waited for the rest of its body until ``shutdown_grace`` ran out (about 1 stop
    in 50 under load). Shielded, so that it happens when the grace has run out too, and bounded,
    since it hands a message to the app."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLOSE_NOTICE):
        await server.protocol.handle(Closed())


async def _close_when_done_at_shutdown(server: Any, reading: trio.CancelScope) -> None:
    """At shutdown, close the connection once it is not answering a request (at once if it is
    between requests), and stop its read loop: when a client had sent its next request while the
    last answer went out, the read loop waits for a resume that never comes once the node is
    stopping, and that held a graceful stop for its whole grace."""
    await server.context.terminated.wait()
    protocol = _http11(server)
    if protocol is None:
        return
    # A request is being answered: let it finish (Hypercorn's state, with no event to wait on).
    try:
        while not _between_requests(protocol):  # noqa: ASYNC110
            await trio.sleep(_SHUTDOWN_POLL)
    except trio.Cancelled:
        # The grace is over (Hypercorn cancels what is left). A write waiting on a client that
        # takes nothing is shielded from that: end it too, or the node never stops.
        scope = getattr(server, "vault_send_scope", None)
        if scope is not None:
            scope.cancel()
        raise
    with trio.CancelScope(shield=True):
        await server._initiate_server_close()
    reading.cancel()
