"""At most so many transfers at once, per account (429) and per node (503), with Retry-After."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import trio

from tests.api_helpers import b3
from tests.auth_support import register_body
from tests.conftest import LiveNode
from vault import errors
from vault.config import Config
from vault.transfers import TransferLimits

MiB = 1024 * 1024


def test_slots_are_counted_per_account_and_for_the_node() -> None:
    limits = TransferLimits(per_user=2, total=3)
    limits.take("a")
    limits.take("a")
    with pytest.raises(errors.RateLimitExceeded) as mine:
        limits.take("a")
    assert mine.value.headers["Retry-After"] == "1"
    limits.take("b")
    with pytest.raises(errors.ServiceUnavailable) as node:
        limits.take("c")
    assert node.value.headers["Retry-After"] == "2"
    limits.give("a")
    limits.take("c")
    for user in ("a", "b", "c"):
        limits.give(user)
    assert limits.active == 0 and limits.of("a") == 0


async def _account(http: httpx.AsyncClient, email: str, data: bytes) -> tuple[dict[str, str], str]:
    signed = (await http.post("/api/mobile/auth/register", json=register_body(email, device_id="d1"))).json()
    headers = {"Authorization": f"Bearer {signed['tokens']['accessToken']}"}
    entry = {"localId": "1", "name": "big.bin", "size": len(data), "folder": "/", "checksum": b3(data)}
    planned = (await http.post("/api/mobile/upload/init", headers=headers, json={"files": [entry]})).json()
    planned = planned["data"]["files"][0]
    for chunk in planned["chunks"]:
        put = await http.put(chunk["uploadUrl"], headers=headers, content=data[chunk["start"] : chunk["end"] + 1])
        assert put.status_code == 200
    body = {"uploadId": planned["uploadId"], "checksum": b3(data)}
    done = await http.post("/api/mobile/upload/complete", headers=headers, json=body)
    return headers, done.json()["data"]["file"]["id"]


def _held_download(port: int, headers: dict[str, str], file_id: str) -> socket.socket:
    """A download that started and is then not read: the node is left holding it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /api/mobile/files/{file_id}/content HTTP/1.1\r\nHost: n\r\n"
        f"Authorization: {headers['Authorization']}\r\n\r\n".encode()
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


async def _until(check: Callable[[], Any]) -> None:
    """Retry ``check`` until it holds: the node learns that a client left only when its next send
    fails, an event in the kernel's socket buffers this test cannot wait on directly."""
    with trio.fail_after(30):
        while not await check():  # noqa: ASYNC110 - see the docstring
            await trio.sleep(0.05)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(server={"max_transfers_per_user": 2, "max_transfers": 3})


async def test_downloads_beyond_the_limits_are_told_to_come_back_and_slots_return(live_node: LiveNode) -> None:
    data = os.urandom(24 * MiB)
    port = int(live_node.base_url.rsplit(":", 1)[1])
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(live_node.client())
        alice, alice_file = await _account(http, "alice@example.com", data)
        bob, bob_file = await _account(http, "bob@example.com", data)
        held = [await trio.to_thread.run_sync(_held_download, port, alice, alice_file) for _ in range(2)]
        third = await http.get(f"/api/mobile/files/{alice_file}/content", headers=alice)
        assert third.status_code == 429 and third.headers["Retry-After"] == "1"
        assert third.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        # Bob is not Alice's problem: he gets the node's third slot...
        held.append(await trio.to_thread.run_sync(_held_download, port, bob, bob_file))
        # ...and then the node is full for everyone.
        busy = await http.get(f"/api/mobile/files/{bob_file}/content", headers=bob)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
        assert busy.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        # Metadata and health are not transfers.
        assert (await http.get(f"/api/mobile/files/{alice_file}", headers=alice)).status_code == 200
        assert (await http.get("/api/health")).status_code == 200
        for sock in held:
            sock.close()

        async def download_works() -> bool:
            response = await http.get(f"/api/mobile/files/{alice_file}/content", headers=alice)
            return response.status_code == 200 and response.content == data

        await _until(download_works)  # the node noticed the clients left and gave their slots back
    assert live_node.app.node.transfers.active == 0
