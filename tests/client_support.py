"""Helpers for the client SDK tests: clients of a real node, in-process or over loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from vault_client.client import Client
from vault_client.retry import RetryPolicy
from vault_client.state import State

PASSWORD = "correct horse battery"
# Retries without waiting long (the tests that need real backoff set their own policy).
FAST_RETRY = RetryPolicy(attempts=6, base=0.01, cap=0.05)


def in_process(app: Any) -> httpx.AsyncBaseTransport:
    """A transport into the app itself (no socket): requests reach the real node's handlers."""
    return httpx.ASGITransport(app=app)


async def signed_in(
    base_url: str,
    state_path: Path | str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    email: str = "alice@example.com",
    **kw: Any,
) -> Client:
    client = Client(base_url, state=State(state_path), transport=transport, retry=kw.pop("retry", FAST_RETRY), **kw)
    await client.sign_in(email, PASSWORD)
    return client


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path -> content), the client's partial files left out."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".vault-partial")
    }
