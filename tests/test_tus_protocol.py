"""tus 1.0 header parsing: Upload-Metadata (base64 UTF-8 values), Upload-Checksum (sha1, sha256,
blake3 digests in base64), the advertised constants and HTTP dates for Upload-Expires."""

from __future__ import annotations

import base64
import hashlib
import re
from email.utils import parsedate_to_datetime

import blake3
import pytest

from vault import errors
from vault.tus.protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    http_date,
    parse_metadata,
    parse_upload_checksum,
)

SAMPLE = b"The quick brown fox jumps over the lazy dog"


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def test_constants_advertised_to_clients() -> None:
    assert TUS_VERSION == "1.0.0"
    assert set(EXTENSIONS.split(",")) == {"creation", "creation-with-upload", "expiration", "checksum", "termination"}
    assert CHECKSUM_ALGORITHMS.split(",") == ["sha1", "sha256", "blake3"]
    assert OFFSET_CONTENT_TYPE == "application/offset+octet-stream"


# -- Upload-Metadata ------------------------------------------------------------------------------


def test_metadata_values_are_base64_decoded() -> None:
    header = f"filename {b64('world_domination_plan.pdf')},filetype {b64('application/pdf')},folder {b64('/docs')}"
    assert parse_metadata(header) == {
        "filename": "world_domination_plan.pdf",
        "filetype": "application/pdf",
        "folder": "/docs",
    }


def test_metadata_example_from_the_tus_spec() -> None:
    header = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
    assert parse_metadata(header) == {"filename": "world_domination_plan.pdf", "is_confidential": ""}


def test_metadata_values_are_utf8() -> None:
    assert parse_metadata(f"filename {b64('Grüße 📷.jpg')}") == {"filename": "Grüße 📷.jpg"}


@pytest.mark.parametrize("header", [None, "", " ", ",", " , ,"])
def test_no_metadata_is_an_empty_dict(header: str | None) -> None:
    assert parse_metadata(header) == {}


def test_keys_without_values_and_empty_values_are_empty_strings() -> None:
    assert parse_metadata("flag") == {"flag": ""}
    assert parse_metadata("flag ") == {"flag": ""}
    assert parse_metadata(f"a,b {b64('x')},c") == {"a": "", "b": "x", "c": ""}


def test_whitespace_around_pairs_is_tolerated() -> None:
    assert parse_metadata(f"  filename {b64('a.txt')} ,  folder {b64('/')}  ") == {"filename": "a.txt", "folder": "/"}


@pytest.mark.parametrize(
    "value",
    [
        "!!!not-base64",
        "aGVsbG8",  # missing padding
        "aGVs bG8=",  # not one token
        "-_-_",  # urlsafe alphabet
        b64(b"\xff\xfe"),  # base64 of bytes that are not UTF-8
        b64(b"caf\xe9"),  # Latin-1, not UTF-8
    ],
)
def test_values_that_are_not_base64_utf8_are_refused(value: str) -> None:
    with pytest.raises(errors.ValidationError) as info:
        parse_metadata(f"filename {b64('ok.txt')},bad {value}")
    assert info.value.status == 400
    assert "'bad'" in info.value.message


# -- Upload-Checksum ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algo,reference",
    [
        ("sha1", hashlib.sha1(SAMPLE).digest()),
        ("sha256", hashlib.sha256(SAMPLE).digest()),
        ("blake3", blake3.blake3(SAMPLE).digest()),
    ],
)
def test_checksum_gives_a_fresh_hasher_and_the_expected_digest(algo: str, reference: bytes) -> None:
    hasher, expected = parse_upload_checksum(f"{algo} {b64(reference)}")
    assert expected == reference
    hasher.update(SAMPLE[:10])
    hasher.update(SAMPLE[10:])
    assert hasher.digest() == expected


def test_known_digests_of_the_sample() -> None:
    hasher, expected = parse_upload_checksum(f"sha1 {b64(bytes.fromhex('2fd4e1c67a2d28fced849ee1bb76e7391b93eb12'))}")
    hasher.update(SAMPLE)
    assert hasher.digest() == expected


def test_each_advertised_algorithm_is_accepted() -> None:
    for algo in CHECKSUM_ALGORITHMS.split(","):
        hasher, _ = parse_upload_checksum(f"{algo} {b64(b'x')}")
        assert hasher.digest()  # a working hasher


def test_algorithm_name_is_case_insensitive() -> None:
    hasher, expected = parse_upload_checksum(f"SHA256 {b64(hashlib.sha256(SAMPLE).digest())}")
    hasher.update(SAMPLE)
    assert hasher.digest() == expected


def test_a_mismatching_digest_is_told_apart_by_the_hasher() -> None:
    hasher, expected = parse_upload_checksum(f"sha256 {b64(hashlib.sha256(b'other').digest())}")
    hasher.update(SAMPLE)
    assert hasher.digest() != expected


@pytest.mark.parametrize("algo", ["md5", "crc32", "sha512", "blake2b", ""])
def test_unknown_algorithm_is_refused(algo: str) -> None:
    with pytest.raises(errors.ValidationError) as info:
        parse_upload_checksum(f"{algo} {b64(b'digest')}")
    assert info.value.status == 400
    assert "sha1,sha256,blake3" in info.value.message


@pytest.mark.parametrize("value", ["!!!", "aGVsbG8", "not base64"])
def test_digest_that_is_not_base64_is_refused(value: str) -> None:
    with pytest.raises(errors.ValidationError):
        parse_upload_checksum(f"sha1 {value}")


# -- HTTP dates -----------------------------------------------------------------------------------

IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} GMT$"
)


def test_http_date_is_imf_fixdate_in_gmt() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # the RFC 9110 example
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize("ts", [0.0, 1.0, 951782400.0, 1_700_000_000.75, 4_102_444_799.0])
def test_http_date_round_trips_to_the_second(ts: float) -> None:
    text = http_date(ts)
    assert IMF_FIXDATE.match(text), text
    assert parsedate_to_datetime(text).timestamp() == int(ts)
