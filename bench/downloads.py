"""Download benchmark: the node's verified downloads against nginx serving the same bytes from disk
and the stack's ceiling (``bench/ceiling.py``'s GET: 1 MiB pieces, each BLAKE3-verified).

``python -m bench downloads`` (``--quick`` for a smoke run, ``--help`` for the knobs). One 256 MiB
file and 1,000 files of 64 KiB, placed untimed: written straight to disk for nginx (a plain static
``location``; sendfile and tcp_nopush on, as Debian's ``nginx.conf`` ships them) and for the
ceiling (with its per-piece digests), uploaded through the node's chunk API for the node, whose
``GET /api/mobile/files/{id}/content`` verifies every chunk as it reads it. Workloads, one client
reusing its connection unless said otherwise:

- **big**: the whole big file, one GET;
- **big ×N**: the big file in ``--parallel`` contiguous ranges, one connection each;
- **big ranges**: ``--ranges`` random 1 MiB ranges of the big file (seeded offsets);
- **small**: every small file, one GET each;
- **small ranges**: ``Range: bytes=0-16383`` of every small file.

Every response is checked (status, ``Content-Range``, length, and every byte against what was
placed: a memory comparison while it streams, cheap next to the transfer). Repetitions are
interleaved; all reads come from the page cache (the files were just written).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore._sync.http11 as httpcore_h11
import httpx

from bench.ceiling import write_with_digests
from bench.common import GOALS, MB, KiB, MiB, goal, size_label, table
from bench.peers import BenchError, Sampler
from bench.transfer import (
    MEMORY_HEADERS,
    Aborted,
    Ctx,
    Run,
    Setup,
    Target,
    add_run_args,
    b3,
    chosen_families,
    chunk_checksums,
    drain_in_parallel,
    environment,
    fmt_stat,
    log,
    median_of,
    memory_columns,
    new_client,
    print_footer,
    random_bytes,
    ratio_text,
    run_interleaved,
    run_parallel,
    session,
    start_ceiling,
    start_nginx,
    start_node,
    summarise_runs,
    timed_run,
    write_results,
)

FAMILIES = ("nginx", "ceiling", "node")
BIG, BIG_PAR, BIG_RANGES, SMALL, SMALL_RANGES = "big", "big-par", "big-ranges", "small", "small-ranges"
WORKLOADS = (BIG, BIG_PAR, BIG_RANGES, SMALL, SMALL_RANGES)
NODE_CHUNK = 8 * MiB
CLIENT_READ = 1 * MiB  # httpcore reads 64 KiB per socket call: the Python client was the limit


@contextlib.contextmanager
def large_client_reads() -> Iterator[None]:
    """The client reads up to 1 MiB per socket call (httpcore's default 64 KiB held nginx to about
    500 MB/s here, 800-900 MB/s with 1 MiB); every target gets the same client."""
    connection = httpcore_h11.HTTP11Connection
    before = connection.READ_NUM_BYTES
    connection.READ_NUM_BYTES = CLIENT_READ
    try:
        yield
    finally:
        connection.READ_NUM_BYTES = before


@dataclass(frozen=True)
class Params:
    big_size: int = 256 * MiB
    small_count: int = 1000
    small_size: int = 64 * KiB
    ranges: int = 128
    range_size: int = 1 * MiB
    small_range: int = 16 * KiB
    parallel: int = 4
    reps: int = 3
    families: tuple[str, ...] = FAMILIES
    backend: str = "lmdb"
    sendfile: bool = True
    seed: int = 0x646C
    time_limit: float = 600.0
    measure_timeout: float = 300.0


@dataclass
class Content:
    """The bytes every target serves, and the ranges asked for (seeded)."""

    big: bytes
    small: list[bytes]
    offsets: list[int]  # starts of the random ranges of the big file

    @classmethod
    def make(cls, params: Params) -> Content:
        rng = random.Random(params.seed)
        big = bytes(random_bytes(rng, params.big_size))
        pool = random_bytes(rng, params.small_count * params.small_size)
        size = params.small_size
        small = [bytes(pool[i * size : (i + 1) * size]) for i in range(params.small_count)]
        span = max(1, params.big_size - params.range_size + 1)
        return cls(big, small, [rng.randrange(span) for _ in range(params.ranges)])


# --- targets: where each file is and how to ask for it --------------------------------------------


@dataclass
class Source:
    """One target's URLs for the big file and the small ones, and the headers every GET carries."""

    target: Target
    label: str
    big_url: str
    small_urls: list[str]
    headers: dict[str, str]


