"""Racing clients: what a file's checksum names is exactly the bytes it serves, whatever order two
PUTs of the same chunk with different bytes land in."""

from __future__ import annotations

import os
from typing import Any

import trio

from tests.api_helpers import HttpClient, b3, init_upload, register
from tests.conftest import LiveNode

KiB = 1024


async def test_two_racing_puts_of_one_chunk_never_leave_a_file_serving_other_bytes(live_node: LiveNode) -> None:
    async with live_node.client() as http, live_node.client() as other:
        headers = await register(HttpClient(http))
        for _ in range(20):
            tail = os.urandom(64 * KiB)
            first, second = os.urandom(64 * KiB), os.urandom(64 * KiB)
            planned = await init_upload(HttpClient(http), headers, first + tail, checksum=b3(b"unknown at init"))
            urls = [chunk["uploadUrl"] for chunk in planned["chunks"]]
            assert (await http.put(urls[1], headers=headers, content=tail)).status_code == 200

            async def put(client: Any, body: bytes, url: str = urls[0]) -> None:
                assert (await client.put(url, headers=headers, content=body)).status_code == 200

            async with trio.open_nursery() as nursery:
                nursery.start_soon(put, http, first)
                nursery.start_soon(put, other, second)
            # Whichever PUT landed last is the content; completing with the other is refused.
            outcomes = {}
            for candidate in (first, second):
                done = await http.post(
                    "/api/mobile/upload/complete",
                    headers=headers,
                    json={"uploadId": planned["uploadId"], "checksum": b3(candidate + tail)},
                )
                outcomes[candidate] = done
                if done.status_code == 200:
                    break
            winners = [c for c, r in outcomes.items() if r.status_code == 200]
            assert len(winners) == 1, {c[:4]: r.status_code for c, r in outcomes.items()}
            entry = outcomes[winners[0]].json()["data"]["file"]
            served = await http.get(f"/api/mobile/files/{entry['id']}/content", headers=headers)
            assert served.content == winners[0] + tail
            assert entry["checksum"] == b3(served.content)
