"""Photo-library benchmark: a phone's first backup, against nginx, ``@tus/server`` and the ceiling.

``python -m bench photos`` (``--quick`` for a smoke run, ``--help`` for the knobs). 500 files of
photo and video sizes (seeded: most 1-6 MiB uniform, 1% of 50-200 MiB), uploaded the way a
phone's background uploader does it: 4 files in flight, each worker thread with its own reused
keep-alive connection, taking the next file off a shared queue. Every target gets the same files:

- the node's chunk API (``upload/init`` → ``PUT`` each 8 MiB chunk → ``upload/complete``), and
  again as its SDK sends it (the last chunk's ``PUT ?complete=true`` completes the file: a photo
  of one chunk is ``init`` + one ``PUT``);
- the node's tus endpoint (``POST`` creation, then ``PATCH`` pieces of 8 MiB; a file that fits one
  PATCH goes with creation-with-upload, one request);
- the node's one-request endpoint (``POST /upload/file?name=…&folder=…&checksum=…`` with the raw
  body) for files within its limit, the chunk API for the rest; skipped with a note where the node
  answers 404;
- nginx WebDAV ``PUT``, ``@tus/server`` (as the node's tus row) and the stack's ceiling
  (``bench/ceiling.py``: one verified ``PUT``, BLAKE3 + fsync).

Fresh bytes each run: all files are windows of one random buffer, file ``i`` starting ``16·i``
bytes in, and before each run a 16-byte stamp (run tag, file, block) is written at the start of
each file and every 64 KiB inside it. The stamps of different files never overlap (they sit at
different offsets modulo 64 KiB), so no file and no chunk repeats across runs and the node's
deduplication never short-cuts a run, while the buffer stays the size of the largest file.
Checksums (whole file and 8 MiB chunks, where a target needs them) are computed before the timed
region. Repetitions are interleaved (run 1 of every target, then run 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import GOALS, MB, MiB, goal, size_label, table
from bench.peers import BenchError, Sampler
from bench.transfer import (
    GB,
    MEMORY_HEADERS,
    STAMP_EVERY,
    Aborted,
    CeilingClient,
    Ctx,
    NginxClient,
    NodeApi,
    Run,
    Setup,
    Target,
    TusClient,
    add_run_args,
    b3,
    chosen_families,
    chunk_checksums,
    drain_in_parallel,
    environment,
    fmt_stat,
    known_checksum,
    log,
    median_of,
    memory_columns,
    new_client,
    new_tag,
    print_footer,
    random_bytes,
    ratio_text,
    run_interleaved,
    session,
    start_ceiling,
    start_nginx,
    start_node,
    start_tus,
    summarise_runs,
    timed_run,
    write_results,
)

FAMILIES = ("nginx", "tus", "ceiling", "node-api", "node-api-put", "node-tus", "node-file")
NODE_FAMILIES = ("node-api", "node-api-put", "node-tus", "node-file")
SLOT = 16  # bytes between the starts of consecutive files in the shared buffer (one stamp)
MAX_FILES = STAMP_EVERY // SLOT  # beyond this, the stamps of two files would fall on each other


# --- the library ------------------------------------------------------------------------------


QUICK_FILES = 60  # --quick: 60 files, one of them a 50 MiB video
DEFAULT_FILES = 500


def library_shape(
    quick: bool, files: int | None = None, videos: int | None = None
) -> tuple[int, int | None, tuple[int, int]]:
    """The library's file count, video count (``None``: 1% of the files) and video size range,
    as ``--quick``, ``--files`` and ``--videos`` set them (also used by ``bench/client.py``)."""
    return (
        files or (QUICK_FILES if quick else DEFAULT_FILES),
        videos if videos is not None else (1 if quick else None),
        (50 * MiB, 50 * MiB) if quick else (50 * MiB, 200 * MiB),
    )


def photo_sizes(
    count: int,
    seed: int,
    *,
    big_count: int | None = None,
    small: tuple[int, int] = (1 * MiB, 6 * MiB),
    big: tuple[int, int] = (50 * MiB, 200 * MiB),
) -> list[int]:
    """File sizes of a photo library: ``small`` uniform, and ``big_count`` (default 1%, at least
    one) videos of ``big`` sizes at seeded positions. The same seed gives the same list."""
    rng = random.Random(seed)
    sizes = [rng.randint(*small) for _ in range(count)]
    videos = max(1, round(count / 100)) if big_count is None else big_count
    for position in rng.sample(range(count), min(videos, count)):
        sizes[position] = rng.randint(*big)
    return sizes


@dataclass
class PhotoFile:
    index: int
    name: str
    view: memoryview
    checksum: str = ""
    chunks: dict[tuple[int, int], str] = field(default_factory=dict)

    def chunk_checksum(self, ctx: Ctx) -> Callable[[int, int], str]:
        return lambda start, stop: known_checksum(self.chunks, self.view, start, stop, ctx)


class Library:
    """Every file as a window of one random buffer (see the module's docstring)."""

    def __init__(self, sizes: Sequence[int], seed: int) -> None:
        if len(sizes) > MAX_FILES:
            raise ValueError(f"at most {MAX_FILES} files")
        self.sizes = list(sizes)
        self.buf = random_bytes(random.Random(seed), max(sizes) + SLOT * len(sizes))
        self.view = memoryview(self.buf)

    def restamp(self, tag: int) -> None:
        """New content for every file: a (tag, file, block) stamp at its start and every 64 KiB."""
        for i, size in enumerate(self.sizes):
            base = SLOT * i
            for block, offset in enumerate(range(0, size, STAMP_EVERY)):
                n = min(SLOT, size - offset)
                self.buf[base + offset : base + offset + n] = struct.pack("<QII", tag, i, block)[:n]

    def file(self, i: int) -> memoryview:
        return self.view[SLOT * i : SLOT * i + self.sizes[i]]

    def name(self, tag: int, i: int) -> str:
        kind = "VID" if self.sizes[i] > 6 * MiB else "IMG"
        return f"{kind}_{tag:x}_{i:04d}.{'mp4' if kind == 'VID' else 'jpg'}"

    def write(self, folder: Path, tag: int) -> list[Path]:
        """Restamp with ``tag`` and write every file into ``folder`` (for a client that syncs a folder)."""
        self.restamp(tag)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(len(self.sizes)):
            path = folder / self.name(tag, i)
            path.write_bytes(self.file(i))
            paths.append(path)
        return paths

    def files(self, tag: int, indices: Sequence[int], *, checksums: bool, chunk_size: int | None) -> list[PhotoFile]:
        """Restamp with ``tag``, then the files with the checksums a target needs (untimed)."""
        self.restamp(tag)
        out = []
        for i in indices:
            item = PhotoFile(i, self.name(tag, i), self.file(i))
            if checksums:
                item.checksum = b3(item.view, threads=len(item.view) > 16 * MiB)
                if chunk_size and len(item.view) > chunk_size:
                    item.chunks = chunk_checksums(item.view, chunk_size)
                elif chunk_size:
                    item.chunks = {(0, len(item.view)): item.checksum}
            out.append(item)
        return out


# --- rows -------------------------------------------------------------------------------------

SendFn = Callable[[httpx.Client, PhotoFile, Ctx], None]


@dataclass
class Row:
    key: str
    family: str
    label: str
    target: Target
    send: SendFn
    checksums: bool = False

    @property
    def name(self) -> str:
        return self.key

    @property
    def warm_key(self) -> str:
        return self.key


@dataclass(frozen=True)
class Params:
    files: int = 500
    seed: int = 9
    big_count: int | None = None  # 1% of the files
    big_range: tuple[int, int] = (50 * MiB, 200 * MiB)
    in_flight: int = 4
    chunk_size: int = 8 * MiB
    single_max: int = 16 * MiB
    reps: int = 2
    families: tuple[str, ...] = FAMILIES
    backend: str = "lmdb"
    time_limit: float = 1200.0
    measure_timeout: float = 900.0
    warmup_files: int = 12

    def sizes(self) -> list[int]:
        return photo_sizes(self.files, self.seed, big_count=self.big_count, big=self.big_range)


def tus_send(tus: TusClient, patch_size: int) -> SendFn:
    return lambda client, f, ctx: tus.send(client, f.name, f.view, patch_size, ctx)


def node_rows(params: Params, setup: Setup, api: NodeApi) -> list[Row]:
    target = setup.targets["node"]
    chunk = params.chunk_size
    rows: list[Row] = []

    def chunks_then(complete_on_put: bool) -> SendFn:
        def send(client: httpx.Client, f: PhotoFile, ctx: Ctx) -> None:
            checksum = f.chunk_checksum(ctx)
            api.upload(client, f.name, f.view, f.checksum, checksum, chunk, ctx, complete_on_put=complete_on_put)

        return send

    chunked, completed_by_put = chunks_then(False), chunks_then(True)

    if "node-api" in params.families:
        rows.append(Row("node-api", "node-api", f"node API {size_label(chunk)} chunks", target, chunked, True))
    if "node-api-put" in params.families:
        label = f"node API {size_label(chunk)} chunks, last PUT completes"
        rows.append(Row("node-api-put", "node-api-put", label, target, completed_by_put, True))
    if "node-tus" in params.families:
        tus = TusClient(api.base + "/tus/", api.auth, "node tus", missing_is_404=True)
        label = f"node tus PATCH {size_label(chunk)}"
        rows.append(
            Row("node-tus", "node-tus", label, target, lambda c, f, ctx: tus.send(c, f.name, f.view, chunk, ctx))
        )
    missing = api.single_upload_missing() if "node-file" in params.families else None
    if missing:
        setup.skipped["node-file"] = missing
    elif "node-file" in params.families:

        def single(client: httpx.Client, f: PhotoFile, ctx: Ctx) -> None:
            if len(f.view) <= params.single_max:
                api.upload_single(client, f.name, f.view, f.checksum)
            else:
                chunked(client, f, ctx)

        label = f"node upload/file ≤ {size_label(params.single_max)}, else chunks"
        rows.append(Row("node-file", "node-file", label, target, single, True))
    return rows


def build(params: Params, setup: Setup, sampler: Sampler, peers_dir: Path) -> list[Row]:
    fam = params.families
    rows: list[Row] = []
    if "nginx" in fam and (nginx := start_nginx(setup, sampler)):
        webdav = NginxClient(nginx)
        label = f"{setup.targets['nginx'].label} WebDAV PUT"
        rows.append(
            Row("nginx", "nginx", label, setup.targets["nginx"], lambda c, f, ctx: webdav.put(c, f.name, f.view))
        )
    if "tus" in fam and (tus_peer := start_tus(setup, sampler, peers_dir)):
        tus = TusClient(tus_peer.endpoint, {}, "@tus/server", missing_is_404=False)
        chunk = params.chunk_size
        label = f"{setup.targets['tus'].label} PATCH {size_label(chunk)}"
        rows.append(
            Row("tus", "tus", label, setup.targets["tus"], lambda c, f, ctx: tus.send(c, f.name, f.view, chunk, ctx))
        )
    if "ceiling" in fam and (ceiling_peer := start_ceiling(setup, sampler)):
        ceiling = CeilingClient(ceiling_peer)

        def ceiling_put(client: httpx.Client, f: PhotoFile, ctx: Ctx) -> None:
            ceiling.put(client, f.name, f.view, f.checksum)

        rows.append(
            Row("ceiling", "ceiling", "ceiling: one PUT, BLAKE3 + fsync", setup.targets["ceiling"], ceiling_put, True)
        )
    wanted = [f for f in NODE_FAMILIES if f in fam]
    if wanted and (api := start_node(setup, sampler, wanted, params.backend)):
        rows += node_rows(params, setup, api)
    return rows


# --- measuring --------------------------------------------------------------------------------


class Runner:
    def __init__(self, params: Params, library: Library, sampler: Sampler, abort: Any) -> None:
        self.params = params
        self.library = library
        self.sampler = sampler
        self.abort = abort
        self.notes: set[str] = set()
        small = [i for i, size in enumerate(library.sizes) if size <= 6 * MiB]
        self.warmup = small[: params.warmup_files]

    def measure(self, row: Row, rep: int) -> Run:
        indices = self.warmup if rep < 0 else range(len(self.library.sizes))
        files = self.library.files(new_tag(), indices, checksums=row.checksums, chunk_size=self.params.chunk_size)
        ctx = Ctx(time.monotonic() + self.params.measure_timeout, self.abort, self.notes)
        clients = [new_client() for _ in range(self.params.in_flight)]
        try:

            def job() -> None:
                drain_in_parallel(clients, files, lambda client, f: row.send(client, f, ctx), ctx)

            timing = timed_run(row.target, self.sampler, job)
        finally:
            for client in clients:
                client.close()
            row.target.reset()
            os.sync()  # no dirty pages of one target left to slow the next one down
        return Run.of(row.key, "library", rep, sum(len(f.view) for f in files), len(files), timing)


def describe(row: Row, run: Run) -> str:
    rate = f"{run.count / run.seconds:6.1f} files/s {run.nbytes / MB / run.seconds:7.1f} MB/s"
    memory = f"anon {run.peak['RssAnon'] / MiB:.0f} MiB, rss {run.peak['VmRSS'] / MiB:.0f} MiB"
    return f"{row.label:<44} {rate}  cpu {run.server_cpu:.1f}s  {memory}"


# --- reporting --------------------------------------------------------------------------------

REFERENCES = (("nginx", "nginx"), ("tus", "@tus/server"), ("ceiling", "ceiling"))


def report(params: Params, rows: list[Row], summaries: dict[str, dict[str, Any]], sizes: Sequence[int]) -> str:
    videos = sum(1 for s in sizes if s > 6 * MiB)
    lo, hi = params.big_range
    big = size_label(lo) if lo == hi else f"{lo // MiB}-{hi // MiB} MiB"
    headers = ["target", "files/s median (min-max)", "MB/s", "CPU s/GB", *MEMORY_HEADERS, "durable"]
    lines = [
        f"{len(sizes)} files ({len(sizes) - videos} photos of 1-6 MiB, {videos} of {big}), "
        f"{sum(sizes) / MB:,.0f} MB, {params.in_flight} in flight, seed {params.seed}:",
        "",
    ]
    measured = [r for r in rows if r.key in summaries]
    lines.append(
        table(
            headers,
            [
                [
                    r.label,
                    fmt_stat(summaries[r.key]["per_s"], 1),
                    fmt_stat(summaries[r.key]["mb_per_s"]),
                    fmt_stat(summaries[r.key]["cpu_s_per_gb"], 2),
                    *memory_columns(summaries[r.key]["peak"]),
                    r.target.durable,
                ]
                for r in measured
            ],
        )
    )
    refs = {key: median_of(summaries.get(key), "per_s") for key, _ in REFERENCES}
    ratio_rows = [
        [r.label, *(ratio_text(median_of(summaries[r.key], "per_s"), refs[key]) for key, _ in REFERENCES)]
        for r in measured
    ]
    if ratio_rows:
        lines += [
            "",
            "Ratios of medians (the same files for every target: files/s and MB/s ratios are the same):",
            "",
            table(["target", *(f"÷ {name}" for _, name in REFERENCES)], ratio_rows),
        ]
    lines += issue_goals(measured, summaries, refs)
    return "\n".join(lines)


def issue_goals(rows: list[Row], summaries: dict[str, dict[str, Any]], refs: dict[str, float | None]) -> list[str]:
    node = [r for r in rows if r.target.key == "node"]
    if not node:
        return []
    out = ["", "Issue 9 targets (this run):"]
    for row in node:
        rate = median_of(summaries[row.key], "per_s")
        mbs = median_of(summaries[row.key], "mb_per_s")
        tus_rate, tus_mbs = refs["tus"], median_of(summaries.get("tus"), "mb_per_s")
        if rate and tus_rate and mbs and tus_mbs:
            ahead = rate > tus_rate and mbs > tus_mbs
            measured = f"×{rate / tus_rate:.2f} files/s, ×{mbs / tus_mbs:.2f} MB/s"
            out.append(goal("photos", f"photo library, {row.label}: ahead of @tus/server", ahead, measured).line())
        if rate and refs["nginx"]:
            ratio = rate / refs["nginx"]
            out.append(
                goal("photos", f"photo library, {row.label}: ≥ 0.6× nginx", ratio >= 0.6, f"×{ratio:.2f}").line()
            )
    anon = max(summaries[r.key]["peak"]["RssAnon"] for r in node)
    vm = max(summaries[r.key]["peak"]["VmRSS"] for r in node)
    measured = f"peak RssAnon {anon / MB:.0f} MB; VmRSS {vm / MB:.0f} MB"
    out.append(goal("photos", "node anonymous memory below 150 MB (photos)", anon < 150 * MB, measured).line())
    return out


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench photos",
        description="A phone's photo-library backup: the node against nginx, @tus/server and the ceiling.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 files, one of 50 MiB, 1 repetition")
    parser.add_argument("--files", type=int, help=f"number of files (default 500, quick 60, at most {MAX_FILES})")
    parser.add_argument("--seed", type=int, default=9, help="seed of the sizes and bytes (default 9)")
    parser.add_argument("--videos", type=int, help="number of 50-200 MiB files (default 1%% of --files, at least 1)")
    parser.add_argument("--in-flight", type=int, default=4, help="files uploading at once (default 4)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="node chunk and tus PATCH size in MiB (default 8)")
    parser.add_argument(
        "--single-max-mib", type=int, default=16, help="largest file sent by upload/file (default 16 MiB)"
    )
    parser.add_argument("--reps", type=int, help="repetitions per target (default 2, quick 1)")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="seconds for the timed runs (default 1200)")
    add_run_args(parser, FAMILIES)
    args = parser.parse_args(argv)
    families = chosen_families(parser, args, FAMILIES)
    files, big_count, big_range = library_shape(args.quick, args.files, args.videos)
    params = Params(
        files=files,
        seed=args.seed,
        big_count=big_count,
        big_range=big_range,
        in_flight=args.in_flight,
        chunk_size=args.chunk_mib * MiB,
        single_max=args.single_max_mib * MiB,
        reps=args.reps or (1 if args.quick else 2),
        families=families,
        backend=args.backend,
        time_limit=args.time_limit,
    )
    for ok, message in (
        (1 <= files <= MAX_FILES, f"--files must be 1..{MAX_FILES}"),
        (params.big_count is None or 0 <= params.big_count <= files, "--videos must be 0..--files"),
        (1 <= params.in_flight <= 32, "--in-flight must be 1..32"),
        (1 <= args.chunk_mib <= 64, "--chunk-mib must be 1..64"),
        (1 <= params.reps <= 20, "--reps must be 1..20"),
    ):
        if not ok:
            parser.error(message)
    return params, args


