"""The node's h11 receive buffer parses exactly what h11's own does, for any split of the bytes."""

from __future__ import annotations

import random

import h11
import pytest
from h11 import _connection as h11_connection
from h11._receivebuffer import ReceiveBuffer

from vault.cli import h11_buffer
from vault.cli.h11_buffer import FastReceiveBuffer


def _requests(rng: random.Random) -> bytes:
    out = b""
    for n in range(4):
        body = rng.randbytes(rng.choice([0, 1, 100, 5000, 70_000]))
        if n % 2:
            out += b"PUT /c/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (n, len(body)) + body
        else:
            framed = b""
            for start in range(0, len(body), 3000):
                part = body[start : start + 3000]
                framed += b"%x\r\n" % len(part) + part + b"\r\n"
            out += b"PUT /c/%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % n + framed + b"0\r\n\r\n"
    return out


def _parse(stream: bytes, cuts: list[int], buffer: type[ReceiveBuffer]) -> list[tuple[str, bytes]]:
    saved = h11_connection.ReceiveBuffer
    h11_connection.ReceiveBuffer = buffer  # type: ignore[misc]
    try:
        conn = h11.Connection(h11.SERVER)
    finally:
        h11_connection.ReceiveBuffer = saved  # type: ignore[misc]
    assert type(conn._receive_buffer) is buffer
    events: list[tuple[str, bytes]] = []
    body = b""
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Data):
                assert isinstance(event.data, bytes | bytearray)
                body += bytes(event.data)
            elif isinstance(event, h11.Request):
                events.append(("request", event.target))
            elif isinstance(event, h11.EndOfMessage):
                events.append(("body", body))
                body = b""
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                events.append(("closed", b""))
                return events
        if event is h11.PAUSED:
            continue
    return events


@pytest.mark.parametrize("seed", range(40))
def test_any_split_of_pipelined_requests_parses_as_with_h11s_own_buffer(seed: int) -> None:
    rng = random.Random(seed)
    stream = _requests(rng)
    cuts = sorted(rng.sample(range(1, len(stream)), rng.choice([1, 3, 10, 60])))
    expected = _parse(stream, cuts, ReceiveBuffer)
    assert [kind for kind, _ in expected].count("body") == 4
    assert _parse(stream, cuts, FastReceiveBuffer) == expected


def test_a_body_read_is_handed_on_as_the_same_object() -> None:
    buf = FastReceiveBuffer()
    read = b"x" * 1000
    buf += read
    assert len(buf) == 1000 and buf
    assert buf.maybe_extract_at_most(5000) is read
    assert not buf and buf.maybe_extract_at_most(10) is None
    buf += b"abc"
    buf += bytearray(b"def")  # a second read while one is held joins h11's own buffer
    assert bytes(buf) == b"abcdef"
    assert buf.maybe_extract_at_most(4) == b"abcd"
    assert buf.maybe_extract_at_most(4) == b"ef"


def test_install_replaces_h11s_buffer_for_new_connections() -> None:
    saved = h11_connection.ReceiveBuffer
    try:
        assert h11_buffer.install()
        assert type(h11.Connection(h11.SERVER)._receive_buffer) is FastReceiveBuffer
    finally:
        h11_connection.ReceiveBuffer = saved  # type: ignore[misc]
