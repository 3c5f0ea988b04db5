"""Upload benchmark: the node's upload API and tus endpoint against raw disk, nginx and ``@tus/server``.

Run ``python -m bench.uploads`` (``--quick`` for a smoke run, ``--help`` for the knobs). Everything
is measured in one run, interleaved (repetition 1 of every cell, then repetition 2, ...), because
the machines are noisy and only ratios inside one run mean anything. See ``bench/README.md``.

Workloads: one big file (256 MiB) and many small files (1,000 × 64 KiB) with 1 and 8 concurrent
clients. Each upload carries fresh bytes (random, stamped with a unique tag every 64 KiB), so the
node's content deduplication never short-cuts a measurement. Checksums are computed before the
timed region. The servers are child processes on 127.0.0.1; their RSS is sampled every 100 ms and
their CPU time read from ``/proc`` around every measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import queue
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import GOALS, MB, KiB, MiB, goal, size_label, table
from bench.peers import MEMORY_FIELDS, BenchError, Sampler
from bench.transfer import (
    GB,
    PIECE,
    REQUEST_TIMEOUT,
    Aborted,
    CeilingClient,
    Ctx,
    NginxClient,
    NodeApi,
    Setup,
    Stat,
    Target,
    TusClient,
    add_run_args,
    b3,
    chosen_families,
    chunk_checksums,
    drain_in_parallel,
    environment,
    known_checksum,
    log,
    new_client,
    new_tag,
    print_footer,
    random_bytes,
    run_interleaved,
    run_parallel,
    session,
    stamp,
    start_ceiling,
    start_nginx,
    start_node,
    start_tus,
    timed_run,
    write_results,
)

FAMILIES = ("raw", "dd", "nginx", "tus", "ceiling", "node-api", "node-tus")
BIG, SMALL = "big", "small"


# --- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    big_size: int = 256 * MiB
    small_count: int = 1000
    small_size: int = 64 * KiB
    reps: int = 3
    chunk_sizes: tuple[int, ...] = (8 * MiB, 1 * MiB)
    streams: int = 4
    concurrency: tuple[int, ...] = (1, 8)
    batch: int = 50
    families: tuple[str, ...] = FAMILIES
    backend: str = "lmdb"
    nginx_workers: int = 1
    time_limit: float = 480.0
    measure_timeout: float = 180.0
    warmup_files: int = 50
    tus_whole_file: bool = True  # also a tus row that sends the whole big file in one PATCH


# --- payloads ---------------------------------------------------------------------------------


@dataclass
class BigUpload:
    tag: int
    view: memoryview
    checksum: str = ""  # blake3 hex of the whole file, for the node and the ceiling
    chunk_checksums: dict[tuple[int, int], str] = field(default_factory=dict)  # (start, stop) -> hex

    @property
    def size(self) -> int:
        return len(self.view)

    def chunk_checksum(self, start: int, stop: int, ctx: Ctx) -> str:
        return known_checksum(self.chunk_checksums, self.view, start, stop, ctx)


@dataclass
class SmallUploads:
    tag: int
    files: list[bytes]
    checksums: list[str]

    @property
    def size(self) -> int:
        return sum(len(f) for f in self.files)


class Payloads:
    """One random buffer per workload, restamped for every upload (outside the timed region)."""

    def __init__(self, params: Params) -> None:
        rng = random.Random(0x6D656761)
        self.params = params
        self.big = random_bytes(rng, params.big_size)
        self.small = random_bytes(rng, params.small_count * params.small_size)

    def big_upload(self, *, checksums: bool, chunk_size: int | None) -> BigUpload:
        tag = new_tag()
        stamp(self.big, tag, len(self.big))
        upload = BigUpload(tag, memoryview(self.big))
        if checksums:
            upload.checksum = b3(upload.view, threads=True)
            if chunk_size:
                upload.chunk_checksums = chunk_checksums(upload.view, chunk_size)
        return upload

    def small_uploads(self, *, checksums: bool, count: int | None = None) -> SmallUploads:
        tag = new_tag()
        size = self.params.small_size
        stamp(self.small, tag, size)
        n = self.params.small_count if count is None else count
        files = [bytes(self.small[i * size : (i + 1) * size]) for i in range(n)]
        return SmallUploads(tag, files, [b3(f) for f in files] if checksums else [])


# --- raw disk ---------------------------------------------------------------------------------


def write_fsync(path: Path, data: memoryview | bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.write(fd, view[offset : offset + PIECE])
        os.fsync(fd)
    finally:
        os.close(fd)


class RawDisk:
    """The machine's limit: the same bytes written in-process with ``os.write`` + ``os.fsync``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "raw"
        self.dir.mkdir(parents=True, exist_ok=True)

    def big(self, clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        write_fsync(self.dir / f"big-{up.tag}.bin", up.view)

    def small(self, client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            write_fsync(self.dir / f"s{ups.tag}-{i:05d}.bin", ups.files[i])

    def dd(self, clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        path = self.dir / f"dd-{up.tag}.bin"
        argv = ["dd", "if=/dev/zero", f"of={path}", f"bs={MiB}", f"count={up.size // MiB}", "conv=fsync"]
        result = subprocess.run([*argv, "status=none"], capture_output=True, text=True, timeout=REQUEST_TIMEOUT)
        if result.returncode != 0:
            raise BenchError(f"dd failed: {result.stderr.strip()[:300]}")

    def reset(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)


# --- how each target takes the two workloads --------------------------------------------------

BigFn = Callable[[list[httpx.Client], BigUpload, Ctx], None]
SmallFn = Callable[[httpx.Client, SmallUploads, list[int], Ctx], None]


def nginx_fns(webdav: NginxClient) -> tuple[BigFn, SmallFn]:
    def big(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        webdav.put(clients[0], f"big-{up.tag}.bin", up.view)

    def small(client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            webdav.put(client, f"s{ups.tag}/f{i:05d}.bin", ups.files[i])

    return big, small


def ceiling_fns(ceiling: CeilingClient) -> tuple[BigFn, SmallFn]:
    def big(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        ceiling.put(clients[0], f"big-{up.tag}.bin", up.view, up.checksum)

    def small(client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            ceiling.put(client, f"s{ups.tag}-{i:05d}.bin", ups.files[i], ups.checksums[i])

    return big, small


def tus_big(tus: TusClient, patch_size: int) -> BigFn:
    def run(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        tus.upload(clients[0], f"big-{up.tag}.bin", up.view, patch_size, ctx)

    return run


def tus_small(tus: TusClient) -> SmallFn:
    """Creation-with-upload: one ``POST`` with the body (a PATCH only if the server took part of it)."""

    def run(client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            tus.send(client, f"s{ups.tag}-{i:05d}.bin", ups.files[i], len(ups.files[i]), ctx)

    return run


def node_api_big(api: NodeApi, chunk_size: int) -> BigFn:
    """init → PUT every chunk (over as many streams as there are clients) → complete."""

    def run(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        entry = api.entry(f"big-{up.tag}", f"big-{up.tag}.mp4", up.size, up.checksum, "video/mp4")
        (answer,) = api.init(clients[0], [entry], chunk_size)
        chunks: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        for chunk in answer["chunks"]:
            chunks.put(chunk)

        def stream(client: httpx.Client) -> None:
            while True:
                ctx.check()
                try:
                    chunk = chunks.get_nowait()
                except queue.Empty:
                    return
                start, stop = int(chunk["start"]), int(chunk["end"]) + 1
                api.put_chunk(client, chunk, up.view[start:stop], up.chunk_checksum(start, stop, ctx))

        if len(clients) == 1:
            stream(clients[0])
        else:
            run_parallel([functools.partial(stream, c) for c in clients], ctx)
        api.complete(clients[0], answer["uploadId"], up.checksum)

    return run


def node_api_one_request(api: NodeApi) -> SmallFn:
    """``POST upload/file`` for each file: its bytes as the body, its description in the query."""

    def run(client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            api.upload_single(client, f"s{ups.tag}-{i:05d}.jpg", ups.files[i], ups.checksums[i])

    return run


def node_api_small(api: NodeApi, *, complete_on_put: bool = False) -> SmallFn:
    """init for ``indices`` (one or a batch), then PUT + complete each file; ``complete_on_put``:
    the last chunk's ``PUT ?complete=true`` completes it instead (no ``complete`` request)."""

    def run(client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        entries = [
            api.entry(f"s{ups.tag}-{i}", f"s{ups.tag}-{i:05d}.jpg", len(ups.files[i]), ups.checksums[i], "image/jpeg")
            for i in indices
        ]
        answers = api.init(client, entries, None)
        for i, answer in zip(indices, answers, strict=True):
            ctx.check()
            chunks = answer["chunks"]
            for n, chunk in enumerate(chunks):
                start, stop = int(chunk["start"]), int(chunk["end"]) + 1
                data = ups.files[i] if (start, stop) == (0, len(ups.files[i])) else ups.files[i][start:stop]
                checksum = ups.checksums[i] if data is ups.files[i] else b3(data)
                api.put_chunk(client, chunk, data, checksum, complete=complete_on_put and n == len(chunks) - 1)
            if not (complete_on_put and chunks):
                api.complete(client, answer["uploadId"], ups.checksums[i])

    return run


# --- targets and variants ---------------------------------------------------------------------


@dataclass
class Variant:
    """A row of the report: one way of uploading to a target."""

    key: str
    family: str
    label: str
    target: Target
    big: BigFn | None = None
    small: SmallFn | None = None
    streams: int = 1
    small_unit: int = 1
    chunk_size: int | None = None
    checksums: bool = False


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tus_patch_sizes(params: Params) -> list[int]:
    """The chunk sizes, then the whole file in one PATCH (tus-js-client's default, @tus's best case)."""
    sizes = [c for c in params.chunk_sizes if c < params.big_size]
    return [*sizes, params.big_size] if params.tus_whole_file else sizes or [params.big_size]


def patch_label(params: Params, size: int) -> str:
    return f"{size_label(size)} (whole file)" if size == params.big_size else size_label(size)


def build(params: Params, setup: Setup, sampler: Sampler, peers_dir: Path) -> list[Variant]:
    """Start every selected server and describe the rows to measure; a failing target is skipped."""
    fam = params.families
    variants: list[Variant] = []
    if "raw" in fam or "dd" in fam:
        raw = RawDisk(setup.workdir)
        if "raw" in fam:
            target = Target("raw", "raw write+fsync", "in-process os.write+os.fsync", "fsync", reset=raw.reset)
            setup.targets["raw"] = target
            variants.append(Variant("raw", "raw", "raw os.write + fsync", target, raw.big, raw.small))
        if "dd" in fam:
            if shutil.which("dd") is None:
                setup.skipped["dd"] = "dd is not installed"
            else:
                target = Target("dd", "dd", "dd conv=fsync", "fsync", cpu=children_cpu, reset=raw.reset)
                setup.targets["dd"] = target
                variants.append(Variant("dd", "dd", "dd bs=1M conv=fsync (from /dev/zero)", target, raw.dd))

    if "nginx" in fam and (nginx := start_nginx(setup, sampler, workers=params.nginx_workers)):
        target = setup.targets["nginx"]
        variants.append(Variant("nginx", "nginx", f"{target.label} WebDAV PUT", target, *nginx_fns(NginxClient(nginx))))

    if "tus" in fam and (tus := start_tus(setup, sampler, peers_dir)):
        target = setup.targets["tus"]
        tus_client = TusClient(tus.endpoint, {}, "@tus/server", missing_is_404=False)
        for n, chunk in enumerate(tus_patch_sizes(params)):
            variants.append(
                Variant(
                    f"tus-{size_label(chunk)}",
                    "tus",
                    f"{target.label} PATCH {patch_label(params, chunk)}",
                    target,
                    tus_big(tus_client, chunk),
                    tus_small(tus_client) if n == 0 else None,
                    chunk_size=chunk,
                )
            )

    if "ceiling" in fam and (ceiling := start_ceiling(setup, sampler)):
        target = setup.targets["ceiling"]
        big, small = ceiling_fns(CeilingClient(ceiling))
        label = "ceiling: Hypercorn-trio ASGI PUT, BLAKE3 + fsync"
        variants.append(Variant("ceiling", "ceiling", label, target, big, small, checksums=True))

    node_families = [f for f in ("node-api", "node-tus") if f in fam]
    if node_families and (api := start_node(setup, sampler, node_families, params.backend)):
        variants += node_variants(params, setup.targets["node"], api)
    return variants


def node_variants(params: Params, target: Target, api: NodeApi) -> list[Variant]:
    fam = params.families
    variants: list[Variant] = []
    if "node-api" in fam:
        for n, chunk in enumerate(params.chunk_sizes):
            variants.append(
                Variant(
                    f"node-api-{size_label(chunk)}",
                    "node-api",
                    f"node API {size_label(chunk)} chunks",
                    target,
                    node_api_big(api, chunk),
                    node_api_small(api) if n == 0 else None,  # small files are one chunk whatever the size
                    chunk_size=chunk,
                    checksums=True,
                )
            )
        if params.streams > 1:
            for chunk in params.chunk_sizes:
                variants.append(
                    Variant(
                        f"node-api-{params.streams}x{size_label(chunk)}",
                        "node-api",
                        f"node API {params.streams} streams × {size_label(chunk)}",
                        target,
                        node_api_big(api, chunk),
                        streams=params.streams,
                        chunk_size=chunk,
                        checksums=True,
                    )
                )
        variants.append(
            Variant(
                "node-api-1req",
                "node-api",
                "node API, one request per file (upload/file)",
                target,
                small=node_api_one_request(api),
                checksums=True,
            )
        )
        if params.batch > 1:
            variants.append(
                Variant(
                    "node-api-batch",
                    "node-api",
                    f"node API, init for {params.batch} files at once, each completed by its PUT",
                    target,
                    small=node_api_small(api, complete_on_put=True),
                    small_unit=params.batch,
                    checksums=True,
                )
            )
    if "node-tus" in fam:
        tus = TusClient(api.base + "/tus/", api.auth, "node tus", missing_is_404=True)
        for n, chunk in enumerate(tus_patch_sizes(params)):
            variants.append(
                Variant(
                    f"node-tus-{size_label(chunk)}",
                    "node-tus",
                    f"node tus PATCH {patch_label(params, chunk)}",
                    target,
                    tus_big(tus, chunk),
                    tus_small(tus) if n == 0 else None,
                    chunk_size=chunk,
                )
            )
    return variants


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Measurement:
    variant: str
    workload: str  # "big" or "small"
    concurrency: int
    rep: int  # -1 = warm-up (not reported)
    seconds: float
    nbytes: int
    files: int
    server_cpu: float
    client_cpu: float
    peak: dict[str, int]  # VmRSS, RssAnon, RssFile peaks of the server during the run (bytes)


@dataclass
class Cell:
    variant: Variant
    workload: str
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.variant.key}/{self.workload}" + (f"/c{self.concurrency}" if self.workload == SMALL else "")

    @property
    def family(self) -> str:
        return self.variant.family

    @property
    def warm_key(self) -> str:
        """Warm-up once per family and workload: one big upload, a few small files, untimed."""
        return f"{self.variant.family}/{self.workload}"


class Runner:
    def __init__(self, params: Params, payloads: Payloads, sampler: Sampler, abort: threading.Event) -> None:
        self.params = params
        self.payloads = payloads
        self.sampler = sampler
        self.abort = abort
        self.notes: set[str] = set()

    def measure(self, cell: Cell, rep: int) -> Measurement:
        """One timed run; payload preparation, client creation and cleanup stay outside the timing."""
        variant, target = cell.variant, cell.variant.target
        concurrency = 1 if rep < 0 else cell.concurrency
        ctx = Ctx(time.monotonic() + self.params.measure_timeout, self.abort, self.notes)
        clients: list[httpx.Client] = []
        try:
            if cell.workload == BIG:
                assert variant.big is not None
                big = self.payloads.big_upload(checksums=variant.checksums, chunk_size=variant.chunk_size)
                clients = [new_client() for _ in range(variant.streams)]
                nbytes, files = big.size, 1
                big_fn = variant.big

                def job() -> None:
                    big_fn(clients, big, ctx)

            else:
                assert variant.small is not None
                count = self.params.warmup_files if rep < 0 else None
                small = self.payloads.small_uploads(checksums=variant.checksums, count=count)
                clients = [new_client() for _ in range(concurrency)]
                nbytes, files = small.size, len(small.files)
                step = variant.small_unit
                units = [list(range(i, min(i + step, files))) for i in range(0, files, step)]
                small_fn = variant.small

                def job() -> None:
                    drain_in_parallel(clients, units, lambda client, unit: small_fn(client, small, unit, ctx), ctx)

            timing = timed_run(target, self.sampler, job)
        finally:
            for client in clients:
                client.close()
            target.reset()
            os.sync()  # no dirty pages of one target left to slow the next one down
        return Measurement(
            variant.key,
            cell.workload,
            concurrency,
            rep,
            timing.seconds,
            nbytes,
            files,
            timing.server_cpu,
            timing.client_cpu,
            timing.peak,
        )


def plan_cells(params: Params, variants: list[Variant]) -> list[Cell]:
    cells: list[Cell] = []
    for variant in variants:
        if variant.big is not None:
            cells.append(Cell(variant, BIG, variant.streams))
        if variant.small is not None:
            cells.extend(Cell(variant, SMALL, c) for c in params.concurrency)
    return cells


def describe(cell: Cell, m: Measurement) -> str:
    if m.workload == BIG:
        rate = f"{m.nbytes / MB / m.seconds:8.1f} MB/s"
    else:
        rate = f"{m.files / m.seconds:8.1f} files/s (c={m.concurrency})"
    rss = f"rss {m.peak['VmRSS'] / MiB:.0f} MiB (anon {m.peak['RssAnon'] / MiB:.0f})" if m.peak["VmRSS"] else ""
    return f"{cell.variant.label:<44} {rate}  cpu {m.server_cpu:.2f}s  {rss}"


# --- reporting --------------------------------------------------------------------------------


def rate_of(m: Measurement) -> float:
    """MB/s for the big file, files/s for small files."""
    return m.nbytes / MB / m.seconds if m.workload == BIG else m.files / m.seconds


def summarise(
    params: Params, variants: list[Variant], sampler: Sampler, results: list[Measurement]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for variant in variants:
        mine = [m for m in results if m.variant == variant.key]
        row: dict[str, Any] = {
            "key": variant.key,
            "family": variant.family,
            "label": variant.label,
            "target": variant.target.key,
            "durable": variant.target.durable,
            "streams": variant.streams,
            "chunk_size": variant.chunk_size,
            "cells": {},
        }
        for workload, conc in [(BIG, variant.streams), *((SMALL, c) for c in params.concurrency)]:
            ms = [m for m in mine if m.workload == workload and m.concurrency == conc]
            if not ms:
                continue
            rate = [rate_of(m) for m in ms]
            cpu = [m.server_cpu / (m.nbytes / GB) for m in ms]
            row["cells"][BIG if workload == BIG else f"small-c{conc}"] = {
                "unit": "MB/s" if workload == BIG else "files/s",
                "rate": vars(Stat.of(rate)),
                "cpu_s_per_gb": vars(Stat.of(cpu)),
                "client_cpu_s_per_gb": statistics.median(m.client_cpu / (m.nbytes / GB) for m in ms),
                "peak": {k: max(m.peak[k] for m in ms) for k in MEMORY_FIELDS},
                "seconds": [m.seconds for m in ms],
            }
        memory = sampler.summary(variant.target.key)
        if memory is not None:
            row["memory_start"], row["memory_peak_whole_run"] = memory
        rows.append(row)
    return rows


def _rate(row: dict[str, Any], cell: str) -> float | None:
    c = row["cells"].get(cell)
    return float(c["rate"]["median"]) if c else None


def _row_peak(row: dict[str, Any], key: str) -> int:
    return max((c["peak"][key] for c in row["cells"].values()), default=0)


def cell_names(params: Params) -> list[str]:
    return [BIG, *(f"small-c{c}" for c in params.concurrency)]


REFERENCES = ("nginx", "tus", "ceiling", "raw")


def ratios(params: Params, rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Medians divided by nginx, by the best @tus/server row, by the ceiling and by raw write+fsync."""
    refs: dict[str, dict[str, float | None]] = {}
    for cell in cell_names(params):
        by_family: dict[str, list[float]] = {}
        for row in rows:
            rate = _rate(row, cell)
            if rate is not None:
                by_family.setdefault(row["family"], []).append(rate)
        refs[cell] = {f: max(by_family[f]) if f in by_family else None for f in REFERENCES}
    out: dict[str, dict[str, float | None]] = {}
    for row in rows:
        if row["family"] in ("raw", "dd"):
            continue
        entry: dict[str, float | None] = {}
        for cell, ref in refs.items():
            rate = _rate(row, cell)
            for family, value in ref.items():
                entry[f"{cell}/{family}"] = rate / value if rate is not None and value else None
        out[row["key"]] = entry
    return out


def _cell_text(row: dict[str, Any], cell: str, what: str, digits: int = 0) -> str:
    c = row["cells"].get(cell)
    return Stat(**c[what]).fmt(digits) if c else "-"


def report(params: Params, rows: list[dict[str, Any]], table_ratios: dict[str, dict[str, float | None]]) -> str:
    big = size_label(params.big_size)
    small = f"{params.small_count} × {size_label(params.small_size)}"
    c_lo, c_hi = min(params.concurrency), max(params.concurrency)
    seq, par = f"small-c{c_lo}", f"small-c{c_hi}"
    measured = [r for r in rows if r["cells"]]
    headers = [
        "target",
        f"{big} MB/s median (min-max)",
        "CPU s/GB",
        f"{small} files/s ×{c_lo}",
        f"files/s ×{c_hi}",
        "CPU s/GB (small)",
        "VmRSS MiB start→peak",
        "RssAnon MiB peak",
        "durable",
    ]
    table_rows = []
    for row in measured:
        if "memory_start" in row:
            vm = f"{row['memory_start']['VmRSS'] / MiB:.0f}→{_row_peak(row, 'VmRSS') / MiB:.0f}"
            anon = f"{_row_peak(row, 'RssAnon') / MiB:.0f}"
        else:
            vm = anon = "-"
        table_rows.append(
            [
                row["label"],
                _cell_text(row, BIG, "rate"),
                _cell_text(row, BIG, "cpu_s_per_gb", 2),
                _cell_text(row, seq, "rate"),
                _cell_text(row, par, "rate") if par != seq else "-",
                _cell_text(row, seq, "cpu_s_per_gb", 1),
                vm,
                anon,
                row["durable"],
            ]
        )
    lines = [table(headers, table_rows)]
    ratio_rows = [r for r in measured if r["key"] in table_ratios]
    if ratio_rows:
        cells = [BIG, seq] + ([par] if par != seq else [])
        names = {BIG: big, seq: f"files/s ×{c_lo}", par: f"files/s ×{c_hi}"}
        headers = ["target"] + [f"{names[c]} ÷ {ref}" for c in cells for ref in REFERENCES]
        ratio_table = []
        for row in ratio_rows:
            r = table_ratios[row["key"]]
            values = [r.get(f"{c}/{ref}") for c in cells for ref in REFERENCES]
            ratio_table.append([row["label"], *(f"{v:.2f}" if v is not None else "-" for v in values)])
        lines += [
            "",
            "Ratios of medians (÷ nginx, ÷ the best @tus/server row, ÷ the stack's ceiling, ÷ raw write+fsync):",
            "",
            table(headers, ratio_table),
        ]
    lines += issue_goals(params, rows, table_ratios)
    return "\n".join(lines)


def _verdict(text: str, met: bool | None, measured: str) -> str:
    return goal("uploads", text, met, measured).line()


def issue_goals(
    params: Params, rows: list[dict[str, Any]], table_ratios: dict[str, dict[str, float | None]]
) -> list[str]:
    """Issue 9's upload targets, checked against this run."""
    by_key = {r["key"]: r for r in rows if r["cells"]}
    node_rows = [r for r in by_key.values() if r["target"] == "node"]
    if not node_rows:
        return []
    big = size_label(params.big_size)
    out = ["", "Issue 9 targets (this run):"]
    api_big = [r for r in node_rows if r["family"] == "node-api" and BIG in r["cells"]]
    one = {r["chunk_size"]: r for r in api_big if r["streams"] == 1}
    many = {r["chunk_size"]: r for r in api_big if r["streams"] > 1}
    r8, r1 = one.get(8 * MiB), one.get(1 * MiB)
    if r8 is not None:
        rt = table_ratios[r8["key"]]
        for ref, floor, name in (("ceiling", 0.9, "the stack's ceiling"), ("nginx", 0.7, "nginx")):
            value = rt.get(f"{BIG}/{ref}")
            text = f"{big} upload in 8 MiB chunks ≥ {floor}× {name}"
            out.append(_verdict(text, None if value is None else value >= floor, f"×{value:.2f}" if value else "-"))
    if r8 is not None and r1 is not None:
        rate8, rate1 = _rate(r8, BIG), _rate(r1, BIG)
        if rate8 and rate1:
            ratio = rate1 / rate8
            out.append(_verdict("1 MiB chunks ≥ 0.7× the 8 MiB figure", ratio >= 0.7, f"×{ratio:.2f}"))
    for chunk, row in sorted(many.items(), reverse=True):
        single = one.get(chunk)
        r_many, r_one = _rate(row, BIG), _rate(single, BIG) if single else None
        if r_many and r_one:
            ratio = r_many / r_one
            text = f"{row['streams']} parallel streams × {size_label(chunk)} ≥ 1.0× one stream"
            out.append(_verdict(text, ratio >= 1.0, f"×{ratio:.2f}"))
    for chunk, limit in ((8 * MiB, 2.0), (1 * MiB, 3.0)):
        if chunk in one:
            cpu = float(one[chunk]["cells"][BIG]["cpu_s_per_gb"]["median"])
            text = f"node CPU per GB uploaded in {size_label(chunk)} chunks ≤ {limit:.1f} s"
            out.append(_verdict(text, cpu <= limit, f"{cpu:.2f} s"))
    seq = f"small-c{min(params.concurrency)}"
    small = f"{params.small_count} × {size_label(params.small_size)} with one client"
    for row in node_rows:
        if seq not in row["cells"] or min(params.concurrency) != 1:
            continue
        rt = table_ratios[row["key"]]
        tus, ngx = rt.get(f"{seq}/tus"), rt.get(f"{seq}/nginx")
        if tus is not None:
            out.append(_verdict(f"{small}, {row['label']}: ≥ 2× @tus/server", tus >= 2, f"×{tus:.2f}"))
        if ngx is not None:
            out.append(_verdict(f"{small}, {row['label']}: ≥ 0.5× nginx", ngx >= 0.5, f"×{ngx:.2f}"))
    anon = max(_row_peak(r, "RssAnon") for r in node_rows)
    vm = max(_row_peak(r, "VmRSS") for r in node_rows)
    measured = f"peak RssAnon {anon / MB:.0f} MB; VmRSS {vm / MB:.0f} MB counts LMDB's mapped pages too"
    out.append(_verdict("node anonymous memory below 150 MB (uploads)", anon < 150 * MB, measured))
    return out


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.uploads",
        description="Upload throughput of the node against raw disk, nginx WebDAV and @tus/server.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 MiB, 200 files, 1 repetition")
    parser.add_argument("--reps", type=int, help="repetitions per cell (default 3)")
    parser.add_argument("--big-mib", type=int, help="size of the big file in MiB (default 256)")
    parser.add_argument("--small-count", type=int, help="number of small files (default 1000)")
    parser.add_argument("--small-kib", type=int, default=64, help="size of each small file in KiB (default 64)")
    parser.add_argument("--chunk-mib", default="8,1", help="node chunk / tus PATCH sizes in MiB (default 8,1)")
    parser.add_argument("--streams", type=int, default=4, help="parallel chunk streams of one file (default 4)")
    parser.add_argument("--concurrency", default="1,8", help="concurrent clients for small files (default 1,8)")
    parser.add_argument("--batch", type=int, default=50, help="files per upload/init in the batched row (0: off)")
    parser.add_argument("--no-tus-whole-file", action="store_true", help="no tus rows with the big file in one PATCH")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes (default 1)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=480.0,
        help="seconds for the timed runs, warm-ups excluded (default 480)",
    )
    add_run_args(parser, FAMILIES)
    args = parser.parse_args(argv)

    families = chosen_families(parser, args, FAMILIES)
    chunk_sizes = tuple(int(float(c) * MiB) for c in args.chunk_mib.split(",") if c.strip())
    concurrency = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    big_mib = args.big_mib or (64 if args.quick else 256)
    params = Params(
        big_size=big_mib * MiB,
        small_count=args.small_count or (200 if args.quick else 1000),
        small_size=args.small_kib * KiB,
        reps=args.reps or (1 if args.quick else 3),
        chunk_sizes=chunk_sizes,
        streams=args.streams,
        concurrency=concurrency,
        batch=args.batch,
        families=families,
        backend=args.backend,
        nginx_workers=args.nginx_workers,
        time_limit=args.time_limit,
        tus_whole_file=not args.no_tus_whole_file,
    )
    checks = [
        (1 <= big_mib <= 4096, "--big-mib must be 1..4096"),
        (1 <= params.small_count <= 100_000, "--small-count must be 1..100000"),
        (1 <= args.small_kib <= 64 * 1024, "--small-kib must be 1..65536"),
        (1 <= params.reps <= 20, "--reps must be 1..20"),
        (
            bool(chunk_sizes) and all(64 * KiB <= c <= 64 * MiB for c in chunk_sizes),
            "chunk sizes: 64 KiB..64 MiB",
        ),
        (1 <= params.streams <= 32, "--streams must be 1..32"),
        (bool(concurrency) and all(1 <= c <= 64 for c in concurrency), "--concurrency values must be 1..64"),
        (0 <= params.batch <= 1000, "--batch must be 0..1000"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return params, args


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse_args(argv)
    results: list[Measurement] = []
    failed: dict[str, str] = {}
    variants: list[Variant] = []
    notes: list[str] = []
    env: dict[str, Any] = {}
    interrupted = False
    with session("megavault-bench-uploads-", args.tmp_dir) as run:
        try:
            log(
                f"work dir {run.workdir}; preparing {size_label(params.big_size)} + {params.small_count} × "
                f"{size_label(params.small_size)} of random data"
            )
            payloads = Payloads(params)
            variants = build(params, run.setup, run.sampler, args.peers_dir)
            # Disk warm-up before anything is timed: the first large writes after idle (and into memory
            # the VM has not touched yet) are several times slower here. Four big writes with fsync.
            log("warm-up: writing the big file 4 times with fsync")
            for _ in range(4):
                write_fsync(run.workdir / "warmup.bin", memoryview(payloads.big))
                (run.workdir / "warmup.bin").unlink()
            os.sync()
            env = environment(run.setup)
            runner = Runner(params, payloads, run.sampler, run.abort)
            try:
                results, failed = run_interleaved(
                    plan_cells(params, variants),
                    params.reps,
                    runner.measure,
                    describe,
                    run.setup.skipped,
                    params.time_limit,
                )
            finally:
                notes = sorted(runner.notes)
        except (KeyboardInterrupt, Aborted):
            interrupted = True
            run.abort.set()
            log("interrupted: stopping, reporting what was measured")
    load_end = os.getloadavg()
    rows = summarise(params, variants, run.sampler, results)
    table_ratios = ratios(params, rows)
    first_goal = len(GOALS)
    print()
    print(report(params, rows, table_ratios))
    print_footer(
        run.setup, failed, notes, (run.load_start, load_end), interrupted=interrupted, page_reports=run.page_reports
    )

    if not args.no_json:
        write_results(
            args.results_dir,
            "uploads",
            run.started,
            {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": " ".join([Path(sys.executable).name, "-m", "bench.uploads", *(argv or sys.argv[1:])]),
                "interrupted": interrupted,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(params).items()},
                "units": {"MB": MB, "GB": GB, "rss": "bytes"},
                "environment": env,
                "loadavg": {"start": run.load_start, "end": load_end},
                "page_reporting_kib": run.page_reports.as_json(),
                "rows": rows,
                "ratios": table_ratios,
                "goals": [vars(g) for g in GOALS[first_goal:]],
                "skipped": run.setup.skipped,
                "failed": failed,
                "notes": notes,
                "measurements": [vars(m) for m in results],
            },
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
