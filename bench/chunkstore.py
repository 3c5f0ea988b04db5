"""Chunk store throughput per backend, beside the machine's own limits measured in the same run.

``python -m bench chunkstore`` (``--help`` for the knobs). For each chunk size (64 KiB, 1 MiB,
8 MiB; 256 MiB of fresh random chunks per case) it measures, interleaved and repeated:

- BLAKE3 of every chunk on one thread (the store hashes each chunk on one thread);
- writing the same bytes with fsync: one new file per chunk (what per-chunk durability costs at
  the least) and one file for everything (the disk's streaming speed);
- ``ChunkStore.put`` through each backend, as an upload does: the chunk streamed in 1 MiB pieces
  with its expected BLAKE3 id and size, hashed and verified while written, durable on return;
- ``ChunkStore.get``: every chunk read back and verified (from the page cache: it was just written).

Small sizes are capped at 2048 chunks per case (128 MiB of 64 KiB chunks) to keep the run short.

Only ratios inside one run mean anything on these machines. The issue's target: ``fs`` put of
8 MiB chunks at ≥ 80% of writing the same bytes to one file per chunk with fsync.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import blake3
import trio

from bench.common import (
    RESULTS,
    KiB,
    MiB,
    blake3_seconds,
    format_rate,
    format_ratio,
    level_the_ground,
    mb_per_s,
    median,
    scratch_dir,
    size_label,
    table,
    warm_up_disk,
    write_fsync_files,
    write_fsync_one_file,
)
from vault import plugins
from vault.chunks import ChunkId, ChunkStore

STREAM_PIECE = MiB
CELLS = ("blake3", "raw_files", "raw_stream")


def fresh_chunks(size: int, total: int, max_chunks: int) -> list[bytes]:
    count = max(1, min(max_chunks, total // size))
    return [os.urandom(size) for _ in range(count)]


def as_received(chunk: bytes) -> list[bytes]:
    """The chunk in the 1 MiB ``bytes`` pieces a server hands over, cut before the timing."""
    return [chunk[start : start + STREAM_PIECE] for start in range(0, len(chunk), STREAM_PIECE)]


async def _stream(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _put_and_get(
    backend: str, directory: Path, chunks: Sequence[bytes], ids: Sequence[ChunkId]
) -> tuple[float, float]:
    cls = plugins.load(plugins.BACKENDS, backend)
    return await time_store(ChunkStore(cls(directory, {})), backend, chunks, ids)


async def time_store(
    store: ChunkStore, label: str, chunks: Sequence[bytes], ids: Sequence[ChunkId]
) -> tuple[float, float]:
    """Seconds to put every chunk through ``store`` and to read each back verified (opened and
    closed here); the bodies are cut into received-size pieces before the clock starts."""
    await store.open()
    try:
        bodies = [as_received(chunk) for chunk in chunks]
        start = time.perf_counter()
        for body, chunk, chunk_id in zip(bodies, chunks, ids, strict=True):
            await store.put(_stream(body), expected_id=chunk_id, expected_size=len(chunk))
        put_seconds = time.perf_counter() - start
        received = 0
        start = time.perf_counter()
        for chunk_id in ids:
            async for piece in await store.get(chunk_id):
                received += len(piece)
        get_seconds = time.perf_counter() - start
    finally:
        await store.close()
    if received != sum(len(c) for c in chunks):
        raise RuntimeError(f"{label}: read back {received} bytes")
    return put_seconds, get_seconds


def _cell(name: str, measure: Callable[..., float], *args: object) -> dict[str, float]:
    return {name: measure(*args)}


def measure_size(
    size: int, total: int, max_chunks: int, backends: Sequence[str], repeat: int, root: Path
) -> dict[str, list[float]]:
    """MB/s of every cell for one chunk size, one value per repetition."""
    chunks = fresh_chunks(size, total, max_chunks)
    ids = [ChunkId(blake3.blake3(c).digest()) for c in chunks]
    volume = sum(len(c) for c in chunks)

    def backend_cell(backend: str, rep: int) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            directory = root / f"{backend}-{size}-{rep}"
            put_s, get_s = trio.run(_put_and_get, backend, directory, chunks, ids)
            shutil.rmtree(directory)
            return {f"{backend}_put": put_s, f"{backend}_get": get_s}

        return run

    samples: dict[str, list[float]] = {}
    for rep in range(repeat):
        cells: list[Callable[[], dict[str, float]]] = [
            functools.partial(_cell, "blake3", blake3_seconds, chunks),
            functools.partial(_cell, "raw_files", write_fsync_files, root / f"files-{size}-{rep}", chunks),
            functools.partial(_cell, "raw_stream", write_fsync_one_file, root / f"stream-{size}-{rep}", chunks),
            *(backend_cell(backend, rep) for backend in backends),
        ]
        # Every cell once per repetition, starting one later each time, so neither drift in the
        # disk nor the order of the cells favours one of them.
        timings: dict[str, float] = {}
        for turn in range(len(cells)):
            level_the_ground(root / "ground", volume)
            timings |= cells[(turn + rep) % len(cells)]()
        for cell, seconds in timings.items():
            samples.setdefault(cell, []).append(mb_per_s(volume, seconds))
        print(
            f"  {size_label(size)} run {rep + 1}/{repeat}: "
            + ", ".join(f"{cell} {mb_per_s(volume, timings[cell]):,.0f}" for cell in sorted(timings)),
            file=sys.stderr,
        )
    return samples


Samples = dict[int, dict[str, list[float]]]


def paired_ratio(cells: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over repetitions of ``numerator / denominator`` measured in the same repetition.

    Pairing inside a repetition cancels most of the disk's drift, which medians of each cell
    taken separately do not.
    """
    return median([n / d for n, d in zip(cells[numerator], cells[denominator], strict=True)])


