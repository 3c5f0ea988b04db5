"""Where clients reach this node: ``[server] public_url``, else the request's own origin."""

from __future__ import annotations


def public_origin(public_url: str, scheme: str, host: str | None, server: tuple[str, int] | None = None) -> str:
    """``https://vault.example.com`` (no trailing slash) for absolute URLs in answers."""
    configured = public_url.rstrip("/")
    if configured:
        return configured
    if not host:
        address, port = server or ("127.0.0.1", 80)
        host = f"{address}:{port}"
    return f"{scheme}://{host}"
