"""Checksums as the API writes them: ``blake3:<64 hex>`` or ``sha256:<64 hex>``, lowercase."""

from __future__ import annotations

import hashlib

import blake3
import msgspec
import pytest

from vault import errors
from vault.checksums import Checksum, new_hasher, parse_checksum

SAMPLE = b"The quick brown fox jumps over the lazy dog"
BLAKE3_HEX = blake3.blake3(SAMPLE).hexdigest()
SHA256_HEX = hashlib.sha256(SAMPLE).hexdigest()


@pytest.mark.parametrize("algo,hex_", [("blake3", BLAKE3_HEX), ("sha256", SHA256_HEX)])
def test_valid_checksums_parse(algo: str, hex_: str) -> None:
    checksum = parse_checksum(f"{algo}:{hex_}")
    assert checksum == Checksum(algo, hex_)  # type: ignore[arg-type]
    assert str(checksum) == f"{algo}:{hex_}"


def test_known_sha256_of_the_sample() -> None:
    text = "sha256:d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
    assert parse_checksum(text).digest == hashlib.sha256(SAMPLE).digest()


@pytest.mark.parametrize("algo", ["blake3", "sha256"])
def test_uppercase_hex_is_normalised_to_lowercase(algo: str) -> None:
    checksum = parse_checksum(f"{algo}:{BLAKE3_HEX.upper()}")
    assert checksum.hex == BLAKE3_HEX
    assert str(checksum) == f"{algo}:{BLAKE3_HEX}"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_checksum(f"  blake3:{BLAKE3_HEX}\n") == Checksum("blake3", BLAKE3_HEX)


@pytest.mark.parametrize(
    "text",
    [
        "",
        BLAKE3_HEX,  # no algorithm
        f"blake3{BLAKE3_HEX}",
        f"blake3::{BLAKE3_HEX}",
        f"blake3: {BLAKE3_HEX}",
        f"BLAKE3:{BLAKE3_HEX}",  # the algorithm is lowercase
        f"sha1:{hashlib.sha1(SAMPLE).hexdigest()}",
        f"md5:{BLAKE3_HEX}",
        f"sha512:{BLAKE3_HEX}",
        f"blake3:{BLAKE3_HEX[:-1]}",  # 63 hex digits
        f"blake3:{BLAKE3_HEX}0",  # 65 hex digits
        f"sha256:{SHA256_HEX[:-1]}g",
        f"sha256:0x{SHA256_HEX[2:]}",
        f"blake3:{BLAKE3_HEX} extra",
        f"blake3:{'٣' * 64}",  # non-ASCII digits
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(errors.ValidationError) as info:
        parse_checksum(text)
    assert info.value.code == "VALIDATION_ERROR" and info.value.status == 400
    assert info.value.details == {"field": "checksum"}
    assert info.value.message.startswith("checksum ")


def test_refusal_names_the_given_field() -> None:
    with pytest.raises(errors.ValidationError) as info:
        parse_checksum("nope", "files[1].checksum")
    assert info.value.details == {"field": "files[1].checksum"}
    assert info.value.message.startswith("files[1].checksum ")


@pytest.mark.parametrize("algo,hex_", [("blake3", BLAKE3_HEX), ("sha256", SHA256_HEX)])
def test_digest_bytes_round_trip(algo: str, hex_: str) -> None:
    checksum = parse_checksum(f"{algo}:{hex_.upper()}")
    assert checksum.digest == bytes.fromhex(hex_)
    assert len(checksum.digest) == 32
    assert checksum.digest.hex() == checksum.hex


def test_checksum_is_a_frozen_wire_value() -> None:
    checksum = parse_checksum(f"blake3:{BLAKE3_HEX}")
    assert msgspec.json.decode(msgspec.json.encode(checksum), type=Checksum) == checksum
    assert hash(checksum) == hash(Checksum("blake3", BLAKE3_HEX))
    with pytest.raises(AttributeError):
        checksum.hex = SHA256_HEX  # type: ignore[misc]


@pytest.mark.parametrize("data", [b"", b"x", SAMPLE, bytes(range(256)) * 300])
def test_new_hasher_matches_the_reference_implementations(data: bytes) -> None:
    for algo, reference in (("blake3", blake3.blake3(data).digest()), ("sha256", hashlib.sha256(data).digest())):
        hasher = new_hasher(algo)  # type: ignore[arg-type]
        half = len(data) // 2
        hasher.update(data[:half])
        hasher.update(data[half:])
        assert hasher.digest() == reference, algo


def test_new_hasher_digest_matches_a_parsed_checksum() -> None:
    for text in (f"blake3:{BLAKE3_HEX}", f"sha256:{SHA256_HEX}"):
        checksum = parse_checksum(text)
        hasher = new_hasher(checksum.algo)
        hasher.update(SAMPLE)
        assert hasher.digest() == checksum.digest


def test_new_hashers_are_independent() -> None:
    first, second = new_hasher("blake3"), new_hasher("blake3")
    first.update(b"data")
    assert second.digest() == blake3.blake3(b"").digest()
