"""What the plain-HTTP push providers (``webhook``, ``ntfy``) share: their client, one POST under
one deadline, and which answers mean "try again later".

Kept out of ``vault.plugin_api`` on purpose: it is these two plugins' convenience, not a contract.
Reasons built here name the service and the status, never a URL or header, which may hold secrets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx
import trio

from vault.plugin_api import RetryLater, retry_after

USER_AGENT = "megavault-node"


def open_client(timeout: float) -> httpx.AsyncClient:
    """The one client a provider keeps from ``open`` to ``close`` (its connections are reused).

    Redirects are not followed: a push endpoint that redirects is misconfigured, and following it
    would resend the message (and its credentials) somewhere nobody configured.
    """
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT})


def require_open(client: httpx.AsyncClient | None, name: str) -> httpx.AsyncClient:
    """The provider's client, or a programming error if ``send`` came before ``open``."""
    if client is None:
        raise RuntimeError(f"push.{name} is not open")
    return client


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    within: float,
    service: str,
) -> httpx.Response | RetryLater:
    """POST ``content``; the response, or ``RetryLater`` when the service could not be reached.

    httpx's timeout bounds each phase (connect, each read); ``within`` seconds bound the whole
    delivery, so a server trickling bytes cannot hold a send longer than that either.
    """
    with trio.move_on_after(within):
        try:
            return await client.post(url, content=content, headers=dict(headers))
        except httpx.TimeoutException:
            return RetryLater(f"{service} did not answer within {within:g} s")
        except httpx.TransportError as exc:
            # The class name says refused/reset/protocol error; the message could carry the URL.
            return RetryLater(f"{service} unreachable ({type(exc).__name__})")
    return RetryLater(f"{service} did not answer within {within:g} s")


def transient(response: httpx.Response, service: str, detail: str = "") -> RetryLater | None:
    """``RetryLater`` for throttling (429) and server errors (5xx), with the ``Retry-After`` asked for.

    Unlike ``status_outcome`` this never answers 404/410 with ``RegistrationGone``: for these
    services such a status is about the configured URL, not about one device's token.
    """
    status = response.status_code
    if status != 429 and status < 500:
        return None
    suffix = f": {detail}" if detail else ""
    return RetryLater(
        f"{service} answered HTTP {status}{suffix}", retry_after(response.headers.get("Retry-After"), time.time())
    )
