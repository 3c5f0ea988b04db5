"""A tus PATCH whose body stops arriving is answered (what arrived is kept, and the offset says
how far it got), and the connection is closed, instead of never answered."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.testing

from tests.api_helpers import local_path, register
from tests.conftest import running_app
from vault.config import Config

pytestmark = pytest.mark.reliability

KiB = 1024


async def test_a_stalled_patch_is_answered_with_the_offset_it_reached(
    config: Config, idle_jump_clock: trio.testing.MockClock
) -> None:
    async with running_app(config, idle_jump_clock) as app:
        client = app.test_client()
        headers = {**(await register(client)), "Tus-Resumable": "1.0.0"}
        data = os.urandom(100 * KiB)
        created = await client.post(
            "/api/mobile/tus/",
            headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": "filename cy5iaW4="},
        )
        location = local_path(created.headers["Location"])
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": data[: 30 * KiB], "more_body": True}
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PATCH",
            "scheme": "http",
            "path": location,
            "raw_path": b"",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"authorization", headers["Authorization"].encode()),
                (b"tus-resumable", b"1.0.0"),
                (b"upload-offset", b"0"),
                (b"content-type", b"application/offset+octet-stream"),
                (b"content-length", str(len(data)).encode()),
            ],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8080),
        }
        with trio.fail_after(3600):  # fake time: the stall is cut after server.body_read_timeout
            await app(scope, receive, send)
        start = sent[0]
        assert start["status"] == 204
        answer = {k.decode(): v.decode() for k, v in start["headers"]}
        assert answer["upload-offset"] == str(30 * KiB)
        assert answer["connection"] == "close"
        head = await client.head(location, headers=headers)
        assert head.headers["Upload-Offset"] == str(30 * KiB)  # kept: the client resumes from here
