"""What the transfer benchmarks (``uploads``, ``photos``, ``downloads``) share: fresh payloads,
the HTTP clients of every target (nginx, ``@tus/server``, the stack's ceiling, the node's chunk
API and tus endpoint), starting the targets, timing one run with the server's CPU and memory,
interleaved repetitions, and the session every run happens in (servers stopped by PID at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar
from urllib.parse import urljoin

import blake3
import httpx

from bench.common import MB, REPO, RESULTS, KiB, MiB
from bench.peers import (
    MEMORY_FIELDS,
    BenchError,
    CeilingPeer,
    NginxPeer,
    NodeServer,
    Sampler,
    ServerProcess,
    TusPeer,
    b64,
    node_version,
)

GB = 1_000_000_000
PIECE = 1 * MiB  # request bodies are streamed from memory in pieces of this size
STAMP_EVERY = 64 * KiB
REQUEST_TIMEOUT = 60.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- payloads ---------------------------------------------------------------------------------

_tags = itertools.count(random.SystemRandom().randrange(1 << 40) << 16)


def new_tag() -> int:
    """A tag no upload of this process (nor, almost surely, of an earlier run) has used."""
    return next(_tags)


def stamp(buf: bytearray, tag: int, file_size: int) -> None:
    """Write ``tag`` and the offset at the start of each file and every 64 KiB inside it.

    No file and no chunk (chunks start at multiples of 64 KiB) repeats across uploads, so the
    node's deduplication never turns a measured upload into "you already have this".
    """
    for start in range(0, len(buf), file_size):
        for offset in range(start, min(start + file_size, len(buf)), STAMP_EVERY):
            end = min(offset + 16, start + file_size, len(buf))
            buf[offset:end] = struct.pack("<QQ", tag, offset)[: end - offset]


def b3(data: bytes | memoryview, *, threads: bool = False) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if threads else 1)
    hasher.update(data)
    digest: str = hasher.hexdigest()
    return digest


def chunk_checksums(view: memoryview, chunk_size: int) -> dict[tuple[int, int], str]:
    """BLAKE3 hex of every ``chunk_size`` piece, by (start, stop): the node's ``X-Chunk-Checksum``."""
    out: dict[tuple[int, int], str] = {}
    for start in range(0, len(view), chunk_size):
        stop = min(start + chunk_size, len(view))
        out[(start, stop)] = b3(view[start:stop])
    return out


def known_checksum(known: dict[tuple[int, int], str], view: memoryview, start: int, stop: int, ctx: Ctx) -> str:
    """The precomputed checksum of ``view[start:stop]``; hashed now (and noted) if the node chose others."""
    checksum = known.get((start, stop))
    if checksum is None:
        ctx.note("node chose chunk boundaries other than requested: hashing them in the timed region")
        checksum = known[(start, stop)] = b3(view[start:stop])
    return checksum


def random_bytes(rng: random.Random, size: int) -> bytearray:
    """Incompressible bytes (``randbytes`` overflows above 256 MiB - 1 on Python 3.11: go in pieces)."""
    buf = bytearray()
    while len(buf) < size:
        buf += rng.randbytes(min(16 * MiB, size - len(buf)))
    return buf


def pieces(view: memoryview) -> Iterator[memoryview]:
    """Stream a body from memory in ~1 MiB pieces (no copy here; h11 copies once into the socket)."""
    for offset in range(0, len(view), PIECE):
        yield view[offset : offset + PIECE]


def body_of(data: memoryview | bytes) -> tuple[Any, dict[str, str]]:
    """(httpx content, headers): bytes as is, large views streamed with an explicit Content-Length."""
    if isinstance(data, bytes):
        return data, {}
    if len(data) <= PIECE:
        return bytes(data), {}
    return pieces(data), {"Content-Length": str(len(data))}


# --- measurement context ----------------------------------------------------------------------


class Aborted(BenchError):
    """Ctrl-C or SIGTERM: stop measuring, clean up, report what there is."""


