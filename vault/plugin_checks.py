"""Expectations shared by the conformance kits of every plugin kind (backends, push providers)."""

from __future__ import annotations

import msgspec


def expect(condition: bool, message: str) -> None:
    """A failed expectation (independent of ``python -O``, unlike ``assert``)."""
    if not condition:
        raise AssertionError(message)


_UNKNOWN_KEY = "no_such_option_in_any_backend"


def expect_refuses_unknown_key(kind: type[msgspec.Struct], what: str) -> None:
    """Decoding ``{unknown: 1}`` into an options struct fails, naming the key."""
    try:
        msgspec.convert({_UNKNOWN_KEY: 1}, kind)
    except msgspec.ValidationError as exc:
        expect(_UNKNOWN_KEY in str(exc), f"{what}: the error does not name the unknown key: {exc}")
    else:
        raise AssertionError(f"{what}: an unknown key was accepted")
