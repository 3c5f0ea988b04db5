"""Helpers every benchmark shares: the machine's own limits, rates, ratios and tables.

These machines are noisy (the same figure moves by a third between runs), so a benchmark measures
the limits it compares against in the same run, and reports ratios.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import blake3

KiB = 1024
MiB = 1024 * KiB
MB = 1_000_000

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def mb_per_s(size: int, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes, as disk and network figures are quoted)."""
    return size / MB / seconds if seconds > 0 else float("inf")


def format_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def format_ratio(value: float | None, reference: float | None) -> str:
    """``value`` as a percentage of ``reference`` (``87%``)."""
    if value is None or not reference:
        return "-"
    return f"{100 * value / reference:.0f}%"


def size_label(size: int) -> str:
    for unit, factor in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of ``action`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@contextlib.contextmanager
def scratch_dir(prefix: str, base: Path | None = None) -> Iterator[Path]:
    """A fresh directory on the same disk as the repository (``bench/results``), removed after."""
    root = base or Path(os.environ.get("BENCH_DIR", RESULTS))
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_fsync_files(directory: Path, pieces: Sequence[bytes]) -> float:
    """Seconds to write each piece to its own new file and fsync it: the floor of per-chunk durability.

    The files are removed afterwards, outside the timing.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"raw-{n}" for n in range(len(pieces))]
    start = time.perf_counter()
    for path, piece in zip(paths, pieces, strict=True):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, piece)
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - start
    for path in paths:
        path.unlink()
    return elapsed


def write_fsync_one_file(directory: Path, pieces: Sequence[bytes]) -> float:
    """Seconds to write all pieces to one file and fsync once: the disk's streaming write speed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "raw-stream"
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for piece in pieces:
            _write_all(fd, piece)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def blake3_seconds(pieces: Sequence[bytes]) -> float:
    """Seconds to hash each piece with BLAKE3 on one thread (how the store hashes a chunk)."""
    start = time.perf_counter()
    for piece in pieces:
        blake3.blake3(piece).digest()
    return time.perf_counter() - start


def warm_up_disk(directory: Path, size: int = 64 * MiB) -> None:
    """The first large write after idle is often several times slower here: pay it untimed."""
    write_fsync_one_file(directory, [os.urandom(MiB)] * (size // MiB))


def level_the_ground(directory: Path, size: int) -> None:
    """Before a timed cell: make ``size`` bytes of page cache cheap to take, then flush everything.

    On this VM the first touch of guest memory the host has not backed yet costs several times a
    normal write (a put measured 18 ms of CPU in ``write`` per 8 MiB instead of 2), so whichever
    cell first grows the page cache would pay for it. Writing and deleting the cell's volume
    untimed leaves recently used pages at hand for every cell alike; ``sync`` keeps one cell's
    dirty data from being flushed on the next one's time.
    """
    write_fsync_one_file(directory, [bytes(MiB)] * max(1, size // MiB))
    os.sync()


# --- the issues' targets, met or missed -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Goal:
    """One target of an issue checked against one run (``python -m bench all`` lists them all)."""

    benchmark: str
    text: str
    met: bool | None  # None: not measured in this run
    measured: str

    def line(self) -> str:
        verdict = "not measured" if self.met is None else ("met" if self.met else "MISSED")
        return f"- {self.text}: {verdict} ({self.measured})"


GOALS: list[Goal] = []  # every goal checked in this process, in order


def goal(benchmark: str, text: str, met: bool | None, measured: str) -> Goal:
    """Record a target's verdict for this run and return it (its :meth:`Goal.line` is the report's)."""
    checked = Goal(benchmark, text, met, measured)
    GOALS.append(checked)
    return checked