class MissingEndpoint(BenchError):
    """The node answers 404 for an endpoint: the API is not there (yet)."""


@dataclass
class Ctx:
    deadline: float
    abort: threading.Event  # the whole run (Ctrl-C)
    notes: set[str]
    failed: threading.Event = field(default_factory=threading.Event)  # this measurement

    def check(self) -> None:
        if self.abort.is_set():
            raise Aborted("interrupted")
        if self.failed.is_set():
            raise BenchError("another stream of this measurement failed")
        if time.monotonic() > self.deadline:
            raise BenchError("measurement exceeded its time limit")

    def note(self, text: str) -> None:
        self.notes.add(text)


def new_client() -> httpx.Client:
    """One client = one reused keep-alive connection. httpx never sends ``Expect: 100-continue``."""
    return httpx.Client(
        timeout=httpx.Timeout(REQUEST_TIMEOUT),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        trust_env=False,
    )


def run_parallel(jobs: Sequence[Callable[[], None]], ctx: Ctx) -> None:
    """Run jobs in threads; the first error stops the others and is raised."""
    errors: list[BaseException] = []

    def wrap(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)
            ctx.failed.set()

    threads = [threading.Thread(target=wrap, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        first = [e for e in errors if "another stream" not in str(e)]
        raise (first or errors)[0]


def drain_in_parallel(
    clients: Sequence[httpx.Client], items: Sequence[Any], work: Callable[..., None], ctx: Ctx
) -> None:
    """One thread per client takes items off a shared queue until none is left: ``work(client, item)``."""
    todo = iter(items)
    lock = threading.Lock()

    def worker(client: httpx.Client) -> None:
        while True:
            ctx.check()
            with lock:
                item = next(todo, _DONE)
            if item is _DONE:
                return
            work(client, item)

    if len(clients) == 1:
        worker(clients[0])
    else:
        run_parallel([functools.partial(worker, c) for c in clients], ctx)


_DONE = object()


def expect(response: httpx.Response, codes: tuple[int, ...], what: str) -> httpx.Response:
    if response.status_code not in codes:
        text = response.text.replace("\n", " ")[:300]
        raise BenchError(f"{what}: HTTP {response.status_code} {text}")
    return response


# --- clients ----------------------------------------------------------------------------------


class NginxClient:
    """WebDAV ``PUT /store/PATH`` (201 Created; 204 would be an overwrite, nginx's slower path)."""

    def __init__(self, peer: NginxPeer) -> None:
        self.base = peer.base_url + "/store"

    def put(self, client: httpx.Client, path: str, data: memoryview | bytes) -> None:
        content, headers = body_of(data)
        expect(client.put(f"{self.base}/{path}", content=content, headers=headers), (201, 204), "nginx PUT")


class CeilingClient:
    """``PUT /store/NAME`` with ``X-Checksum: blake3:HEX`` (``bench/ceiling.py`` verifies it)."""

    def __init__(self, peer: CeilingPeer) -> None:
        self.base = peer.base_url + "/store"

    def put(self, client: httpx.Client, name: str, data: memoryview | bytes, checksum: str) -> None:
        content, headers = body_of(data)
        headers["X-Checksum"] = f"blake3:{checksum}"
        expect(client.put(f"{self.base}/{name}", content=content, headers=headers), (201,), "ceiling PUT")


class TusClient:
    """The tus 1.0 core protocol + creation + creation-with-upload, as a tus client library does it."""

    def __init__(self, endpoint: str, headers: dict[str, str], what: str, *, missing_is_404: bool) -> None:
        self.endpoint = endpoint
        self.headers = {"Tus-Resumable": "1.0.0", **headers}
        self.what = what
        self.missing_is_404 = missing_is_404

    def _check(self, response: httpx.Response, codes: tuple[int, ...], step: str) -> httpx.Response:
        if response.status_code == 404 and self.missing_is_404:
            raise MissingEndpoint(f"{step} {self.endpoint} answers 404: the node has no tus endpoint yet")
        return expect(response, codes, f"{self.what} {step}")

    def create(
        self, client: httpx.Client, name: str, size: int, body: bytes | memoryview | None = None
    ) -> tuple[str, int]:
        """POST (creation, with the body when given: creation-with-upload) → (upload URL, offset)."""
        metadata = f"filename {b64(name)},folder {b64('/bench')},filetype {b64('application/octet-stream')}"
        headers = {**self.headers, "Upload-Length": str(size), "Upload-Metadata": metadata}
        content: Any = b""
        if body is not None:
            content, extra = body_of(body)
            headers.update(extra)
            headers["Content-Type"] = "application/offset+octet-stream"
        response = self._check(client.post(self.endpoint, headers=headers, content=content), (201,), "POST")
        location = response.headers.get("Location")
        if not location:
            raise BenchError(f"{self.what} POST answered 201 without Location")
        offset = int(response.headers.get("Upload-Offset", "0")) if body is not None else 0
        return urljoin(self.endpoint, location), offset

    def patch(self, client: httpx.Client, url: str, offset: int, data: memoryview | bytes) -> int:
        content, extra = body_of(data)
        headers = {
            **self.headers,
            **extra,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        response = self._check(client.patch(url, headers=headers, content=content), (204,), "PATCH")
        new_offset = int(response.headers.get("Upload-Offset", "-1"))
        if new_offset != offset + len(data):
            raise BenchError(f"{self.what} PATCH: Upload-Offset {new_offset}, expected {offset + len(data)}")
        return new_offset

    def upload(self, client: httpx.Client, name: str, data: memoryview, patch_size: int, ctx: Ctx) -> None:
        """POST (creation), then PATCHes of ``patch_size``."""
        url, offset = self.create(client, name, len(data))
        self._patch_from(client, url, offset, data, patch_size, ctx)

    def send(self, client: httpx.Client, name: str, data: memoryview | bytes, patch_size: int, ctx: Ctx) -> None:
        """As a tus client does it: creation-with-upload when the file fits one PATCH, else :meth:`upload`."""
        view = memoryview(data)
        if len(view) > patch_size:
            self.upload(client, name, view, patch_size, ctx)
            return
        url, offset = self.create(client, name, len(view), data)
        self._patch_from(client, url, offset, view, patch_size, ctx)  # if the POST took only a part

    def _patch_from(
        self, client: httpx.Client, url: str, offset: int, data: memoryview, patch_size: int, ctx: Ctx
    ) -> None:
        while offset < len(data):
            ctx.check()
            offset = self.patch(client, url, offset, data[offset : offset + patch_size])


class NodeApi:
    """The node's upload API (API.md, Uploads) and its downloads (Files and downloads)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url + "/api/mobile"
        self.auth = {"Authorization": f"Bearer {token}"}

    def _check(self, response: httpx.Response, step: str, codes: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        if response.status_code == 404 and step in ("upload/init", "upload/complete", "upload/file"):
            raise MissingEndpoint(f"POST /api/mobile/{step} answers 404: the node has no such endpoint yet")
        expect(response, codes, step)
        try:
            body = response.json()
        except ValueError:
            raise BenchError(f"{step}: answer is not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or body.get("success") is not True:
            raise BenchError(f"{step}: unexpected answer {response.text[:300]}")
        return data

    def init(self, client: httpx.Client, entries: list[dict[str, Any]], chunk_size: int | None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"files": entries}
        if chunk_size:
            body["uploadOptions"] = {"chunkSize": chunk_size}
        data = self._check(client.post(self.base + "/upload/init", json=body, headers=self.auth), "upload/init")
        files = data.get("files")
        if not isinstance(files, list) or len(files) != len(entries):
            raise BenchError(f"upload/init: expected {len(entries)} files in data.files")
        for entry, answer in zip(entries, files, strict=True):
            if answer.get("status") == "exists":
                raise BenchError(f"upload/init: {entry['name']} already exists (content should be unique)")
            if not isinstance(answer.get("chunks"), list) or not answer.get("uploadId"):
                raise BenchError(f"upload/init: no uploadId/chunks for {entry['name']}")
            covered = sum(int(c["end"]) - int(c["start"]) + 1 for c in answer["chunks"])
            if covered != entry["size"]:
                raise BenchError(f"upload/init: chunks cover {covered} bytes of {entry['size']}")
        return files

    def put_chunk(
        self,
        client: httpx.Client,
        chunk: dict[str, Any],
        data: memoryview | bytes,
        checksum: str,
        *,
        complete: bool = False,
    ) -> dict[str, Any]:
        """A chunk ``PUT``; with ``complete`` (``?complete=true``) the receipt carries the file
        once this chunk made the upload whole. Returns the receipt."""
        content, extra = body_of(data)
        headers = {
            **self.auth,
            **extra,
            "Content-Type": "application/octet-stream",
            "X-Chunk-Checksum": f"blake3:{checksum}",
        }
        params = {"complete": "true"} if complete else None
        answer = self._check(
            client.put(chunk["uploadUrl"], content=content, headers=headers, params=params), "chunk PUT"
        )
        if answer.get("received") not in (None, len(data), True):
            raise BenchError(f"chunk PUT: received {answer.get('received')!r}, sent {len(data)}")
        if complete and "file" not in answer:
            raise BenchError("chunk PUT ?complete=true: the last chunk's receipt names no file")
        return answer

    def complete(self, client: httpx.Client, upload_id: str, checksum: str) -> dict[str, Any]:
        """``upload/complete``; returns ``data.file``."""
        body = {"uploadId": upload_id, "checksum": f"blake3:{checksum}"}
        answer = self._check(
            client.post(self.base + "/upload/complete", json=body, headers=self.auth), "upload/complete"
        )
        file = answer.get("file")
        if not isinstance(file, dict):
            raise BenchError("upload/complete: no data.file in the answer")
        return file

    @staticmethod
    def entry(local_id: str, name: str, size: int, checksum: str, mime: str) -> dict[str, Any]:
        return {
            "localId": local_id,
            "name": name,
            "size": size,
            "mimeType": mime,
            "folder": "/bench",
            "checksum": f"blake3:{checksum}",
            "priority": "normal",
        }

    def upload(
        self,
        client: httpx.Client,
        name: str,
        data: memoryview | bytes,
        checksum: str,
        chunk_checksum: Callable[[int, int], str],
        chunk_size: int,
        ctx: Ctx,
        mime: str = "image/jpeg",
        *,
        complete_on_put: bool = False,
    ) -> dict[str, Any]:
        """One file, one stream: init → PUT every chunk in order → complete; returns ``data.file``.
        ``complete_on_put``: the last chunk's ``PUT ?complete=true`` completes it instead, as the
        SDK sends it (a photo of one chunk: init + one PUT)."""
        (answer,) = self.init(client, [self.entry(name, name, len(data), checksum, mime)], chunk_size)
        chunks = answer["chunks"]
        for n, chunk in enumerate(chunks):
            ctx.check()
            start, stop = int(chunk["start"]), int(chunk["end"]) + 1
            part = data if (start, stop) == (0, len(data)) else data[start:stop]
            last = complete_on_put and n == len(chunks) - 1
            receipt = self.put_chunk(client, chunk, part, chunk_checksum(start, stop), complete=last)
            if last:
                file: dict[str, Any] = receipt["file"]
                return file
        return self.complete(client, answer["uploadId"], checksum)

    def upload_single(self, client: httpx.Client, name: str, data: memoryview | bytes, checksum: str) -> dict[str, Any]:
        """``POST /upload/file?name=…&folder=…&checksum=…`` with the raw body: one request; ``data.file``."""
        content, headers = body_of(data)
        params = {"name": name, "folder": "/bench", "checksum": f"blake3:{checksum}"}
        response = client.post(
            self.base + "/upload/file",
            params=params,
            content=content,
            headers={**self.auth, **headers, "Content-Type": "application/octet-stream"},
        )
        if response.status_code == 405:
            raise MissingEndpoint("POST /api/mobile/upload/file answers 405: the node has no such endpoint yet")
        answer = self._check(response, "upload/file", (200, 201))
        file = answer.get("file")
        if not isinstance(file, dict):
            raise BenchError("upload/file: no data.file in the answer")
        return file

    def single_upload_missing(self) -> str | None:
        """Why the node has no ``POST /upload/file`` (None if it has): asked with an empty body and no
        query, which a present endpoint refuses as invalid. Large bodies to an absent route are
        refused by the node's general body limit (413) before routing, so the probe is needed."""
        response = httpx.post(self.base + "/upload/file", content=b"", headers=self.auth, timeout=REQUEST_TIMEOUT)
        if response.status_code in (404, 405):
            return f"POST /api/mobile/upload/file answers {response.status_code}: the node has no such endpoint yet"
        return None

    def content_url(self, file_id: str) -> str:
        return f"{self.base}/files/{file_id}/content"


# --- targets ----------------------------------------------------------------------------------


@dataclass
class Target:
    """A thing that stores or serves bytes: raw disk, dd, or a server process (shared by its rows)."""

    key: str
    label: str
    version: str
    durable: str
    process: ServerProcess | None = None
    cpu: Callable[[], float] = time.process_time
    reset: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)


@dataclass
class Setup:
    """What started: targets, servers (for cleanup) and skip notes."""

    workdir: Path
    targets: dict[str, Target] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # family -> why


def _server_target(
    setup: Setup,
    sampler: Sampler,
    key: str,
    version: str,
    durable: str,
    peer: NginxPeer | TusPeer | CeilingPeer | NodeServer,
    label: str | None = None,
) -> Target:
    """Register a started server as a target (memory sampled, CPU read from its process tree)."""
    process = peer.process
    reset = peer.clear_store if not isinstance(peer, NodeServer) else (lambda: None)
    target = Target(key, label or key, version, durable, process, process.cpu_seconds, reset)
    setup.targets[key] = target
    sampler.watch(key, process)
    return target


def start_nginx(setup: Setup, sampler: Sampler, *, workers: int = 1, sendfile: bool = True) -> NginxPeer | None:
    try:
        nginx = NginxPeer(setup.workdir, workers=workers, sendfile=sendfile)
        setup.servers.append(nginx.process)
        nginx.start()
    except BenchError as exc:
        setup.skipped["nginx"] = str(exc)
        return None
    short = nginx.version.removeprefix("nginx/")
    target = _server_target(setup, sampler, "nginx", nginx.version, "no fsync", nginx, f"nginx {short}")
    target.notes.append(f"worker_processes {workers}, sendfile {'on' if sendfile else 'off'}")
    return nginx


def start_tus(setup: Setup, sampler: Sampler, peers_dir: Path) -> TusPeer | None:
    try:
        tus = TusPeer(setup.workdir, peers_dir, log)
        setup.servers.append(tus.process)
        tus.start()
    except BenchError as exc:
        setup.skipped["tus"] = str(exc)
        return None
    version = f"@tus/server {tus.version} + @tus/file-store {tus.file_store_version}, Node {tus.node_version}"
    target = _server_target(setup, sampler, "tus", version, "no fsync", tus, f"@tus/server {tus.version}")
    if tus.note:
        target.notes.append(tus.note)
    return tus


def start_ceiling(setup: Setup, sampler: Sampler) -> CeilingPeer | None:
    try:
        ceiling = CeilingPeer(setup.workdir)
        setup.servers.append(ceiling.process)
        ceiling.start()
    except BenchError as exc:
        setup.skipped["ceiling"] = str(exc)
        return None
    _server_target(setup, sampler, "ceiling", ceiling.version, "fsync", ceiling)
    return ceiling


def start_node(setup: Setup, sampler: Sampler, families: Sequence[str], backend: str) -> NodeApi | None:
    """The node with a registered bench user; on failure every family in ``families`` is skipped."""
    try:
        node = NodeServer(setup.workdir, backend=backend)
        setup.servers.append(node.process)
        node.start()
        token = node.register()
    except BenchError as exc:
        for family in families:
            setup.skipped[family] = str(exc)
        return None
    _server_target(setup, sampler, "node", f"MegaVault node {node.version} ({backend})", "fsync", node)
    return NodeApi(node.base_url, token)


# --- timing -----------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    server_cpu: float
    client_cpu: float
    peak: dict[str, int]  # VmRSS, RssAnon, RssFile peaks of the server during the run (bytes)


def timed_run(target: Target, sampler: Sampler, job: Callable[[], None]) -> Timing:
    """Run ``job`` once, with the server's CPU seconds and memory peaks over exactly that time."""
    sampler.open_window(target.key)
    cpu0, client0 = target.cpu(), time.process_time()
    t0 = time.perf_counter()
    job()
    seconds = time.perf_counter() - t0
    cpu1, client1 = target.cpu(), time.process_time()
    peak = sampler.close_window(target.key)
    return Timing(seconds, cpu1 - cpu0, client1 - client0, peak)


@dataclass
class Run:
    """One timed run of one cell of a row (photos, downloads)."""

    row: str
    cell: str
    rep: int
    seconds: float
    nbytes: int
    count: int  # files or requests
    server_cpu: float
    client_cpu: float
    peak: dict[str, int]

    @classmethod
    def of(cls, row: str, cell: str, rep: int, nbytes: int, count: int, timing: Timing) -> Run:
        return cls(row, cell, rep, timing.seconds, nbytes, count, timing.server_cpu, timing.client_cpu, timing.peak)


def summarise_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians (min-max) of a cell's repetitions: count/s, MB/s, server CPU s/GB; memory peaks."""
    return {
        "per_s": vars(Stat.of([r.count / r.seconds for r in runs])),
        "mb_per_s": vars(Stat.of([r.nbytes / MB / r.seconds for r in runs])),
        "cpu_s_per_gb": vars(Stat.of([r.server_cpu / (r.nbytes / GB) for r in runs])),
        "client_cpu_s_per_gb": statistics.median(r.client_cpu / (r.nbytes / GB) for r in runs),
        "peak": {k: max(r.peak[k] for r in runs) for k in MEMORY_FIELDS},
        "seconds": [r.seconds for r in runs],
        "bytes": runs[0].nbytes,
        "count": runs[0].count,
    }


def median_of(summary: dict[str, Any] | None, key: str) -> float | None:
    return float(summary[key]["median"]) if summary else None


class CellLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def family(self) -> str: ...

    @property
    def warm_key(self) -> str: ...


C = TypeVar("C", bound=CellLike)
M = TypeVar("M")


def run_interleaved(
    cells: Sequence[C],
    reps: int,
    measure: Callable[[C, int], M],
    describe: Callable[[C, M], str],
    skipped: dict[str, str],
    time_limit: float,
) -> tuple[list[M], dict[str, str]]:
    """Warm up (rep -1, once per ``warm_key``), then repetition 1 of every cell, then 2, ...

    A failed warm-up skips the cell's family (an endpoint answering 404 says why); a failed cell
    is recorded and not retried; cells the time limit cuts off are INCOMPLETE, never dropped.
    Returns the measurements and the failures by cell name.
    """
    results: list[M] = []
    failed: dict[str, str] = {}
    warmed: set[str] = set()
    for cell in cells:
        if cell.family in skipped or cell.warm_key in warmed:
            continue
        warmed.add(cell.warm_key)
        log(f"warm-up {cell.name}")
        try:
            measure(cell, -1)
        except MissingEndpoint as exc:
            skipped[cell.family] = str(exc)
        except Aborted:
            raise
        except Exception as exc:  # any failure skips the family, the others still run
            skipped[cell.family] = f"warm-up failed: {exc!r}"
    cells = [c for c in cells if c.family not in skipped]
    for family, why in skipped.items():
        log(f"SKIPPED {family}: {why}")
    deadline = time.monotonic() + time_limit
    done: dict[str, int] = {}
    for rep in range(reps):
        for cell in cells:
            if cell.name in failed:
                continue
            if time.monotonic() > deadline:
                failed[cell.name] = (
                    f"time limit ({time_limit:.0f}s of timed runs, --time-limit) reached:"
                    f" {done.get(cell.name, 0)} of {reps} repetitions"
                )
                continue
            try:
                m = measure(cell, rep)
            except Aborted:
                raise
            except Exception as exc:  # recorded; the cell is not retried, the others go on
                failed[cell.name] = repr(exc)
                log(f"FAILED {cell.name} (rep {rep + 1}): {exc!r}")
                continue
            results.append(m)
            done[cell.name] = done.get(cell.name, 0) + 1
            log(f"rep {rep + 1}/{reps} {describe(cell, m)}")
    return results, failed


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @staticmethod
    def of(values: Sequence[float]) -> Stat | None:
        return Stat(statistics.median(values), min(values), max(values), len(values)) if values else None

    def fmt(self, digits: int = 0) -> str:
        text = f"{self.median:,.{digits}f}"
        return text + (f" ({self.low:,.{digits}f}-{self.high:,.{digits}f})" if self.n > 1 else "")


def fmt_stat(stat: dict[str, Any] | None, digits: int = 0) -> str:
    return Stat(**stat).fmt(digits) if stat else "-"


def ratio_text(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def peaks(timings: Sequence[Timing]) -> dict[str, int]:
    return {k: max((t.peak[k] for t in timings), default=0) for k in MEMORY_FIELDS}


def memory_columns(peak: dict[str, int]) -> list[str]:
    """RssAnon (the process's own heap) and VmRSS (with mapped file pages, e.g. LMDB), MiB."""
    if not peak.get("VmRSS"):
        return ["-", "-"]
    return [f"{peak['RssAnon'] / MiB:.0f}", f"{peak['VmRSS'] / MiB:.0f}"]


MEMORY_HEADERS = ["RssAnon MiB peak", "VmRSS MiB peak"]


Load = tuple[float, float, float]  # os.getloadavg()

# Firecracker-style guests report freed pages to the host (virtio_balloon free page reporting),
# which takes them back; writing into such a page again costs a host fault, and on this VM that
# made the kernel's page-cache copy about 3 CPU-s per GB instead of 0.2-1 (bench/README.md, "A
# caveat"). The counter is printed so a reader can tell whether a run paid it.
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/reported_kib")


def reported_kib() -> int | None:
    """KiB of freed pages this kernel has reported to its host so far; None where it does not."""
    try:
        return int(PAGE_REPORTING.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class PageReports:
    """Freed pages the kernel handed back to the host during one benchmark run."""

    start: int | None = field(default_factory=reported_kib)
    end: int | None = None

    def finish(self) -> None:
        if self.end is None:
            self.end = reported_kib()

    def as_json(self) -> dict[str, int | None]:
        self.finish()
        return {"start": self.start, "end": self.end}

    def note(self) -> str | None:
        self.finish()
        if self.start is None or self.end is None:
            return None
        return (
            f"this kernel reported {(self.end - self.start) / 1024:,.0f} MiB of freed pages to its host during the run "
            "(virtio_balloon free page reporting): a write into such a page costs a host fault, so CPU per GB "
            "here runs above what the same code costs on a machine without that layer (bench/README.md, "
            '"A caveat")'
        )


def fmt_load(load: Load) -> str:
    return "/".join(f"{v:.2f}" for v in load)


def environment(setup: Setup) -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def first(path: str, prefix: str) -> str:
        return next((ln for ln in Path(path).read_text().splitlines() if ln.startswith(prefix)), "")

    nv = node_version()
    mem = first("/proc/meminfo", "MemTotal").split()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name").partition(":")[2].strip(),
        "mem_total_kib": int(mem[1]) if len(mem) > 1 else 0,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": ".".join(map(str, nv)) if nv else None,
        "workdir_fs": cmd("stat", "-f", "-c", "%T", str(setup.workdir)),
        "targets": {
            k: {"version": t.version, "durable": t.durable, "notes": t.notes} for k, t in setup.targets.items()
        },
    }


def add_run_args(parser: argparse.ArgumentParser, families: Sequence[str], *, peers: bool = True) -> None:
    """The options every transfer benchmark has: targets, backend, where things go."""
    parser.add_argument("--targets", default=",".join(families), help=f"comma list of {', '.join(families)}")
    parser.add_argument("--backend", default="lmdb", help="node storage backend (default lmdb)")
    parser.add_argument("--tmp-dir", type=Path, help="where stores and files go (default: system temp dir)")
    if peers:
        parser.add_argument("--peers-dir", type=Path, default=Path(__file__).parent / ".peers", help="npm cache dir")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON goes (bench/results)")
    parser.add_argument("--no-json", action="store_true", help="do not write a JSON result file")


def chosen_families(
    parser: argparse.ArgumentParser, args: argparse.Namespace, families: Sequence[str]
) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in args.targets.split(",") if f.strip())
    unknown = set(chosen) - set(families)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return chosen


def print_footer(
    setup: Setup,
    failed: dict[str, str],
    notes: Sequence[str],
    load: tuple[Load, Load],
    *,
    interrupted: bool,
    page_reports: PageReports | None = None,
) -> None:
    """Skips, failures, notes, the load average and the pages given back to the host, after a report."""
    if setup.skipped or failed:
        print()
    for family, why in setup.skipped.items():
        print(f"SKIPPED {family}: {why}")
    for cell, why in failed.items():
        print(f"{'INCOMPLETE' if why.startswith('time limit') else 'FAILED'} {cell}: {why}")
    for target in setup.targets.values():
        for note in target.notes:
            print(f"note ({target.label}): {note}")
    for note in notes:
        print(f"note: {note}")
    start, end = load
    print(f"load average (1/5/15 min) at start {fmt_load(start)}, at end {fmt_load(end)}")
    if start[0] >= 1.0:
        print(f"note: the machine was busy when the run started (other processes on {os.cpu_count()} CPUs)")
    reported = page_reports.note() if page_reports is not None else None
    if reported is not None:
        print(f"note: {reported}")
    if interrupted:
        print("(interrupted: partial results)")


def write_results(results_dir: Path, benchmark: str, started: str, payload: dict[str, Any]) -> Path:
    """``bench/results/NAME-<UTC time>.json`` (git-ignored)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{benchmark}-{started.replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps({"benchmark": benchmark, "started": started, **payload}, indent=2, default=str) + "\n")
    print(f"\nresults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


@dataclass
class Session:
    workdir: Path
    setup: Setup
    sampler: Sampler
    abort: threading.Event
    started: str
    load_start: Load
    page_reports: PageReports = field(default_factory=PageReports)


@contextlib.contextmanager
def session(prefix: str, tmp_dir: Path | None) -> Iterator[Session]:
    """A scratch dir, a memory sampler and SIGTERM as Ctrl-C; on the way out every server this
    run started is stopped by its PID and the scratch dir removed."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main else None
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_dir)).resolve()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sampler = Sampler()
    state = Session(workdir, Setup(workdir), sampler, threading.Event(), started, os.getloadavg())
    sampler.start()
    try:
        yield state
    finally:
        state.abort.set()
        for server in reversed(state.setup.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {server.name} (pid {server.popen.pid if server.popen else '?'}): {exc!r}")
        sampler.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
