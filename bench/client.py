"""Client benchmark: a first sync of a photo library through ``vault_client`` against the same
upload made with plain sequential HTTP requests (what a ``curl`` loop does).

The workload is seeded: mostly 1-6 MiB photos and a few large videos, written once to a scratch
folder. Each side gets a fresh ``vault serve`` (a child process on 127.0.0.1, its own data
directory, so nothing is deduplicated across sides) and uploads every file:

- **raw**: one ``httpx.Client`` connection, one file after another: BLAKE3 of the file (the node
  needs it), ``upload/init``, every 8 MiB chunk ``PUT`` in order, ``upload/complete``;
- **client**: ``Syncer.sync_once`` of the folder: scan and hash, ``sync/files``, chunk uploads
  (4 in flight across the 4 files in flight), ``complete``, the index and state in SQLite.

The client's overhead is its time over the raw time (below 1.0: it is faster, from running
chunks in parallel). Pairs alternate which side runs first.

    python -m bench client --quick
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import blake3
import httpx
import trio

from bench.common import MiB, mb_per_s, median, scratch_dir, table
from bench.sync import running_node

PASSWORD = "correct horse battery"
CHUNK = 8 * MiB


@dataclass(frozen=True)
class Workload:
    photos: int
    photo_min: int
    photo_max: int
    videos: int
    video_size: int
    seed: int

    def sizes(self) -> list[int]:
        rng = random.Random(self.seed)
        sizes = [rng.randint(self.photo_min, self.photo_max) for _ in range(self.photos)]
        return sizes + [self.video_size] * self.videos


QUICK = Workload(photos=40, photo_min=1 * MiB, photo_max=6 * MiB, videos=1, video_size=48 * MiB, seed=11)
FULL = Workload(photos=160, photo_min=1 * MiB, photo_max=6 * MiB, videos=3, video_size=96 * MiB, seed=11)


def write_library(folder: Path, workload: Workload) -> int:
    rng = random.Random(workload.seed + 1)
    total = 0
    for n, size in enumerate(workload.sizes()):
        is_video = size == workload.video_size and n >= workload.photos
        sub = folder / ("Videos" if is_video else f"Camera/{2021 + n % 4}")
        sub.mkdir(parents=True, exist_ok=True)
        name = f"VID_{n:04d}.mp4" if is_video else f"IMG_{n:04d}.jpg"
        (sub / name).write_bytes(rng.randbytes(size))
        total += size
    return total


def _data(response: httpx.Response) -> dict[str, object]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:300]}"
        )
    body = response.json()
    return body.get("data", body)  # type: ignore[no-any-return]


def raw_upload(base: str, folder: Path) -> float:
    """Seconds to upload every file the plain way (sequential requests on one connection)."""
    with httpx.Client(base_url=base, timeout=120) as http:
        registered = http.post(
            "/api/mobile/auth/register",
            json={
                "email": "raw@example.com",
                "password": PASSWORD,
                "deviceInfo": {"platform": "web", "deviceId": "raw-bench"},
            },
        )
        token = _data(registered)["tokens"]["accessToken"]  # type: ignore[index]
        auth = {"Authorization": f"Bearer {token}"}
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        started = time.perf_counter()
        for path in files:
            data = path.read_bytes()
            checksum = "blake3:" + blake3.blake3(data).hexdigest()
            rel = path.relative_to(folder)
            remote_folder = "/" + rel.parent.as_posix() if rel.parent.as_posix() != "." else "/"
            init = _data(
                http.post(
                    "/api/mobile/upload/init",
                    headers=auth,
                    json={
                        "files": [
                            {
                                "localId": "1",
                                "name": path.name,
                                "size": len(data),
                                "folder": remote_folder,
                                "checksum": checksum,
                            }
                        ],
                        "uploadOptions": {"chunkSize": CHUNK},
                    },
                )
            )
            planned = init["files"][0]  # type: ignore[index]
            for chunk in planned["chunks"]:
                _data(http.put(chunk["uploadUrl"], headers=auth, content=data[chunk["start"] : chunk["end"] + 1]))
            _data(
                http.post(
                    "/api/mobile/upload/complete",
                    headers=auth,
                    json={"uploadId": planned["uploadId"], "checksum": checksum},
                )
            )
        return time.perf_counter() - started


def client_sync(base: str, folder: Path, state: Path, parallel: int = 4) -> tuple[float, int]:
    """Seconds for the client's first sync of ``folder``, and the bytes it sent."""
    from vault_client.client import Client
    from vault_client.state import State
    from vault_client.syncer import Syncer

    async def run() -> tuple[float, int]:
        async with Client(base, state=State(state), chunk_size=CHUNK, parallel=parallel) as client:
            await client.sign_in("client@example.com", PASSWORD)
            syncer = Syncer(client, folder)
            started = time.perf_counter()
            report = await syncer.sync_once()
            seconds = time.perf_counter() - started
            if report.offline or report.rejected or report.uploaded == 0:
                raise RuntimeError(f"the client's sync did not complete: {report}")
            return seconds, client.uploader.bytes_sent

    return trio.run(run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.photos} photos and {QUICK.videos} video")
    parser.add_argument("--pairs", type=int, default=None, help="raw/client pairs (default 2, --quick 1)")
    parser.add_argument("--parallel", type=int, default=4, help="the client's chunks in flight per file (default 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    workload = QUICK if args.quick else FULL
    pairs = args.pairs or (1 if args.quick else 2)
    with scratch_dir("bench-client-") as work:
        library = work / "library"
        total = write_library(library, workload)
        files = workload.photos + workload.videos
        print(f"library: {files} files, {total / MiB:,.0f} MiB (seed {workload.seed})", flush=True)
        raw_times: list[float] = []
        client_times: list[float] = []
        ratios: list[float] = []
        for pair in range(pairs):
            order = ("raw", "client") if pair % 2 == 0 else ("client", "raw")
            measured: dict[str, float] = {}
            for side in order:
                node_dir = work / f"node-{pair}-{side}"
                node_dir.mkdir()
                with running_node(node_dir) as node:
                    if side == "raw":
                        measured[side] = raw_upload(node.base, library)
                    else:
                        seconds, sent = client_sync(node.base, library, node_dir / "client.sqlite3", args.parallel)
                        if sent != total:
                            raise RuntimeError(f"the client sent {sent} bytes of {total}")
                        measured[side] = seconds
                print(f"pair {pair + 1}: {side} {measured[side]:.2f} s", flush=True)
            raw_times.append(measured["raw"])
            client_times.append(measured["client"])
            ratios.append(measured["client"] / measured["raw"])
    raw_s, client_s = median(raw_times), median(client_times)
    rows = [
        [
            "raw requests (sequential)",
            f"{raw_s:.2f}",
            f"{mb_per_s(total, raw_s):,.0f}",
            f"{files / raw_s:,.1f}",
            "1.00",
        ],
        [
            "vault_client first sync",
            f"{client_s:.2f}",
            f"{mb_per_s(total, client_s):,.0f}",
            f"{files / client_s:,.1f}",
            f"{median(ratios):.2f}",
        ],
    ]
    print()
    print(table(["upload", "seconds", "MB/s", "files/s", "time / raw"], rows))
    print(f"\nclient overhead: {median(ratios):.2f}x the raw time (per pair: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"files": files, "bytes": total, "raw_s": raw_times, "client_s": client_times, "ratios": ratios})
        )
    return 0