def place_nginx(setup: Setup, sampler: Sampler, content: Content, params: Params) -> Source | None:
    nginx = start_nginx(setup, sampler, sendfile=params.sendfile)
    if nginx is None:
        return None
    (nginx.files / "big.bin").write_bytes(content.big)
    (nginx.files / "s").mkdir()
    for i, data in enumerate(content.small):
        (nginx.files / "s" / f"f{i:05d}.bin").write_bytes(data)
    base = f"{nginx.base_url}/files"
    target = setup.targets["nginx"]
    label = f"{target.label} static (sendfile {'on' if params.sendfile else 'off'})"
    urls = [f"{base}/s/f{i:05d}.bin" for i in range(len(content.small))]
    return Source(target, label, f"{base}/big.bin", urls, {})


def place_ceiling(setup: Setup, sampler: Sampler, content: Content) -> Source | None:
    ceiling = start_ceiling(setup, sampler)
    if ceiling is None:
        return None
    write_with_digests(ceiling.store / "big.bin", content.big)
    for i, data in enumerate(content.small):
        write_with_digests(ceiling.store / f"s-{i:05d}.bin", data)
    target = setup.targets["ceiling"]
    base = f"{ceiling.base_url}/store"
    urls = [f"{base}/s-{i:05d}.bin" for i in range(len(content.small))]
    return Source(target, "ceiling: 1 MiB pieces, BLAKE3-verified", f"{base}/big.bin", urls, {})


def place_node(
    setup: Setup, sampler: Sampler, content: Content, params: Params, abort: threading.Event
) -> Source | None:
    """Upload everything through the node's chunk API (untimed, 8 connections for the small files)."""
    api = start_node(setup, sampler, ["node"], params.backend)
    if api is None:
        return None
    ctx = Ctx(time.monotonic() + 1800, abort, set())
    big_view = memoryview(content.big)
    sums = chunk_checksums(big_view, NODE_CHUNK)
    log(f"uploading {size_label(len(content.big))} and {len(content.small)} small files to the node (untimed)")
    with new_client() as client:
        big = api.upload(
            client, "big.bin", big_view, b3(big_view, threads=True), lambda a, b: sums[(a, b)], NODE_CHUNK, ctx
        )
    ids: list[str] = [""] * len(content.small)
    checksums = [b3(data) for data in content.small]

    def one(client: httpx.Client, i: int) -> None:
        answer = api.upload(
            client, f"s-{i:05d}.bin", content.small[i], checksums[i], lambda a, b: checksums[i], NODE_CHUNK, ctx
        )
        ids[i] = str(answer["id"])

    clients = [new_client() for _ in range(8)]
    try:
        drain_in_parallel(clients, range(len(content.small)), one, ctx)
    finally:
        for client in clients:
            client.close()
    os.sync()
    urls = [api.content_url(file_id) for file_id in ids]
    return Source(
        setup.targets["node"], "node GET /files/{id}/content", api.content_url(str(big["id"])), urls, api.auth
    )


# --- verified GETs --------------------------------------------------------------------------------


