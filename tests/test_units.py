"""Human sizes ("64KiB", "5GiB") and durations ("90s", "7d") as config values: what is accepted,
what each unit means, and that anything else is a ``ValueError`` (which the config decoder turns
into a message naming the key). test_config.py checks a few of these through the config as well."""

from __future__ import annotations

import pytest

from vault.units import format_duration, parse_duration, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    "text,expected",
    [
        ("64KiB", 64 * KiB),
        ("5GiB", 5 * GiB),
        ("1TiB", TiB),
        ("4MiB", 4 * MiB),
        ("0", 0),
        ("1234", 1234),
        ("10B", 10),
        ("1KB", 1000),
        ("10MB", 10 * 1000**2),
        ("2GB", 2 * 1000**3),
        ("3TB", 3 * 1000**4),
    ],
)
def test_sizes_binary_and_decimal_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["5gib", "5GIB", "5GiB", "5 GiB", "  5GiB  ", "5\tGiB"])
def test_size_units_ignore_case_and_whitespace(text: str) -> None:
    assert parse_size(text) == 5 * GiB


def test_fractional_sizes_are_whole_bytes() -> None:
    assert parse_size("1.5KiB") == 1536
    assert parse_size("0.5GiB") == GiB // 2
    assert isinstance(parse_size("1.5KiB"), int)


@pytest.mark.parametrize("value", [0, 1, 64 * KiB, 5 * GiB])
def test_plain_int_sizes_are_bytes(value: int) -> None:
    assert parse_size(value) == value


@pytest.mark.parametrize(
    "value",
    ["", " ", "GiB", "5XB", "5 G", "5KiBs", "-1", "-5GiB", "5.GiB", ".5GiB", "1e3", "5,5GiB", "five", "5 5GiB", "0x10"],
)
def test_bad_size_strings_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(value)


def test_negative_and_boolean_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)
    for flag in (True, False):
        with pytest.raises(ValueError):
            parse_size(flag)


def test_absurdly_long_size_is_a_value_error() -> None:
    # 400 digits overflow the float the parser goes through; the config decoder only reports
    # ValueError with its key, so anything else escapes as a traceback.
    with pytest.raises(ValueError):
        parse_size("1" * 400)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("2w", 14 * 86400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 30 s ", 30.0),
    ],
)
def test_durations(text: str, expected: float) -> None:
    assert parse_duration(text) == expected
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize("value,expected", [(0, 0.0), (5, 5.0), (2.5, 2.5)])
def test_plain_number_durations_are_seconds(value: float, expected: float) -> None:
    assert parse_duration(value) == expected
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value", ["", "90", "s", "15M", "24H", "7D", "1y", "5 min", "-5s", "1h30m", "1e3s", "90sec", ".5h", "1.h"]
)
def test_bad_duration_strings_are_refused(value: str) -> None:
    # A string needs a unit (a bare number string is refused, unlike sizes); units are lowercase.
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_negative_and_boolean_durations_are_refused() -> None:
    for value in (-1, -0.5):
        with pytest.raises(ValueError, match="negative"):
            parse_duration(value)
    for flag in (True, False):
        with pytest.raises(ValueError):
            parse_duration(flag)


@pytest.mark.parametrize(
    "seconds,text",
    [(604800, "7d"), (86400, "1d"), (172800, "2d"), (3600, "1h"), (5400, "90m"), (900, "15m"), (90, "90s"), (0, "0s")],
)
def test_format_duration_uses_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
