"""A bounded load run on a real node (loopback): 50 simulated phones sign in, long-poll sync,
upload a mix of small and large files with client-side aborts mid-chunk and resumes, and download
ranges of what they stored. At the end every file is downloaded whole and compared; there must be
no 5xx, no loss, no corruption, and anonymous memory must stay bounded. Figures are printed (-s).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import httpx
import pytest
import trio

from tests.auth_support import register_body
from tests.process_node import free_port as _free_port
from tests.process_node import serve as _serve
from tests.process_node import wait_healthy as _wait_healthy

pytestmark = pytest.mark.reliability

PHONES = 50
DURATION = 40.0  # seconds of load (real time: this test measures a real node under real load)
CHUNK = 256 * 1024
MEMORY_LIMIT_MB = 250


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@dataclass
class Stats:
    requests: int = 0
    errors_5xx: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    bytes_moved: int = 0
    aborts: int = 0
    peak_rss_mb: float = 0.0
    files: dict[str, tuple[httpx.AsyncClient, dict[str, str], bytes]] = field(default_factory=dict)


class Phone:
    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], stats: Stats, rng: random.Random) -> None:
        self.http, self.headers, self.stats, self.rng = http, headers, stats, rng
        self.mine: list[tuple[str, bytes]] = []

    async def call(
        self, method: str, url: str, headers: dict[str, str] | None = None, *, timed: bool = True, **kw: object
    ) -> httpx.Response:
        started = time.perf_counter()
        response = await self.http.request(  # type: ignore[arg-type]
            method, url, headers={**self.headers, **(headers or {})}, **kw
        )
        if timed:  # a long poll's answer waits for changes by design: not a latency
            self.stats.latencies.append(time.perf_counter() - started)
        self.stats.requests += 1
        if response.status_code >= 500:
            self.stats.errors_5xx.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
        return response

    async def upload(self, n: int) -> None:
        large = self.rng.random() < 0.15
        data = self.rng.randbytes(self.rng.randrange(1 << 20, 4 << 20) if large else self.rng.randrange(1, 200_000))
        entry = {"localId": str(n), "name": f"p{n}.bin", "size": len(data), "folder": "/load", "checksum": b3(data)}
        init = await self.call(
            "POST", "/api/mobile/upload/init", json={"files": [entry], "uploadOptions": {"chunkSize": CHUNK}}
        )
        planned = init.json()["data"]["files"][0]
        upload_id = planned["uploadId"]
        for chunk in planned["chunks"]:
            piece = data[chunk["start"] : chunk["end"] + 1]
            if len(piece) > 64 * 1024 and self.rng.random() < 0.1:
                await self.abort_mid_chunk(chunk["uploadUrl"], piece)
        state = (await self.call("GET", f"/api/mobile/upload/{upload_id}")).json()["data"]
        for index in state["missingChunks"]:  # the resume: only what the node does not have
            piece = data[index * CHUNK : (index + 1) * CHUNK]
            put = await self.call("PUT", f"/api/mobile/upload/{upload_id}/chunks/{index}", content=piece)
            self.stats.bytes_moved += len(piece)
            assert put.status_code == 200, put.text
        done = await self.call(
            "POST", "/api/mobile/upload/complete", json={"uploadId": upload_id, "checksum": b3(data)}
        )
        assert done.status_code == 200, done.text
        file_id = done.json()["data"]["file"]["id"]
        self.mine.append((file_id, data))
        self.stats.files[file_id] = (self.http, self.headers, data)

    async def abort_mid_chunk(self, url: str, piece: bytes) -> None:
        """Send part of a chunk, then drop the connection (a phone losing Wi-Fi mid-chunk)."""

        class Dropped(Exception):
            pass

        async def body() -> AsyncIterator[bytes]:
            yield piece[: len(piece) // 2]
            raise Dropped

        self.stats.aborts += 1
        try:
            async with httpx.AsyncClient(timeout=30) as own:
                await own.put(url, headers={**self.headers, "Content-Length": str(len(piece))}, content=body())
        except (Dropped, httpx.HTTPError):
            pass

    async def download_range(self) -> None:
        if not self.mine:
            return
        file_id, data = self.rng.choice(self.mine)
        start = self.rng.randrange(len(data))
        end = min(len(data) - 1, start + self.rng.randrange(1, 300_000))
        got = await self.call("GET", f"/api/mobile/files/{file_id}/content", headers={"Range": f"bytes={start}-{end}"})
        assert (
            got.status_code in (200, 206) and got.content == data[start : end + 1] if got.status_code == 206 else True
        )
        self.stats.bytes_moved += len(got.content)

    async def poll(self, stop: trio.Event) -> None:
        token = None
        while not stop.is_set():
            params = {"wait": "5"} if token is None else {"wait": "5", "syncToken": token}
            answer = await self.call("GET", "/api/mobile/sync/status", params=params, timed=False)
            if answer.status_code == 200:
                token = answer.json()["data"]["nextSyncToken"]
                if answer.json()["data"].get("hasMore"):
                    continue


async def _phone(base: str, n: int, stats: Stats, stop: trio.Event, rng: random.Random) -> None:
    http = httpx.AsyncClient(base_url=base, timeout=60)
    signed = await http.post(
        "/api/mobile/auth/register", json=register_body(f"phone{n}@example.com", device_id=f"p{n}")
    )
    assert signed.status_code == 200, signed.text
    phone = Phone(http, {"Authorization": f"Bearer {signed.json()['tokens']['accessToken']}"}, stats, rng)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(phone.poll, stop)
        k = 0
        while not stop.is_set():
            if rng.random() < 0.6:
                await phone.upload(k)
                k += 1
            else:
                await phone.download_range()
        nursery.cancel_scope.deadline = trio.current_time() + 10  # the last poll answers within its wait


def _rss_anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_fifty_phones_for_forty_seconds_lose_nothing_and_see_no_5xx(tmp_path: Path) -> None:
    config = tmp_path / "vault.toml"
    config.write_text('[plans.free]\nquota = "0"\n')
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(config, tmp_path / "data", port)
    stats = Stats()
    rng = random.Random(int(os.environ.get("VAULT_LOAD_SEED", "7")))
    try:
        await _wait_healthy(base, proc)
        stop = trio.Event()
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def watch_memory() -> None:
                while not stop.is_set():
                    stats.peak_rss_mb = max(stats.peak_rss_mb, _rss_anon_mb(proc.pid))
                    await trio.sleep(0.25)  # a sampling interval, not a wait for something

            nursery.start_soon(watch_memory)
            for n in range(PHONES):
                nursery.start_soon(_phone, base, n, stats, stop, random.Random(rng.random()))
            await trio.sleep(DURATION)  # the length of the load run
            stop.set()
        elapsed = time.perf_counter() - started
        # Every file, downloaded whole and compared.
        corrupt = []
        for file_id, (http, headers, data) in stats.files.items():
            whole = await http.get(f"/api/mobile/files/{file_id}/content", headers=headers)
            if whole.status_code != 200 or whole.content != data:
                corrupt.append(file_id)
        for http, _, _ in {id(h): (h, x, y) for h, x, y in stats.files.values()}.values():
            await http.aclose()
    finally:
        proc.terminate()
        await trio.to_thread.run_sync(proc.wait)
    latencies = sorted(stats.latencies)
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"{PHONES} phones, {elapsed:.0f} s: {stats.requests} requests ({stats.requests / elapsed:.0f}/s), "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {stats.bytes_moved / elapsed / 1e6:.1f} MB/s, "
        f"{len(stats.files)} files, {stats.aborts} aborted chunks, peak RssAnon {stats.peak_rss_mb:.0f} MB, "
        f"{len(stats.errors_5xx)} 5xx, {len(corrupt)} lost or corrupt"
    )
    assert stats.errors_5xx == []
    assert corrupt == []
    assert stats.peak_rss_mb < MEMORY_LIMIT_MB
