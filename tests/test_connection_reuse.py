"""After a refused body the kept-alive connection is never left silent: it is closed (the unread
rest of the body would otherwise be read as the next request), so the client reconnects."""

from __future__ import annotations

import contextlib

import pytest
import trio

from tests.conftest import LiveNode

MiB = 1024 * 1024


async def _exchange(node: LiveNode, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """Send ``head`` and ``body``, read the answer, then ask for /api/health on the same socket;
    returns (first answer's head, what the second request got before the socket ended)."""
    host, port = node.base_url.split("://")[1].split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        with trio.fail_after(20):  # a bound on a broken node, not a timing assumption
            await stream.send_all(head)
            with contextlib.suppress(trio.BrokenResourceError):  # answered and closed meanwhile: fine
                await stream.send_all(body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                piece = await stream.receive_some(65536)
                if not piece:
                    break
                answer += piece
            rest = b""
            try:
                await stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
                while piece := await stream.receive_some(65536):
                    rest += piece
            except (trio.BrokenResourceError, OSError):
                pass
    return answer.split(b"\r\n\r\n")[0], rest


@pytest.mark.parametrize(
    ("head", "size"),
    [
        (b"POST /api/mobile/upload/init HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", 5 * MiB),
        (b"PUT /api/mobile/upload/upload_x/chunks/0 HTTP/1.1\r\nHost: x\r\n", 200 * MiB),
    ],
)
async def test_an_oversized_body_is_413_and_the_connection_is_closed(
    live_node: LiveNode, head: bytes, size: int
) -> None:
    full = head + b"Content-Length: %d\r\n\r\n" % size
    answer, rest = await _exchange(live_node, full, b"x" * min(size, 6 * MiB))
    first_line = answer.split(b"\r\n")[0]
    assert first_line.startswith(b"HTTP/1.1 413") or first_line.startswith(b"HTTP/1.1 401"), answer
    assert b"connection: close" in answer.lower()
    assert b"healthy" not in rest  # the socket ended instead of reading garbage as a request
