"""Numbers from clients: ASCII digits only, bounded length (vault.numbers), and what that means at
the endpoints that take them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_helpers import register
from vault.numbers import ascii_int


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("42", 42), ("007", 7), ("9" * 20, 10**20 - 1)])
def test_ascii_digits_are_numbers(text: str, expected: int) -> None:
    assert ascii_int(text) == expected


@pytest.mark.parametrize("text", ["", " 1", "1 ", "-1", "+1", "1.0", "²", "٣", "１", "9" * 21, "0x10"])
def test_anything_else_is_not_a_number(text: str) -> None:
    assert ascii_int(text) is None


async def test_a_superscript_digit_in_a_chunk_index_or_limit_is_a_400_not_a_500(client: Any) -> None:
    headers = await register(client)
    chunk = await client.put("/api/mobile/upload/upload_x/chunks/%C2%B2", headers=headers, data=b"x")
    assert chunk.status_code == 400
    listing = await client.get("/api/mobile/files?folder=/&limit=%C2%B2", headers=headers)
    assert listing.status_code == 400
    assert (await listing.get_json())["error"]["details"]["field"] == "limit"
