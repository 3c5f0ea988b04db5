"""Chunk planning: a file of ``size`` bytes cut into numbered ranges with inclusive ends, as the
upload plan shows them (``start``/``end`` per chunk, the last one short)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.uploads.chunk_ranges import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, ChunkRange, chunk_range, total_chunks

KiB = 1024
MiB = 1024 * KiB


def test_chunk_size_bounds_are_the_configured_ones() -> None:
    assert 64 * KiB == MIN_CHUNK_SIZE
    assert 64 * MiB == MAX_CHUNK_SIZE


@pytest.mark.parametrize(
    "size,chunk_size,expected",
    [(0, 4 * MiB, 0), (1, 4 * MiB, 1), (4 * MiB, 4 * MiB, 1), (4 * MiB + 1, 4 * MiB, 2), (10 * MiB, 4 * MiB, 3)],
)
def test_total_chunks(size: int, chunk_size: int, expected: int) -> None:
    assert total_chunks(size, chunk_size) == expected


def test_ranges_have_inclusive_ends_and_the_last_chunk_is_short() -> None:
    size, chunk = 10 * MiB, 4 * MiB
    ranges = [chunk_range(size, chunk, i) for i in range(total_chunks(size, chunk))]
    assert ranges == [
        ChunkRange(0, 0, 4 * MiB - 1),
        ChunkRange(1, 4 * MiB, 8 * MiB - 1),
        ChunkRange(2, 8 * MiB, 10 * MiB - 1),
    ]
    assert [r.length for r in ranges] == [4 * MiB, 4 * MiB, 2 * MiB]


def test_exact_multiple_has_no_short_chunk() -> None:
    last = chunk_range(8 * MiB, 4 * MiB, 1)
    assert (last.start, last.end, last.length) == (4 * MiB, 8 * MiB - 1, 4 * MiB)


def test_one_byte_file_is_one_one_byte_chunk() -> None:
    only = chunk_range(1, MIN_CHUNK_SIZE, 0)
    assert (only.index, only.start, only.end, only.length) == (0, 0, 0, 1)


def test_last_chunk_of_one_byte() -> None:
    last = chunk_range(MIN_CHUNK_SIZE + 1, MIN_CHUNK_SIZE, 1)
    assert (last.start, last.end, last.length) == (MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, 1)


def test_zero_byte_file_has_no_chunks() -> None:
    assert total_chunks(0, MIN_CHUNK_SIZE) == 0
    with pytest.raises(IndexError):
        chunk_range(0, MIN_CHUNK_SIZE, 0)


@pytest.mark.parametrize("index", [-1, 3, 4, 1000])
def test_index_out_of_range_is_an_index_error(index: int) -> None:
    with pytest.raises(IndexError):
        chunk_range(10 * MiB, 4 * MiB, index)


def test_chunk_range_is_an_immutable_value() -> None:
    r = chunk_range(10 * MiB, 4 * MiB, 1)
    assert r == ChunkRange(index=1, start=4 * MiB, end=8 * MiB - 1)
    with pytest.raises(AttributeError):
        r.end = 0  # type: ignore[misc]


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, int]:
    chunk_size = draw(st.one_of(st.sampled_from([MIN_CHUNK_SIZE, 4 * MiB, MAX_CHUNK_SIZE]), st.integers(1, 1000)))
    size = draw(st.integers(0, chunk_size * 40))
    return size, chunk_size


@settings(derandomize=True, database=None, max_examples=150)
@given(plans())
def test_chunks_tile_the_file_exactly(plan: tuple[int, int]) -> None:
    size, chunk_size = plan
    count = total_chunks(size, chunk_size)
    ranges = [chunk_range(size, chunk_size, i) for i in range(count)]
    expected_start = 0
    for i, r in enumerate(ranges):
        assert r.index == i
        assert r.start == expected_start
        assert r.end >= r.start and r.length == r.end - r.start + 1
        assert r.length == chunk_size or (i == count - 1 and 0 < r.length <= chunk_size)
        expected_start = r.end + 1
    assert expected_start == size  # last end is size - 1 (and no chunks for an empty file)
    assert sum(r.length for r in ranges) == size
    with pytest.raises(IndexError):
        chunk_range(size, chunk_size, count)
