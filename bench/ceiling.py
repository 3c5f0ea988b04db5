"""The stack's ceiling: the least a server on the node's stack (Hypercorn's trio worker, one
process) must do to take an upload durably and verified, and to serve a download verified.

A bare ASGI app, no framework:

- ``PUT /store/NAME``: streams the body into a temp file beside ``NAME``, hashing it with BLAKE3
  (one thread) as it goes, fsyncs and renames it into place; answers 201 with ``X-Blake3``. With
  ``X-Checksum: blake3:HEX`` a body that does not match is answered 400 and nothing is kept.
  Pieces are handed to a worker thread ``HANDOFF`` bytes at a time (hash + write there, the event
  loop reading the next pieces meanwhile), and the last hand-off also fsyncs, checks and renames:
  a small file costs one thread hand-off. That is what ``../shared/PERFORMANCE.md`` found fastest
  on this stack. After each hand-off's write the kernel is asked to start writing it back
  (``sync_file_range``, the hint the node's fs backend gives too), so the final fsync finds most
  pages on their way (curl PUTs of 256 MiB, 6 each way on a loaded machine: 150-220 MB/s without
  it, 150-235 with; one quick bench run without it had the ceiling below the node's own upload).
  No directory fsync after the rename: a ceiling, not a store.
- ``GET /store/NAME`` (single ``Range`` too, 206/416): reads the file ``PIECE`` (1 MiB) at a time
  in a worker thread, hashes every piece it reads with BLAKE3, compares the digest with the one in
  ``NAME.b3`` when that exists (:func:`write_with_digests` writes both) and sends the piece, the
  next one being read meanwhile. A range reads and verifies the whole pieces it touches, as a
  content-addressed store must. A piece that does not match ends the response short.
- ``GET /health``: 204.

It imports nothing but the standard library, trio, Hypercorn and blake3, so its memory is the
stack's own (importing the backends' writeback helper would pull in half the node: +13 MiB).
Run as ``python -m bench.ceiling PORT STORE_DIR`` (``bench/peers.py`` starts it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import blake3
import hypercorn.trio.tcp_server as hypercorn_tcp
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

MiB = 1 << 20
HANDOFF = 2 * MiB  # body pieces are handed to the worker thread once this many bytes are waiting
PIECE = 1 * MiB  # download pieces, each verified on its own
DIGEST = 32

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def digests_path(path: Path) -> Path:
    return path.with_name(path.name + ".b3")


def piece_digests(data: bytes | memoryview) -> bytes:
    """BLAKE3 of every ``PIECE`` of ``data``, concatenated (what ``NAME.b3`` holds)."""
    view = memoryview(data)
    return b"".join(blake3.blake3(view[o : o + PIECE]).digest() for o in range(0, len(view), PIECE))


def write_with_digests(path: Path, data: bytes | memoryview) -> None:
    """Place a file the ceiling serves verified: its bytes and ``NAME.b3`` (for the download bench)."""
    path.write_bytes(data)
    digests_path(path).write_bytes(piece_digests(data))


def _writeback_hint() -> Callable[[int, int, int], object]:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)``: start writeback, do not wait."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux: the fsync does it all
        return lambda fd, offset, length: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda fd, offset, length: call(fd, offset, length, 2)


start_writeback = _writeback_hint()


def _write_all(fd: int, piece: bytes | bytearray | memoryview) -> None:
    view = memoryview(piece)
    while view:
        view = view[os.write(fd, view) :]


class _Upload:
    """One PUT's temp file and hasher; every method runs in a worker thread."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.hasher = blake3.blake3()
        self.written = 0

    def take(self, pieces: Sequence[bytes], *, writeback: bool = True) -> None:
        start = self.written
        for piece in pieces:
            self.hasher.update(piece)
            _write_all(self.fd, piece)
            self.written += len(piece)
        if writeback and self.written > start:
            start_writeback(self.fd, start, self.written - start)

    def finish(self, pieces: Sequence[bytes], expected: str | None) -> str | None:
        """Hash and write the last pieces, fsync, and rename if the digest matches (else None)."""
        self.take(pieces, writeback=False)  # the fsync right after writes them anyway
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        digest: str = self.hasher.hexdigest()
        if expected is not None and digest != expected:
            self.temp.unlink()
            return None
        os.rename(self.temp, self.final)
        return digest

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _read_piece(fd: int, index: int, size: int, digests: bytes | None) -> bytes | None:
    """Piece ``index`` of the file, hashed; None when it does not match its stored digest."""
    data = os.pread(fd, min(PIECE, size - index * PIECE), index * PIECE)
    digest = blake3.blake3(data).digest()
    if digests is not None and digests[index * DIGEST : (index + 1) * DIGEST] != digest:
        return None
    return data


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` / ``a-`` / ``-n`` range as (start, end inclusive); ValueError if unsatisfiable."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None  # not a single byte range: serve the whole file, as RFC 9110 allows
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
    if start >= size or start > end:
        raise ValueError("unsatisfiable")
    return start, end


async def lifespan(receive: Receive, send: Send) -> None:
    """ASGI lifespan for an app with nothing to start or stop (also the push bench's receiver)."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


class CeilingApp:
    """The ASGI app: ``/store/NAME`` under ``store``."""

    def __init__(self, store: Path) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/health":
            await _answer(send, 204)
            return
        name = path.removeprefix("/store/")
        if name == path or not _NAME.fullmatch(name) or name.startswith("."):
            await _answer(send, 404)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if method == "PUT":
            await self.put(self.store / name, headers, receive, send)
        elif method in ("GET", "HEAD"):
            await self.get(self.store / name, headers, send, head=method == "HEAD")
        else:
            await _answer(send, 405)

    async def put(self, final: Path, headers: dict[str, str], receive: Receive, send: Send) -> None:
        expected = headers.get("x-checksum")
        if expected is not None:
            algo, _, expected = expected.partition(":")
            if algo != "blake3" or not expected:
                await _answer(send, 400, b"X-Checksum must be blake3:HEX")
                return
        upload = _Upload(final)
        send_pieces, receive_pieces = trio.open_memory_channel[list[bytes]](1)
        digest: str | None = None

        async def writer() -> None:
            async with receive_pieces:
                async for pieces in receive_pieces:
                    await trio.to_thread.run_sync(upload.take, pieces)

        try:
            waiting: list[bytes] = []
            size = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                async with send_pieces:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            raise _Disconnected
                        body: bytes = message.get("body", b"")
                        if body:
                            waiting.append(body)
                            size += len(body)
                        if not message.get("more_body", False):
                            break
                        if size >= HANDOFF:
                            await send_pieces.send(waiting)
                            waiting, size = [], 0
            # The writer has taken everything before this; the last hand-off also syncs and renames.
            digest = await trio.to_thread.run_sync(upload.finish, waiting, expected)
        except _Disconnected:
            upload.discard()
            return
        except BaseException:
            upload.discard()
            raise
        if digest is None:
            await _answer(send, 400, b"checksum mismatch")
            return
        await _answer(send, 201, b"", [(b"x-blake3", digest.encode())])

    async def get(self, path: Path, headers: dict[str, str], send: Send, *, head: bool) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError):
            await _answer(send, 404)
            return
        try:
            size = os.fstat(fd).st_size
            try:
                wanted = parse_range(headers.get("range"), size)
            except ValueError:
                await _answer(send, 416, b"", [(b"content-range", f"bytes */{size}".encode())])
                return
            status, start, end = (200, 0, size - 1) if wanted is None else (206, *wanted)
            out = [
                (b"content-type", b"application/octet-stream"),
                (b"accept-ranges", b"bytes"),
                (b"content-length", str(end - start + 1).encode()),
            ]
            if status == 206:
                out.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            if head or size == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            await self._send_pieces(path, fd, size, start, end, send)
        finally:
            os.close(fd)

    async def _send_pieces(self, path: Path, fd: int, size: int, start: int, end: int, send: Send) -> None:
        """Pieces ``start // PIECE .. end // PIECE``, each read and verified in a worker thread (the
        first with the digests: a small file costs one hand-off), the next read while one is sent."""
        first, last = start // PIECE, end // PIECE
        digests, data = await trio.to_thread.run_sync(_read_first, path, fd, first, size)
        if first == last:
            await _send_part(send, first, data, start, end, last)
            return
        send_piece, receive_piece = trio.open_memory_channel[tuple[int, bytes | None]](1)

        async def reader() -> None:
            async with send_piece:
                for index in range(first + 1, last + 1):
                    piece = await trio.to_thread.run_sync(_read_piece, fd, index, size, digests)
                    await send_piece.send((index, piece))
                    if piece is None:
                        return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await _send_part(send, first, data, start, end, last)
            async with receive_piece:
                async for index, piece in receive_piece:
                    await _send_part(send, index, piece, start, end, last)


async def _send_part(send: Send, index: int, data: bytes | None, start: int, end: int, last: int) -> None:
    """The bytes of piece ``index`` inside ``start..end``; a piece that failed verification ends the
    response short (the headers are gone), so the client sees a truncated body, never wrong bytes."""
    if data is None:
        raise _Corrupt(f"piece {index} does not match its digest")
    offset = index * PIECE
    lo, hi = max(start, offset) - offset, min(end + 1, offset + len(data)) - offset
    part = data if (lo, hi) == (0, len(data)) else data[lo:hi]
    await send({"type": "http.response.body", "body": part, "more_body": index < last})


class _Disconnected(Exception):
    pass


class _Corrupt(Exception):
    pass


def _read_first(path: Path, fd: int, index: int, size: int) -> tuple[bytes | None, bytes | None]:
    """The file's piece digests (None without ``NAME.b3``) and piece ``index``, verified."""
    try:
        digests: bytes | None = digests_path(path).read_bytes()
    except FileNotFoundError:
        digests = None
    return digests, _read_piece(fd, index, size, digests)


async def _answer(send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    out = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def hypercorn_config(bind: str) -> Config:
    """The node's Hypercorn settings (``vault/cli/serve.py``): 1 MiB socket reads, a 4-message queue."""
    hypercorn_tcp.MAX_RECV = 1 << 20
    config = Config()
    config.bind = [bind]
    config.max_app_queue_size = 4
    config.keep_alive_timeout = 75
    config.read_timeout = 330
    config.accesslog = None
    return config


async def _serve(store: Path, bind: str) -> None:
    stop = trio.Event()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals)
        await serve(CeilingApp(store), hypercorn_config(bind), shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m bench.ceiling PORT STORE_DIR", file=sys.stderr)
        return 2
    store = Path(args[1])
    store.mkdir(parents=True, exist_ok=True)
    print(f"ceiling: serving {store} on 127.0.0.1:{args[0]}", flush=True)
    trio.run(_serve, store, f"127.0.0.1:{args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
