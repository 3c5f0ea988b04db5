"""A/B of the node's chunk API: nodes from several code trees side by side, cells alternated.

``python -m bench node-ab --trees before=/tmp/base,after=.`` starts ``vault serve`` once per tree
(each with ``PYTHONPATH`` set to that tree, so an editable install elsewhere does not decide
which code runs), uploads through each in turn, alternating which goes first, and prints median
MB/s (files/s for small files) and node CPU-seconds per GB (``/proc``), and peak RssAnon. A tree is
a checkout or a ``git archive`` of one. On a shared machine only the columns of one run compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.common import KiB, MiB
from bench.peers import NodeServer, proc_memory
from bench.uploads import (
    Ctx,
    NodeApi,
    Params,
    Payloads,
    new_client,
    node_api_big,
    node_api_one_request,
    node_api_small,
)

GB = 1e9
# chunk MiB x streams; "small": 64 KiB files, one client, init + PUT + complete each; "batch": the
# same files, one init per BATCH of them and each completed by its PUT (what the SDK sends)
# "file": the same files, one ``POST upload/file`` each
CELLS = "8x1,1x1,8x4,1x4,small,batch,file"
SMALL_CELLS = ("small", "batch", "file")
BATCH = 50


def start_node(tree: Path, workdir: Path, backend: str) -> NodeServer:
    tree = tree.resolve()
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = ":".join(str(tree / part) for part in ("", "plugins", "backends", "client"))
    try:
        node = NodeServer(workdir, backend=backend)
        node.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    node.register()
    return node


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench node-ab", description=__doc__)
    parser.add_argument("--trees", required=True, help="NAME=PATH,NAME=PATH,...")
    parser.add_argument("--mib", type=int, default=64, help="big file size in MiB")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cells", default=CELLS)
    parser.add_argument("--small", type=int, default=200, help="64 KiB files per small cell")
    parser.add_argument("--backend", default="lmdb")
    args = parser.parse_args(argv)
    trees = {name: Path(path) for name, _, path in (kv.partition("=") for kv in args.trees.split(","))}
    cells = [c for c in args.cells.split(",") if c]
    payloads = Payloads(Params(big_size=args.mib * MiB, small_count=args.small, small_size=64 * KiB))
    root = Path(tempfile.mkdtemp(prefix="megavault-node-ab-"))
    nodes: dict[str, NodeServer] = {}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    peaks = dict.fromkeys(trees, 0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            for name, node in list(nodes.items()):
                anon = sum(proc_memory(pid)["RssAnon"] for pid in node.process.tree())
                peaks[name] = max(peaks[name], anon)

    try:
        for name, tree in trees.items():
            (root / name).mkdir()
            nodes[name] = start_node(tree, root / name, args.backend)
            print(f"node {name}: pid {nodes[name].process.pid}, code from {tree}", file=sys.stderr, flush=True)
        threading.Thread(target=sample, daemon=True).start()
        apis = {name: NodeApi(node.base_url, node.token) for name, node in nodes.items()}
        clients = {name: [new_client() for _ in range(4)] for name in nodes}
        ctx = Ctx(deadline=time.monotonic() + 3600, abort=threading.Event(), notes=set())
        for name in nodes:  # warm-up
            node_api_big(apis[name], 8 * MiB)(
                clients[name][:1], payloads.big_upload(checksums=True, chunk_size=8 * MiB), ctx
            )
        order = list(nodes)
        for rep in range(args.reps):
            for cell in cells:
                for name in order if rep % 2 == 0 else order[::-1]:
                    rate, cpu_gb = _measure(cell, nodes[name], apis[name], clients[name], payloads, ctx)
                    results.setdefault((cell, name), []).append((rate, cpu_gb))
                    unit = "files/s" if cell in SMALL_CELLS else "MB/s"
                    print(f"rep {rep} {cell:6} {name}: {rate:7.1f} {unit} {cpu_gb:7.2f} CPU-s/GB", file=sys.stderr)
        stop.set()
        print(
            f"load average {os.getloadavg()}; peak RssAnon MiB: "
            + ", ".join(f"{n} {v / MiB:.0f}" for n, v in peaks.items())
        )
        print("cell   " + "".join(f" | {n} rate (min-max) | {n} CPU-s/GB (min-max)" for n in nodes))
        for cell in cells:
            row = f"{cell:6} "
            for name in nodes:
                rates = [r for r, _ in results[(cell, name)]]
                cpus = [c for _, c in results[(cell, name)]]
                row += f" | {statistics.median(rates):.1f} ({min(rates):.0f}-{max(rates):.0f})"
                row += f" | {statistics.median(cpus):.2f} ({min(cpus):.2f}-{max(cpus):.2f})"
            print(row)
    finally:
        stop.set()
        for node in nodes.values():
            node.process.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _measure(
    cell: str, node: NodeServer, api: NodeApi, clients: list[httpx.Client], payloads: Payloads, ctx: Ctx
) -> tuple[float, float]:
    """(MB/s or files/s, node CPU-s per GB) of one cell on one node."""
    proc = node.process
    if cell in SMALL_CELLS:
        ups = payloads.small_uploads(checksums=True)
        each = BATCH if cell == "batch" else 1
        send = node_api_one_request(api) if cell == "file" else node_api_small(api, complete_on_put=cell == "batch")
        cpu0, t0 = proc.cpu_seconds(), time.perf_counter()
        for start in range(0, len(ups.files), each):
            send(clients[0], ups, list(range(start, min(start + each, len(ups.files)))), ctx)
        seconds, cpu = time.perf_counter() - t0, proc.cpu_seconds() - cpu0
        return len(ups.files) / seconds, cpu / (ups.size / GB)
    mib, streams = (int(x) for x in cell.split("x"))
    up = payloads.big_upload(checksums=True, chunk_size=mib * MiB)
    upload = node_api_big(api, mib * MiB)
    os.sync()
    cpu0, t0 = proc.cpu_seconds(), time.perf_counter()
    upload(clients[:streams], up, ctx)
    seconds, cpu = time.perf_counter() - t0, proc.cpu_seconds() - cpu0
    return up.size / seconds / 1e6, cpu / (up.size / GB)


if __name__ == "__main__":
    sys.exit(main())
