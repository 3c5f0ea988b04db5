"""HTTP ``Range`` parsing (one byte range, RFC 9110) and mapping that range onto a file's chunks.

``parse_range`` answers ``None`` ("send the whole file, 200") for no header, another unit, several
ranges or a malformed header; ``Unsatisfiable`` (416) for a range that starts past the end; otherwise
an inclusive ``(start, end)`` clamped to the file.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.files.ranges import Unsatisfiable, parse_range, slices
from vault.files.records import ChunkRef

SIZE = 1000


def test_no_header_sends_the_whole_file() -> None:
    assert parse_range(None, SIZE) is None
    assert parse_range("", SIZE) is None


@pytest.mark.parametrize(
    "header,expected",
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, SIZE - 1)),
        ("bytes=-500", (SIZE - 500, SIZE - 1)),
        ("bytes=0-", (0, SIZE - 1)),
        ("bytes=0-0", (0, 0)),
        ("bytes=999-999", (999, 999)),
        ("bytes=-1", (999, 999)),
        ("bytes=0-999", (0, 999)),
    ],
)
def test_single_range_is_inclusive(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == expected


def test_unit_is_case_insensitive_and_whitespace_is_tolerated() -> None:
    assert parse_range("Bytes=0-99", SIZE) == (0, 99)
    assert parse_range("BYTES=0-99", SIZE) == (0, 99)
    assert parse_range("  bytes = 10 - 20  ", SIZE) == (10, 20)


@pytest.mark.parametrize("header", ["bytes=900-5000", "bytes=900-1000", "bytes=900-999999999999999999999"])
def test_end_past_the_file_is_clamped_to_the_last_byte(header: str) -> None:
    assert parse_range(header, SIZE) == (900, SIZE - 1)


def test_suffix_longer_than_the_file_is_the_whole_file_as_a_range() -> None:
    assert parse_range("bytes=-5000", SIZE) == (0, SIZE - 1)
    assert parse_range(f"bytes=-{SIZE}", SIZE) == (0, SIZE - 1)


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1000", "bytes=1000-2000", "bytes=5000-", "bytes=-0"])
def test_range_starting_past_the_end_or_empty_suffix_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, SIZE)


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=0-99", "bytes=-1", "bytes=-500", "bytes=-0"])
def test_zero_size_file_satisfies_no_range(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 0)


def test_zero_size_file_without_a_range_is_sent_whole() -> None:
    assert parse_range(None, 0) is None
    assert parse_range("bytes=abc", 0) is None


@pytest.mark.parametrize(
    "header",
    [
        "bytes=",
        "bytes=-",
        "bytes=5",
        "bytes=abc",
        "bytes=a-5",
        "bytes=5-a",
        "bytes=--5",
        "bytes=-5-",
        "bytes=1.5-2",
        "bytes=+1-2",
        "bytes=0x10-",
        "bytes 0-99",
        "0-99",
        "=0-99",
        "items=0-5",
        "bytes=5-3",
        "bytes=5000-10",  # invalid (end < start) wins over "past the end": ignored, not 416
    ],
)
def test_malformed_header_is_ignored(header: str) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "bytes=0-99, 200-299", "bytes=0-1,", "bytes=-5,0-1", "bytes=5000-,0-1"]
)
def test_several_ranges_send_the_whole_file(header: str) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=\u00b2-", "bytes=0-\u00b9", "bytes=-\u00b3"])
def test_only_ascii_digits_are_positions(header: str) -> None:
    # RFC 9110 positions are 1*DIGIT (ASCII). A header value is decoded as Latin-1, so a client
    # byte 0xB2 arrives as "²": it must be ignored like any other malformed range, not crash.
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header,expected",
    [("bytes=0-" + "9" * 5000, (0, SIZE - 1)), ("bytes=-" + "9" * 5000, (0, SIZE - 1))],
)
def test_very_long_positions_are_clamped(header: str, expected: tuple[int, int]) -> None:
    # Python refuses int() of strings over 4300 digits; a 5 kB header still fits in a request.
    assert parse_range(header, SIZE) == expected


CHUNKS = [ChunkRef(b"a", 4), ChunkRef(b"b", 4), ChunkRef(b"c", 2)]  # bytes 0-3, 4-7, 8-9


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (0, 9, [(0, 0, 4), (1, 0, 4), (2, 0, 2)]),
        (1, 2, [(0, 1, 2)]),
        (3, 8, [(0, 3, 1), (1, 0, 4), (2, 0, 1)]),
        (4, 7, [(1, 0, 4)]),
        (3, 4, [(0, 3, 1), (1, 0, 1)]),
        (9, 9, [(2, 1, 1)]),
        (0, 0, [(0, 0, 1)]),
    ],
)
def test_slices_of_a_range(start: int, end: int, expected: list[tuple[int, int, int]]) -> None:
    assert list(slices(CHUNKS, start, end)) == expected


def test_slices_of_no_chunks_is_empty() -> None:
    assert list(slices([], 0, 0)) == []


def test_parsed_range_maps_onto_chunks() -> None:
    total = sum(c.size for c in CHUNKS)
    wanted = parse_range("bytes=-3", total)
    assert wanted == (7, 9)
    assert list(slices(CHUNKS, *wanted)) == [(1, 3, 1), (2, 0, 2)]


@st.composite
def layout_and_range(draw: st.DrawFn) -> tuple[list[int], int, int]:
    sizes = draw(st.lists(st.integers(1, 64), min_size=1, max_size=20))
    total = sum(sizes)
    start = draw(st.integers(0, total - 1))
    end = draw(st.integers(start, total - 1))
    return sizes, start, end


@settings(derandomize=True, database=None, max_examples=150)
@given(layout_and_range())
def test_slices_cover_exactly_the_requested_bytes_in_order(case: tuple[list[int], int, int]) -> None:
    sizes, start, end = case
    content = bytes(i % 251 for i in range(sum(sizes)))
    pieces, offset = [], 0
    for size in sizes:
        pieces.append(content[offset : offset + size])
        offset += size
    chunks = [ChunkRef(bytes([i]), size) for i, size in enumerate(sizes)]

    out = list(slices(chunks, start, end))

    positions = [position for position, _, _ in out]
    assert positions == list(range(positions[0], positions[0] + len(positions)))  # in order, none skipped
    for position, lo, take in out:
        assert take > 0
        assert lo >= 0
        assert lo + take <= sizes[position]
    assert b"".join(pieces[p][lo : lo + take] for p, lo, take in out) == content[start : end + 1]
