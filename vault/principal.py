"""Who is calling: shared by the auth service (which makes one) and the API (which uses it)."""

from __future__ import annotations

import msgspec


class Principal(msgspec.Struct, frozen=True):
    """The authenticated user and the device whose token was presented."""

    user_id: str
    device_id: str
    session_id: str = ""