def report(samples: Samples, backends: Sequence[str]) -> str:
    headers = ["chunk", "BLAKE3 1 thread", "write+fsync per chunk file", "write+fsync one file"]
    for backend in backends:
        headers += [f"{backend} put", f"{backend} get"]
    rows = []
    for size, cells in samples.items():
        row = [size_label(size), *(format_rate(median(cells[c])) for c in CELLS)]
        for backend in backends:
            row += [
                format_rate(median(cells[f"{backend}_put"])),
                format_rate(median(cells[f"{backend}_get"])),
            ]
        rows.append(row)
    rates = table(headers, rows)

    ratio_headers = ["chunk"]
    for backend in backends:
        ratio_headers += [
            f"{backend} put / per-file fsync",
            f"{backend} put / one-file fsync",
            f"{backend} get / BLAKE3",
        ]
    ratio_rows = []
    for size, cells in samples.items():
        row = [size_label(size)]
        for backend in backends:
            row += [
                format_ratio(paired_ratio(cells, f"{backend}_put", "raw_files"), 1.0),
                format_ratio(paired_ratio(cells, f"{backend}_put", "raw_stream"), 1.0),
                format_ratio(paired_ratio(cells, f"{backend}_get", "blake3"), 1.0),
            ]
        ratio_rows.append(row)
    ratios = table(ratio_headers, ratio_rows)
    return (
        f"Throughput, MB/s (median of the repetitions):\n\n{rates}\n\n"
        f"Ratios (median of the per-repetition ratios):\n\n{ratios}\n"
    )


def target_line(samples: Samples) -> str | None:
    cells = samples.get(8 * MiB)
    if cells is None or "fs_put" not in cells:
        return None
    share = paired_ratio(cells, "fs_put", "raw_files")
    verdict = "met" if share >= 0.8 else "NOT met"
    return (
        f"Target (fs put of 8 MiB chunks >= 80% of write+fsync of the same bytes, one file per chunk): "
        f"{100 * share:.0f}% -> {verdict}"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench chunkstore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=256, metavar="MIB", help="MiB of chunks per case (256)")
    parser.add_argument(
        "--max-chunks",
        type=int,
        default=2048,
        help="at most this many chunks per case, so small sizes finish in seconds (2048)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per case; medians are shown (5)")
    parser.add_argument("--sizes", default="64K,1M,8M", help="chunk sizes, comma-separated, K/M suffixes (64K,1M,8M)")
    parser.add_argument("--backends", default="fs,lmdb", help="backends to measure (fs,lmdb)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default bench/results)")
    return parser.parse_args(argv)


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": KiB, "M": MiB}.get(text[-1:], 1)
    return int(text.rstrip("KM")) * factor


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    started = time.time()
    print(
        f"chunkstore bench: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.total} MiB per case, {args.repeat} repetitions",
        file=sys.stderr,
    )
    results: Samples = {}
    with scratch_dir("chunkstore-", args.dir) as root:
        warm_up_disk(root)
        for size in sizes:
            results[size] = measure_size(size, args.total * MiB, args.max_chunks, backends, args.repeat, root)
    text = report(results, backends)
    target = target_line(results)
    print()
    print(text)
    if target:
        print(target)
    print(f"\n(took {time.time() - started:.0f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    (RESULTS / f"chunkstore-{stamp}.json").write_text(
        json.dumps({"args": vars(args) | {"dir": str(args.dir)}, "mb_s_per_repetition": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
