"""Helpers for the client SDK tests: clients of a real node, in-process or over loopback."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import trio

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
    # A copy per client: a test that turns its client's retries down must not turn down the next test's.
    retry = kw.pop("retry", None) or dataclasses.replace(FAST_RETRY)
    client = Client(base_url, state=State(state_path), transport=transport, retry=retry, **kw)
    await client.sign_in(email, PASSWORD)
    return client


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path -> content), the client's partial files left out."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".vault-partial")
    }


class Rule:
    """What ``Scripted`` does to the requests ``match`` picks: after letting ``skip`` of them
    through, ``times`` of them get ``action``:

    - ``"lose"``: the request reaches the node, then the answer is lost (a read error);
    - ``"refuse"``: the request never leaves (a connection error);
    - ``"hang"``: it never leaves and never ends (``hung`` is set: a test then cancels, as a kill);
    - ``("status", code, headers)``: a made-up answer (a proxy's 503, say);
    - ``("cut", n)``: the node answers, but only ``n`` bytes of the body arrive, then a read error.
    """

    def __init__(self, match: Any, action: Any, *, times: int = 1, skip: int = 0) -> None:
        self.match = match
        self.action = action
        self.times = times
        self.skip = skip
        self.hung = trio.Event()


class _CutStream(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> Any:
        if self.data:
            yield self.data
        raise httpx.ReadError("connection cut mid-body")


class Scripted(httpx.AsyncBaseTransport):
    """A transport around another that misbehaves by ``rules`` and logs every request."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *rules: Rule) -> None:
        self.inner = inner
        self.rules = list(rules)
        self.log: list[httpx.Request] = []

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for r in self.log if r.method == method and fragment in r.url.path)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        for rule in self.rules:
            if rule.times <= 0 or not rule.match(request):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            rule.times -= 1
            action = rule.action
            if action == "refuse":
                raise httpx.ConnectError("refused (scripted)", request=request)
            if action == "hang":
                rule.hung.set()
                await trio.sleep_forever()
            if isinstance(action, tuple) and action[0] == "status":
                return httpx.Response(action[1], headers=action[2], content=b"busy", request=request)
            await request.aread()
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            if action == "lose":
                raise httpx.ReadError("answer lost (scripted)", request=request)
            # The body was decoded already: its length and encoding headers no longer apply.
            headers = [
                (k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")
            ]
            if isinstance(action, tuple) and action[0] == "cut":
                return httpx.Response(response.status_code, headers=headers, stream=_CutStream(body[: action[1]]))
            return httpx.Response(response.status_code, headers=headers, content=body, request=request)
        return await self.inner.handle_async_request(request)


def is_chunk_put(request: httpx.Request) -> bool:
    return request.method == "PUT" and "/chunks" in request.url.path


def is_content_get(request: httpx.Request) -> bool:
    return request.method == "GET" and request.url.path.endswith("/content")
