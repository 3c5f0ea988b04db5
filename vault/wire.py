"""The one convention for structs that cross the wire (request bodies and answers).

Python attributes are snake_case; on the wire they are camelCase (``rename="camel"``), as the
mobile API spells them. Requests refuse unknown fields (no mass assignment) and are keyword-only;
answers are keyword-only. The OpenAPI document is generated from these same structs.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# An email address as the node accepts one (``vault.auth.accounts.normalise_email`` checks it with
# this pattern after stripping surrounding spaces): local@domain.tld, no spaces, controls or "..".
EMAIL_PATTERN = r"^[^@\s\x00-\x1f]{1,64}@(?![^@]*\.\.)[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f.]+$(?!\n)"
MAX_EMAIL_LENGTH = 254
# What ``vault.clock.parse_rfc3339`` reads (it also reads other ISO 8601 spellings).
Timestamp = Annotated[
    str,
    Meta(
        max_length=64,
        extra_json_schema={"format": "date-time"},
        description="an RFC 3339 time such as 2024-05-01T12:00:00Z",
    ),
]
# ... or "" for none (where a handler reads an empty value as absent).
TimestampOrEmpty = Annotated[
    str,
    Meta(
        max_length=64,
        extra_json_schema={"anyOf": [{"format": "date-time"}, {"maxLength": 0}]},
        description="an RFC 3339 time such as 2024-05-01T12:00:00Z, or empty for none",
    ),
]
Email = Annotated[
    str,
    Meta(
        min_length=3,
        extra_json_schema={"maxLength": MAX_EMAIL_LENGTH, "pattern": EMAIL_PATTERN},
        description="an email address (compared case-insensitively)",
    ),
]


class WireRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename="camel"):
    """Base of every struct decoded from a client."""


class WireAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of every struct sent to a client."""


class WireQuery(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of a route's query parameters (decoded from strings; parameters it does not know,
    such as a client's cache-buster, are ignored)."""
