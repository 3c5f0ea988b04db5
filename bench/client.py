"""Client benchmark: a first sync of the photo library through ``vault_client`` against the same
upload made with plain sequential HTTP requests (what a ``curl`` loop does).

The workload is ``python -m bench photos``'s (``bench/photos.py``): 500 files of seeded sizes
(seed 9; most 1-6 MiB uniform, 1% of 50-200 MiB; ``--quick``: 60 files, one of 50 MiB), every
file a window of one random buffer restamped with a new tag. Each side gets freshly stamped
files written to its own scratch folder (then ``sync``, untimed) and a fresh ``vault serve`` (a
child process on 127.0.0.1, its own data directory), so no file or chunk is deduplicated
across sides, pairs or runs; both are deleted after the side. Each side uploads every file:

- **raw**: one ``httpx.Client`` connection, one file after another: read it, BLAKE3 of the file
  (the node needs it), ``upload/init``, every 8 MiB chunk ``PUT`` in order, ``upload/complete``;
- **client**: ``Syncer.sync_once`` of the folder: scan and hash, ``sync/files``, chunk uploads
  (``--parallel`` in flight across the files in flight), ``complete``, the index and state in SQLite.

The client's overhead is its time over the raw time (below 1.0: it is faster, from running
chunks in parallel). Pairs alternate which side runs first.

    python -m bench client --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import blake3
import httpx
import trio

from bench.common import MiB, mb_per_s, median, scratch_dir, table
from bench.peers import Sampler
from bench.photos import MAX_FILES, Library, library_shape, photo_sizes
from bench.sync import running_node
from bench.transfer import new_tag

PASSWORD = "correct horse battery"
CHUNK = 8 * MiB
SEED = 9  # bench/photos.py's default


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


def client_sync(base: str, folder: Path, state: Path, parallel: int = 4) -> tuple[float, int, int]:
    """Seconds for the client's first sync of ``folder``, the bytes it sent and the files it uploaded."""
    from vault_client.client import Client
    from vault_client.state import State
    from vault_client.syncer import Syncer

    async def run() -> tuple[float, int, int]:
        async with Client(base, state=State(state), chunk_size=CHUNK, parallel=parallel) as client:
            await client.sign_in("client@example.com", PASSWORD)
            syncer = Syncer(client, folder)
            started = time.perf_counter()
            report = await syncer.sync_once()
            seconds = time.perf_counter() - started
            if report.offline or report.rejected or report.uploaded == 0:
                raise RuntimeError(f"the client's sync did not complete: {report}")
            return seconds, client.uploader.bytes_sent, report.uploaded

    return trio.run(run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="python -m bench photos --quick's library: 60 files")
    parser.add_argument("--files", type=int, help=f"number of files (default 500, --quick 60, at most {MAX_FILES})")
    parser.add_argument("--pairs", type=int, default=None, help="raw/client pairs (default 2, --quick 1)")
    parser.add_argument("--parallel", type=int, default=4, help="the client's chunks in flight (default 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    count, big_count, big_range = library_shape(args.quick, args.files)
    if not 1 <= count <= MAX_FILES:
        parser.error(f"--files must be 1..{MAX_FILES}")
    pairs = args.pairs or (1 if args.quick else 2)
    sizes = photo_sizes(count, SEED, big_count=big_count, big=big_range)
    total, files = sum(sizes), len(sizes)
    videos = sum(1 for size in sizes if size > 6 * MiB)
    library = Library(sizes, SEED)
    print(
        f"library: {files} files ({videos} of {big_range[0] // MiB}-{big_range[1] // MiB} MiB), "
        f"{total / MiB:,.0f} MiB (bench/photos.py, seed {SEED}); fresh stamps per side",
        flush=True,
    )
    raw_times: list[float] = []
    client_times: list[float] = []
    ratios: list[float] = []
    peaks: dict[str, list[dict[str, int]]] = {"raw": [], "client": []}
    with scratch_dir("bench-client-") as work:
        for pair in range(pairs):
            order = ("raw", "client") if pair % 2 == 0 else ("client", "raw")
            measured: dict[str, float] = {}
            for side in order:
                folder = work / f"library-{pair}-{side}"
                library.write(folder, new_tag())
                os.sync()  # the files' dirty pages must not slow the node's fsyncs down
                node_dir = work / f"node-{pair}-{side}"
                node_dir.mkdir()
                try:
                    with running_node(node_dir) as node:
                        memory = Sampler(interval=0.05)
                        memory.watch("node", node)
                        memory.start()
                        try:
                            if side == "raw":
                                measured[side] = raw_upload(node.base, folder)
                            else:
                                state = node_dir / "client.sqlite3"  # fresh per side, deleted with the node's data
                                seconds, sent, uploaded = client_sync(node.base, folder, state, args.parallel)
                                if sent != total or uploaded != files:
                                    raise RuntimeError(
                                        f"the client sent {sent} bytes of {total}, {uploaded} files of {files}"
                                    )
                                measured[side] = seconds
                        finally:
                            node_peak = memory.close_window("node")
                            memory.stop()
                    peaks[side].append(node_peak)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                    shutil.rmtree(node_dir, ignore_errors=True)
                    os.sync()
                print(
                    f"pair {pair + 1}: {side} {measured[side]:.2f} s, "
                    f"node peak VmRSS {node_peak['VmRSS'] / MiB:.0f} MiB, "
                    f"RssAnon {node_peak['RssAnon'] / MiB:.0f} MiB",
                    flush=True,
                )
            raw_times.append(measured["raw"])
            client_times.append(measured["client"])
            ratios.append(measured["client"] / measured["raw"])
    raw_s, client_s = median(raw_times), median(client_times)

    def peak(side: str, key: str) -> str:
        return f"{max(p[key] for p in peaks[side]) / MiB:.0f}"

    rows = [
        [
            "raw requests (sequential)",
            f"{raw_s:.2f}",
            f"{mb_per_s(total, raw_s):,.0f}",
            f"{files / raw_s:,.1f}",
            "1.00",
            peak("raw", "VmRSS"),
            peak("raw", "RssAnon"),
        ],
        [
            "vault_client first sync",
            f"{client_s:.2f}",
            f"{mb_per_s(total, client_s):,.0f}",
            f"{files / client_s:,.1f}",
            f"{median(ratios):.2f}",
            peak("client", "VmRSS"),
            peak("client", "RssAnon"),
        ],
    ]
    print()
    print(table(["upload", "seconds", "MB/s", "files/s", "time / raw", "node VmRSS MiB", "node RssAnon MiB"], rows))
    print(f"\nclient overhead: {median(ratios):.2f}x the raw time (per pair: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "files": files,
                    "bytes": total,
                    "seed": SEED,
                    "sizes": sizes,
                    "raw_s": raw_times,
                    "client_s": client_times,
                    "ratios": ratios,
                    "node_peak_bytes": peaks,
                }
            )
        )
    return 0
