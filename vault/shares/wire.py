"""Wire structs of ``/shares``."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from vault.wire import Email, WireAnswer, WireRequest


class ShareRequest(WireRequest):
    file_id: Annotated[str, Meta(min_length=1, max_length=200)]
    email: Email


class ShareView(WireAnswer):
    id: str
    file_id: str
    owner: str  # the owner's email
    recipient: str  # the recipient's email
    created_at: str
    name: str | None  # the file's name, while it exists


class ShareAnswer(WireAnswer):
    share: ShareView


class ShareList(WireAnswer):
    shares: list[ShareView]


class ShareRevoked(WireAnswer):
    revoked: str