def get_checked(
    client: httpx.Client, url: str, headers: dict[str, str], data: bytes, first: int, length: int, *, ranged: bool
) -> int:
    """GET ``url`` (``Range`` of ``length`` bytes from ``first`` when ``ranged``), comparing every
    byte with ``data[first:first + length]`` as it streams; returns the bytes received.

    The comparison slices ``bytes`` (a copy and a memcmp, about 4 GB/s here): comparing through a
    ``memoryview`` goes element by element in CPython, at about 200 MB/s, and became the limit.
    """
    extra = {"Range": f"bytes={first}-{first + length - 1}"} if ranged else {}
    with client.stream("GET", url, headers={**headers, **extra}) as response:
        want = 206 if ranged else 200
        if response.status_code != want:
            response.read()
            raise BenchError(f"GET {url}: HTTP {response.status_code} (wanted {want}) {response.text[:200]}")
        if ranged:
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            wanted = f"bytes {first}-{first + length - 1}/{total}"
            got = response.headers.get("Content-Range")
            if got != wanted:
                raise BenchError(f"GET {url}: Content-Range {got!r}, wanted {wanted!r}")
        position = first
        stop = first + length
        for piece in response.iter_bytes():
            end = position + len(piece)
            if end > stop or data[position:end] != piece:
                raise BenchError(f"GET {url}: wrong bytes at {position}-{end} (a benchmark must not accept them)")
            position = end
    if position != stop:
        raise BenchError(f"GET {url}: {position - first} bytes, expected {length}")
    return length


def fetch(url: str, headers: dict[str, str], data: bytes, first: int, length: int) -> Callable[[httpx.Client], int]:
    """One ranged GET of ``data[first:first + length]`` as a job for one client."""
    return lambda client: get_checked(client, url, headers, data, first, length, ranged=True)


@dataclass
class Cell:
    source: Source
    workload: str

    @property
    def name(self) -> str:
        return f"{self.source.target.key}/{self.workload}"

    @property
    def family(self) -> str:
        return self.source.target.key

    @property
    def warm_key(self) -> str:
        return self.name


def workload_label(params: Params, workload: str) -> str:
    big = size_label(params.big_size)
    small = f"{params.small_count} × {size_label(params.small_size)}"
    return {
        BIG: f"{big}, one GET",
        BIG_PAR: f"{big} in {params.parallel} ranges, {params.parallel} connections",
        BIG_RANGES: f"{params.ranges} random {size_label(params.range_size)} ranges of {big}",
        SMALL: f"{small}, one GET each",
        SMALL_RANGES: f"{small}, bytes=0-{params.small_range - 1} of each",
    }[workload]


