"""The one convention for structs that cross the wire (request bodies and answers).

Python attributes are snake_case; on the wire they are camelCase (``rename="camel"``), as the
mobile API spells them. Requests refuse unknown fields (no mass assignment) and are keyword-only;
answers are keyword-only. The OpenAPI document is generated from these same structs.
"""

from __future__ import annotations

import msgspec


class WireRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename="camel"):
    """Base of every struct decoded from a client."""


class WireAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of every struct sent to a client."""


class WireQuery(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of a route's query parameters (decoded from strings; parameters it does not know,
    such as a client's cache-buster, are ignored)."""