def check_disk(workdir: Path, params: Params, total: int) -> None:
    """The node keeps every run's files (no cheap bulk delete): refuse to start without the room."""
    node_rows = sum(1 for f in NODE_FAMILIES if f in params.families)
    needed = total * node_rows * params.reps + 2 * GB
    free = shutil.disk_usage(workdir).free
    if node_rows and free < needed:
        raise BenchError(f"{needed / GB:.1f} GB of free disk needed under {workdir}, {free / GB:.1f} GB free")


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse_args(argv)
    sizes = params.sizes()
    runs: list[Run] = []
    failed: dict[str, str] = {}
    rows: list[Row] = []
    notes: list[str] = []
    env: dict[str, Any] = {}
    interrupted = False
    with session("megavault-bench-photos-", args.tmp_dir) as run:
        try:
            check_disk(run.workdir, params, sum(sizes))
            log(f"work dir {run.workdir}; {len(sizes)} files, {sum(sizes) / MB:,.0f} MB per run")
            library = Library(sizes, params.seed)
            rows = build(params, run.setup, run.sampler, args.peers_dir)
            env = environment(run.setup)
            runner = Runner(params, library, run.sampler, run.abort)
            try:
                runs, failed = run_interleaved(
                    rows, params.reps, runner.measure, describe, run.setup.skipped, params.time_limit
                )
            finally:
                notes = sorted(runner.notes)
        except (KeyboardInterrupt, Aborted):
            interrupted = True
            log("interrupted: stopping, reporting what was measured")
    load_end = os.getloadavg()
    summaries = {
        r.key: summarise_runs(mine) for r in rows if (mine := [m for m in runs if m.row == r.key and m.rep >= 0])
    }
    first_goal = len(GOALS)
    print()
    print(report(params, rows, summaries, sizes))
    print_footer(
        run.setup, failed, notes, (run.load_start, load_end), interrupted=interrupted, page_reports=run.page_reports
    )
    if not args.no_json:
        write_results(
            args.results_dir,
            "photos",
            run.started,
            {
                "command": " ".join(["python", "-m", "bench", "photos", *(argv or sys.argv[1:])]),
                "interrupted": interrupted,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(params).items()},
                "sizes": sizes,
                "environment": env,
                "loadavg": {"start": run.load_start, "end": load_end},
                "page_reporting_kib": run.page_reports.as_json(),
                "rows": {r.key: {"label": r.label, "target": r.target.key, **summaries.get(r.key, {})} for r in rows},
                "goals": [vars(g) for g in GOALS[first_goal:]],
                "skipped": run.setup.skipped,
                "failed": failed,
                "notes": notes,
                "runs": [vars(m) for m in runs],
            },
        )
    return 130 if interrupted else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
