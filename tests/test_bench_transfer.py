"""Cheap checks of the transfer benchmarks' own pieces (the benchmarks run with ``python -m bench``):
the photo library's sizes and fresh bytes, and the ceiling peer's ASGI app, called directly."""

from __future__ import annotations

import os
import struct
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import blake3
import pytest

from bench import transfer
from bench.ceiling import PIECE, CeilingApp, _Corrupt, parse_range, write_with_digests
from bench.common import MiB
from bench.photos import SLOT, Library, photo_sizes
from bench.transfer import STAMP_EVERY


def test_photo_sizes_are_seeded_and_within_bounds() -> None:
    sizes = photo_sizes(500, seed=9)
    assert sizes == photo_sizes(500, seed=9)
    assert sizes != photo_sizes(500, seed=10)
    assert len(sizes) == 500
    big = [s for s in sizes if s > 6 * MiB]
    assert len(big) == 5  # 1%
    assert all(50 * MiB <= s <= 200 * MiB for s in big)
    assert all(1 * MiB <= s <= 6 * MiB for s in sizes if s not in big)
    quick = photo_sizes(60, seed=9, big_count=1, big=(50 * MiB, 50 * MiB))
    assert sorted(quick)[-1] == 50 * MiB and sorted(quick)[-2] <= 6 * MiB
    assert photo_sizes(3, seed=1, big_count=0) == photo_sizes(3, seed=1, big_count=0)
    assert all(s <= 6 * MiB for s in photo_sizes(3, seed=1, big_count=0))


def test_library_files_get_fresh_distinct_bytes_every_run() -> None:
    sizes = [3 * STAMP_EVERY + 5, 2 * STAMP_EVERY, STAMP_EVERY + 17, 40]
    library = Library(sizes, seed=1)
    first = library.files(1, range(len(sizes)), checksums=True, chunk_size=STAMP_EVERY)
    before = [bytes(f.view) for f in first]
    assert [len(b) for b in before] == sizes
    assert len(set(before)) == len(sizes)
    for i, size in enumerate(sizes):
        # Every file's own stamps survive the stamping of the others (they never overlap).
        for block, offset in enumerate(range(0, size, STAMP_EVERY)):
            n = min(SLOT, size - offset)
            assert before[i][offset : offset + n] == struct.pack("<QII", 1, i, block)[:n]
        assert first[i].checksum == blake3.blake3(before[i]).hexdigest()
        chunks = first[i].chunks
        assert "".join(chunks[k] for k in sorted(chunks)) == "".join(
            blake3.blake3(before[i][a:b]).hexdigest() for a, b in sorted(chunks)
        )
    second = [bytes(f.view) for f in library.files(2, range(len(sizes)), checksums=False, chunk_size=None)]
    for old, new in zip(before, second, strict=True):
        blocks = range(0, len(old), STAMP_EVERY)
        assert all(old[o : o + SLOT] != new[o : o + SLOT] for o in blocks)  # no 64 KiB block repeats


class Exchange:
    """One ASGI request against the app, the body in the given pieces; the answer collected."""

    def __init__(self, method: str, path: str, body: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        }
        self.incoming = [
            {"type": "http.request", "body": piece, "more_body": n < len(body) - 1} for n, piece in enumerate(body)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> MutableMapping[str, Any]:
        return self.incoming.pop(0)

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            self.body += message.get("body", b"")

    async def run(self, app: CeilingApp) -> Exchange:
        await app(self.scope, self.receive, self.send)
        return self


async def test_ceiling_stores_exactly_the_bytes_sent_and_verifies_them(tmp_path: Path) -> None:
    app = CeilingApp(tmp_path)
    data = os.urandom(5 * MiB + 123)
    pieces = [data[o : o + 700_000] for o in range(0, len(data), 700_000)]
    checksum = blake3.blake3(data).hexdigest()
    put = await Exchange("PUT", "/store/a.bin", pieces, {"X-Checksum": f"blake3:{checksum}"}).run(app)
    assert put.status == 201 and put.headers["x-blake3"] == checksum
    assert (tmp_path / "a.bin").read_bytes() == data

    wrong = await Exchange("PUT", "/store/b.bin", pieces, {"X-Checksum": "blake3:" + "0" * 64}).run(app)
    assert wrong.status == 400
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]  # nothing kept, no temp file left

    empty = await Exchange("PUT", "/store/empty.bin", []).run(app)
    assert empty.status == 201 and (tmp_path / "empty.bin").read_bytes() == b""
    assert (await Exchange("PUT", "/store/../x", [b"x"]).run(app)).status == 404

    got = await Exchange("GET", "/store/a.bin", []).run(app)
    assert got.status == 200 and got.body == data
    ranged = await Exchange("GET", "/store/a.bin", [], {"Range": f"bytes={PIECE - 5}-{2 * PIECE + 5}"}).run(app)
    assert ranged.status == 206 and ranged.body == data[PIECE - 5 : 2 * PIECE + 6]
    assert ranged.headers["content-range"] == f"bytes {PIECE - 5}-{2 * PIECE + 5}/{len(data)}"
    assert (await Exchange("GET", "/store/a.bin", [], {"Range": "bytes=99999999-"}).run(app)).status == 416
    assert (await Exchange("GET", "/store/none.bin", []).run(app)).status == 404


async def test_ceiling_download_refuses_a_piece_that_does_not_match_its_digest(tmp_path: Path) -> None:
    app = CeilingApp(tmp_path)
    data = bytearray(os.urandom(3 * PIECE))
    write_with_digests(tmp_path / "c.bin", data)
    assert (await Exchange("GET", "/store/c.bin", []).run(app)).body == data
    data[PIECE + 10] ^= 1
    (tmp_path / "c.bin").write_bytes(data)  # the digests still say what was placed
    broken = Exchange("GET", "/store/c.bin", [])
    with pytest.raises(Exception) as caught:  # out of a nursery: in an exception group
        await broken.run(app)
    assert caught.errisinstance(_Corrupt) or caught.group_contains(_Corrupt)
    assert broken.body == data[:PIECE]  # the good first piece, then the response ends short
    small = await Exchange("GET", "/store/c.bin", [], {"Range": "bytes=0-99"}).run(app)
    assert small.body == data[:100]  # a range inside the good piece is still served


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=2-99", 10) == (2, 9)
    assert parse_range("items=1-2", 10) is None
    with pytest.raises(ValueError):
        parse_range("bytes=10-", 10)


def test_a_run_says_how_many_freed_pages_the_kernel_gave_back_to_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    counter = tmp_path / "reported_kib"
    counter.write_text("1024\n")
    monkeypatch.setattr(transfer, "PAGE_REPORTING", counter)
    reports = transfer.PageReports()
    counter.write_text("525312\n")  # 512 MiB more during the run
    transfer.print_footer(
        transfer.Setup(tmp_path), {}, [], ((0.0, 0.0, 0.0),) * 2, interrupted=False, page_reports=reports
    )
    assert "reported 512 MiB of freed pages to its host" in capsys.readouterr().out
    assert reports.as_json() == {"start": 1024, "end": 525312}

    monkeypatch.setattr(transfer, "PAGE_REPORTING", tmp_path / "absent")  # a kernel without it
    quiet = transfer.PageReports()
    transfer.print_footer(
        transfer.Setup(tmp_path), {}, [], ((0.0, 0.0, 0.0),) * 2, interrupted=False, page_reports=quiet
    )
    assert "freed pages" not in capsys.readouterr().out
    assert quiet.as_json() == {"start": None, "end": None}