class Runner:
    def __init__(self, params: Params, content: Content, sampler: Sampler, abort: threading.Event) -> None:
        self.params = params
        self.content = content
        self.sampler = sampler
        self.abort = abort

    def jobs(self, cell: Cell, warm: bool) -> tuple[list[Callable[[httpx.Client], int]], int]:
        """The GETs of one run, as jobs for one client each (several for big ×N); and their count."""
        p, src, big = self.params, cell.source, self.content.big
        if cell.workload == BIG:
            return [lambda c: get_checked(c, src.big_url, src.headers, big, 0, len(big), ranged=False)], 1
        if cell.workload == BIG_PAR:
            step = -(-len(big) // p.parallel)
            parts = [(o, min(step, len(big) - o)) for o in range(0, len(big), step)]
            return [fetch(src.big_url, src.headers, big, o, n) for o, n in parts], len(parts)
        if cell.workload == BIG_RANGES:
            offsets = self.content.offsets[: 8 if warm else None]

            def ranges(client: httpx.Client) -> int:
                return sum(
                    get_checked(client, src.big_url, src.headers, big, o, p.range_size, ranged=True) for o in offsets
                )

            return [ranges], len(offsets)
        small = self.content.small
        count = min(50, p.small_count) if warm else p.small_count
        ranged = cell.workload == SMALL_RANGES

        def smalls(client: httpx.Client) -> int:
            total = 0
            for i in range(count):
                length = p.small_range if ranged else len(small[i])
                total += get_checked(client, src.small_urls[i], src.headers, small[i], 0, length, ranged=ranged)
            return total

        return [smalls], count

    def measure(self, cell: Cell, rep: int) -> Run:
        jobs, count = self.jobs(cell, rep < 0)
        ctx = Ctx(time.monotonic() + self.params.measure_timeout, self.abort, set())
        clients = [new_client() for _ in jobs]
        moved = [0] * len(jobs)

        def run_one(n: int) -> None:
            moved[n] = jobs[n](clients[n])

        def job() -> None:
            if len(jobs) == 1:
                run_one(0)
            else:
                run_parallel([functools.partial(run_one, n) for n in range(len(jobs))], ctx)

        try:
            timing = timed_run(cell.source.target, self.sampler, job)
        finally:
            for client in clients:
                client.close()
        return Run.of(cell.source.target.key, cell.workload, rep, sum(moved), count, timing)


def describe(cell: Cell, run: Run) -> str:
    rate = f"{run.nbytes / MB / run.seconds:8.1f} MB/s {run.count / run.seconds:8.1f} req/s"
    return f"{cell.source.label:<40} {cell.workload:<12} {rate}  cpu {run.server_cpu:.2f}s"


# --- reporting ------------------------------------------------------------------------------------


def report(params: Params, sources: list[Source], summaries: dict[str, dict[str, Any]]) -> str:
    headers = ["workload", "target", "MB/s median (min-max)", "requests/s", "CPU s/GB", *MEMORY_HEADERS]
    headers += ["÷ nginx", "÷ ceiling"]
    rows = []
    for workload in WORKLOADS:
        refs = {k: median_of(summaries.get(f"{k}/{workload}"), "mb_per_s") for k in ("nginx", "ceiling")}
        for src in sources:
            s = summaries.get(f"{src.target.key}/{workload}")
            if s is None:
                continue
            rate = median_of(s, "mb_per_s")
            rows.append(
                [
                    workload_label(params, workload),
                    src.label,
                    fmt_stat(s["mb_per_s"]),
                    fmt_stat(s["per_s"]),
                    fmt_stat(s["cpu_s_per_gb"], 2),
                    *memory_columns(s["peak"]),
                    ratio_text(rate, refs["nginx"]),
                    ratio_text(rate, refs["ceiling"]),
                ]
            )
    lines = [table(headers, rows)] if rows else ["(nothing measured)"]
    lines += [
        "",
        "Ratios are of medians in this run; requests/s is files/s for the small files. Every byte of every",
        "response was compared with what was placed.",
    ]
    return "\n".join(lines + issue_goals(params, summaries))


def issue_goals(params: Params, summaries: dict[str, dict[str, Any]]) -> list[str]:
    node = summaries.get(f"node/{BIG}")
    if node is None:
        return []
    out = ["", "Issue 9 targets (this run):"]
    big = size_label(params.big_size)
    rate, nginx = median_of(node, "mb_per_s"), median_of(summaries.get(f"nginx/{BIG}"), "mb_per_s")
    if rate and nginx:
        text = f"download of {big}, one connection: ≥ 0.5× nginx"
        out.append(goal("downloads", text, rate / nginx >= 0.5, f"×{rate / nginx:.2f}").line())
    cpu = float(node["cpu_s_per_gb"]["median"])
    text = f"node CPU per GB downloaded ≤ 1.5 s ({big}, one GET)"
    out.append(goal("downloads", text, cpu <= 1.5, f"{cpu:.2f} s").line())
    node_cells = [s for key, s in summaries.items() if key.startswith("node/")]
    anon = max(s["peak"]["RssAnon"] for s in node_cells)
    vm = max(s["peak"]["VmRSS"] for s in node_cells)
    measured = f"peak RssAnon {anon / MB:.0f} MB; VmRSS {vm / MB:.0f} MB"
    out.append(goal("downloads", "node anonymous memory below 150 MB (downloads)", anon < 150 * MB, measured).line())
    return out


# --- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench downloads",
        description="Verified downloads from the node against nginx static files and the stack's ceiling.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 MiB, 200 files, 1 repetition")
    parser.add_argument("--big-mib", type=int, help="size of the big file in MiB (default 256, quick 64)")
    parser.add_argument("--small-count", type=int, help="number of small files (default 1000, quick 200)")
    parser.add_argument("--small-kib", type=int, default=64, help="size of each small file in KiB (default 64)")
    parser.add_argument("--ranges", type=int, help="random 1 MiB ranges of the big file (default 128, quick 32)")
    parser.add_argument("--parallel", type=int, default=4, help="connections for the big file in ranges (default 4)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--nginx-sendfile", choices=("on", "off"), default="on", help="nginx sendfile (default on)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the timed runs (default 600)")
    add_run_args(parser, FAMILIES, peers=False)
    args = parser.parse_args(argv)
    families = chosen_families(parser, args, FAMILIES)
    params = Params(
        big_size=(args.big_mib or (64 if args.quick else 256)) * MiB,
        small_count=args.small_count or (200 if args.quick else 1000),
        small_size=args.small_kib * KiB,
        ranges=args.ranges or (32 if args.quick else 128),
        parallel=args.parallel,
        reps=args.reps or (1 if args.quick else 3),
        families=families,
        backend=args.backend,
        sendfile=args.nginx_sendfile == "on",
        time_limit=args.time_limit,
    )
    for ok, message in (
        (2 <= params.big_size // MiB <= 4096, "--big-mib must be 2..4096"),
        (1 <= params.small_count <= 100_000, "--small-count must be 1..100000"),
        (16 < args.small_kib <= 64 * 1024, "--small-kib must be 17..65536 (the small range is 16 KiB)"),
        (1 <= params.ranges <= 100_000, "--ranges must be 1..100000"),
        (1 <= params.parallel <= 32, "--parallel must be 1..32"),
        (1 <= params.reps <= 20, "--reps must be 1..20"),
    ):
        if not ok:
            parser.error(message)
    return params, args


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse_args(argv)
    runs: list[Run] = []
    failed: dict[str, str] = {}
    sources: list[Source] = []
    env: dict[str, Any] = {}
    interrupted = False
    with session("megavault-bench-downloads-", args.tmp_dir) as run, large_client_reads():
        try:
            log(f"work dir {run.workdir}; {size_label(params.big_size)} + {params.small_count} small files")
            content = Content.make(params)
            fam = params.families
            placed = [
                place_nginx(run.setup, run.sampler, content, params) if "nginx" in fam else None,
                place_ceiling(run.setup, run.sampler, content) if "ceiling" in fam else None,
                place_node(run.setup, run.sampler, content, params, run.abort) if "node" in fam else None,
            ]
            sources = [s for s in placed if s is not None]
            os.sync()
            env = environment(run.setup)
            env["nginx_sendfile"] = "on" if params.sendfile else "off"
            runner = Runner(params, content, run.sampler, run.abort)
            cells = [Cell(src, w) for w in WORKLOADS for src in sources]
            runs, failed = run_interleaved(
                cells, params.reps, runner.measure, describe, run.setup.skipped, params.time_limit
            )
        except (KeyboardInterrupt, Aborted):
            interrupted = True
            log("interrupted: stopping, reporting what was measured")
    load_end = os.getloadavg()
    summaries: dict[str, dict[str, Any]] = {}
    for src in sources:
        for workload in WORKLOADS:
            mine = [r for r in runs if r.row == src.target.key and r.cell == workload and r.rep >= 0]
            if mine:
                summaries[f"{src.target.key}/{workload}"] = summarise_runs(mine)
    first_goal = len(GOALS)
    print()
    print(report(params, sources, summaries))
    print_footer(
        run.setup, failed, [], (run.load_start, load_end), interrupted=interrupted, page_reports=run.page_reports
    )
    if not args.no_json:
        write_results(
            args.results_dir,
            "downloads",
            run.started,
            {
                "command": " ".join(["python", "-m", "bench", "downloads", *(argv or sys.argv[1:])]),
                "interrupted": interrupted,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(params).items()},
                "environment": env,
                "loadavg": {"start": run.load_start, "end": load_end},
                "page_reporting_kib": run.page_reports.as_json(),
                "cells": summaries,
                "goals": [vars(g) for g in GOALS[first_goal:]],
                "skipped": run.setup.skipped,
                "failed": failed,
                "runs": [vars(r) for r in runs],
            },
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
