"""Upload benchmark: the node's upload API and tus endpoint against raw disk, nginx and ``@tus/server``.

Run ``python -m bench.uploads`` (``--quick`` for a smoke run, ``--help`` for the knobs). Everything
is measured in one run, interleaved (repetition 1 of every cell, then repetition 2, ...), because
the machines are noisy and only ratios inside one run mean anything. See ``bench/UPLOADS.md``.

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
import itertools
import json
import os
import platform
import queue
import random
import resource
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
from typing import Any
from urllib.parse import urljoin

import blake3
import httpx

from bench.common import MB, REPO, RESULTS, KiB, MiB, size_label, table
from bench.peers import (
    MEMORY_FIELDS,
    BenchError,
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
FAMILIES = ("raw", "dd", "nginx", "tus", "node-api", "node-tus")
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

_tags = itertools.count(random.SystemRandom().randrange(1 << 40) << 16)


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


@dataclass
class BigUpload:
    tag: int
    view: memoryview
    checksum: str = ""  # blake3 hex of the whole file, for the node
    chunk_checksums: dict[tuple[int, int], str] = field(default_factory=dict)  # (start, stop) -> hex

    @property
    def size(self) -> int:
        return len(self.view)

    def chunk_checksum(self, start: int, stop: int, ctx: Ctx) -> str:
        known = self.chunk_checksums.get((start, stop))
        if known is None:
            ctx.note("node chose chunk boundaries other than requested: hashing them in the timed region")
            known = self.chunk_checksums[(start, stop)] = b3(self.view[start:stop])
        return known


@dataclass
class SmallUploads:
    tag: int
    files: list[bytes]
    checksums: list[str]

    @property
    def size(self) -> int:
        return sum(len(f) for f in self.files)


def random_bytes(rng: random.Random, size: int) -> bytearray:
    """Incompressible bytes (``randbytes`` overflows above 256 MiB - 1 on Python 3.11: go in pieces)."""
    buf = bytearray()
    while len(buf) < size:
        buf += rng.randbytes(min(16 * MiB, size - len(buf)))
    return buf


class Payloads:
    """One random buffer per workload, restamped for every upload (outside the timed region)."""

    def __init__(self, params: Params) -> None:
        rng = random.Random(0x6D656761)
        self.params = params
        self.big = random_bytes(rng, params.big_size)
        self.small = random_bytes(rng, params.small_count * params.small_size)

    def big_upload(self, *, checksums: bool, chunk_size: int | None) -> BigUpload:
        tag = next(_tags)
        stamp(self.big, tag, len(self.big))
        upload = BigUpload(tag, memoryview(self.big))
        if checksums:
            upload.checksum = b3(upload.view, threads=True)
            if chunk_size:
                for start in range(0, upload.size, chunk_size):
                    stop = min(start + chunk_size, upload.size)
                    upload.chunk_checksums[(start, stop)] = b3(upload.view[start:stop])
        return upload

    def small_uploads(self, *, checksums: bool, count: int | None = None) -> SmallUploads:
        tag = next(_tags)
        size = self.params.small_size
        stamp(self.small, tag, size)
        n = self.params.small_count if count is None else count
        files = [bytes(self.small[i * size : (i + 1) * size]) for i in range(n)]
        return SmallUploads(tag, files, [b3(f) for f in files] if checksums else [])


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


def expect(response: httpx.Response, codes: tuple[int, ...], what: str) -> httpx.Response:
    if response.status_code not in codes:
        text = response.text.replace("\n", " ")[:300]
        raise BenchError(f"{what}: HTTP {response.status_code} {text}")
    return response


class MissingEndpoint(BenchError):
    """The node answers 404 for an upload endpoint: the API is not there (yet)."""


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


# --- nginx WebDAV -----------------------------------------------------------------------------


class NginxClient:
    def __init__(self, peer: NginxPeer) -> None:
        self.base = peer.base_url + "/store"

    def put(self, client: httpx.Client, path: str, data: memoryview | bytes) -> None:
        content, headers = body_of(data)
        # 201 Created; 204 would mean an overwrite (nginx's slower path): the store is cleared between runs.
        expect(client.put(f"{self.base}/{path}", content=content, headers=headers), (201, 204), "nginx PUT")

    def big(self, clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        self.put(clients[0], f"big-{up.tag}.bin", up.view)

    def small(self, client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            self.put(client, f"s{ups.tag}/f{i:05d}.bin", ups.files[i])


# --- tus 1.0 (both @tus/server and the node's /api/mobile/tus/) --------------------------------


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

    def create(self, client: httpx.Client, name: str, size: int, body: bytes | None = None) -> tuple[str, int]:
        """POST (creation, with the body when given: creation-with-upload) → (upload URL, offset)."""
        metadata = f"filename {b64(name)},folder {b64('/bench')},filetype {b64('application/octet-stream')}"
        headers = {**self.headers, "Upload-Length": str(size), "Upload-Metadata": metadata}
        if body is not None:
            headers["Content-Type"] = "application/offset+octet-stream"
        response = self._check(client.post(self.endpoint, headers=headers, content=body or b""), (201,), "POST")
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
        url, offset = self.create(client, name, len(data))
        while offset < len(data):
            ctx.check()
            offset = self.patch(client, url, offset, data[offset : offset + patch_size])

    def small(self, client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        for i in indices:
            ctx.check()
            data = ups.files[i]
            url, offset = self.create(client, f"s{ups.tag}-{i:05d}.bin", len(data), data)
            if offset < len(data):  # the server took only part of the body with the POST
                self.patch(client, url, offset, memoryview(data)[offset:])


def tus_big(tus: TusClient, patch_size: int) -> Callable[[list[httpx.Client], BigUpload, Ctx], None]:
    def run(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
        tus.upload(clients[0], f"big-{up.tag}.bin", up.view, patch_size, ctx)

    return run


# --- the node's upload API (API.md, Uploads) ---------------------------------------------------


class NodeApi:
    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url + "/api/mobile"
        self.auth = {"Authorization": f"Bearer {token}"}

    def _check(self, response: httpx.Response, step: str) -> dict[str, Any]:
        if response.status_code == 404 and step in ("upload/init", "upload/complete"):
            raise MissingEndpoint(f"POST /api/mobile/{step} answers 404: the node has no upload API yet")
        expect(response, (200, 201), step)
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

    def put_chunk(self, client: httpx.Client, chunk: dict[str, Any], data: memoryview | bytes, checksum: str) -> None:
        content, extra = body_of(data)
        headers = {
            **self.auth,
            **extra,
            "Content-Type": "application/octet-stream",
            "X-Chunk-Checksum": f"blake3:{checksum}",
        }
        answer = self._check(client.put(chunk["uploadUrl"], content=content, headers=headers), "chunk PUT")
        if answer.get("received") not in (None, len(data), True):
            raise BenchError(f"chunk PUT: received {answer.get('received')!r}, sent {len(data)}")

    def complete(self, client: httpx.Client, upload_id: str, checksum: str) -> None:
        body = {"uploadId": upload_id, "checksum": f"blake3:{checksum}"}
        answer = self._check(
            client.post(self.base + "/upload/complete", json=body, headers=self.auth), "upload/complete"
        )
        if not isinstance(answer.get("file"), dict):
            raise BenchError("upload/complete: no data.file in the answer")

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

    def big(self, chunk_size: int) -> Callable[[list[httpx.Client], BigUpload, Ctx], None]:
        def run(clients: list[httpx.Client], up: BigUpload, ctx: Ctx) -> None:
            entry = self.entry(f"big-{up.tag}", f"big-{up.tag}.mp4", up.size, up.checksum, "video/mp4")
            (answer,) = self.init(clients[0], [entry], chunk_size)
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
                    self.put_chunk(client, chunk, up.view[start:stop], up.chunk_checksum(start, stop, ctx))

            if len(clients) == 1:
                stream(clients[0])
            else:
                run_parallel([functools.partial(stream, c) for c in clients], ctx)
            self.complete(clients[0], answer["uploadId"], up.checksum)

        return run

    def one_request(self, client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        """``POST upload/file`` for each file: its bytes as the body, its description in the query."""
        for i in indices:
            ctx.check()
            data = ups.files[i]
            params = {
                "name": f"s{ups.tag}-{i:05d}.jpg",
                "folder": "/bench",
                "checksum": f"blake3:{ups.checksums[i]}",
                "mimeType": "image/jpeg",
            }
            headers = {**self.auth, "Content-Type": "application/octet-stream"}
            response = client.post(self.base + "/upload/file", params=params, content=data, headers=headers)
            if response.status_code == 404:
                raise MissingEndpoint("POST /api/mobile/upload/file answers 404: the node has no one-request upload")
            answer = self._check(response, "upload/file")
            if answer.get("status") != "created" or not isinstance(answer.get("file"), dict):
                raise BenchError(f"upload/file: expected a created file, got {response.text[:300]}")

    def small(self, client: httpx.Client, ups: SmallUploads, indices: list[int], ctx: Ctx) -> None:
        """init for ``indices`` (one or a batch), then PUT + complete each file."""
        entries = [
            self.entry(
                f"s{ups.tag}-{i}",
                f"s{ups.tag}-{i:05d}.jpg",
                len(ups.files[i]),
                ups.checksums[i],
                "image/jpeg",
            )
            for i in indices
        ]
        answers = self.init(client, entries, None)
        for i, answer in zip(indices, answers, strict=True):
            ctx.check()
            for chunk in answer["chunks"]:
                start, stop = int(chunk["start"]), int(chunk["end"]) + 1
                data = ups.files[i] if (start, stop) == (0, len(ups.files[i])) else ups.files[i][start:stop]
                checksum = ups.checksums[i] if data is ups.files[i] else b3(data)
                self.put_chunk(client, chunk, data, checksum)
            self.complete(client, answer["uploadId"], ups.checksums[i])


# --- targets and variants ---------------------------------------------------------------------

BigFn = Callable[[list[httpx.Client], BigUpload, Ctx], None]
SmallFn = Callable[[httpx.Client, SmallUploads, list[int], Ctx], None]


@dataclass
class Target:
    """A thing that stores bytes: raw disk, dd, or a server process (shared by its variants)."""

    key: str
    label: str
    version: str
    durable: str
    process: ServerProcess | None = None
    cpu: Callable[[], float] = time.process_time
    reset: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)


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


@dataclass
class Setup:
    """What started: targets, variants, servers (for cleanup) and skip notes."""

    workdir: Path
    targets: dict[str, Target] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    servers: list[ServerProcess] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # family -> why


def tus_patch_sizes(params: Params) -> list[int]:
    """The chunk sizes, then the whole file in one PATCH (tus-js-client's default, @tus's best case)."""
    sizes = [c for c in params.chunk_sizes if c < params.big_size]
    return [*sizes, params.big_size] if params.tus_whole_file else sizes or [params.big_size]


def patch_label(params: Params, size: int) -> str:
    return f"{size_label(size)} (whole file)" if size == params.big_size else size_label(size)


def build(params: Params, setup: Setup, sampler: Sampler, peers_dir: Path, log: Callable[[str], None]) -> None:
    """Start every selected server and describe the rows to measure; a failing target is skipped."""
    fam = params.families
    if "raw" in fam or "dd" in fam:
        raw = RawDisk(setup.workdir)
        if "raw" in fam:
            target = Target("raw", "raw write+fsync", "in-process os.write+os.fsync", "fsync", reset=raw.reset)
            setup.targets["raw"] = target
            setup.variants.append(Variant("raw", "raw", "raw os.write + fsync", target, raw.big, raw.small))
        if "dd" in fam:
            if shutil.which("dd") is None:
                setup.skipped["dd"] = "dd is not installed"
            else:
                target = Target("dd", "dd", "dd conv=fsync", "fsync", cpu=children_cpu, reset=raw.reset)
                setup.targets["dd"] = target
                setup.variants.append(Variant("dd", "dd", "dd bs=1M conv=fsync (from /dev/zero)", target, raw.dd))

    if "nginx" in fam:
        try:
            nginx = NginxPeer(setup.workdir, workers=params.nginx_workers)
            setup.servers.append(nginx.process)
            nginx.start()
        except BenchError as exc:
            setup.skipped["nginx"] = str(exc)
        else:
            target = Target(
                "nginx",
                f"nginx {nginx.version.removeprefix('nginx/')}",
                nginx.version,
                "no fsync",
                nginx.process,
                nginx.process.cpu_seconds,
                nginx.clear_store,
            )
            target.notes.append(f"worker_processes {params.nginx_workers}")
            setup.targets["nginx"] = target
            sampler.watch("nginx", nginx.process)
            webdav = NginxClient(nginx)
            label = f"nginx {nginx.version.removeprefix('nginx/')} WebDAV PUT"
            setup.variants.append(Variant("nginx", "nginx", label, target, webdav.big, webdav.small))

    if "tus" in fam:
        try:
            tus = TusPeer(setup.workdir, peers_dir, log)
            setup.servers.append(tus.process)
            tus.start()
        except BenchError as exc:
            setup.skipped["tus"] = str(exc)
        else:
            target = Target(
                "tus",
                f"@tus/server {tus.version}",
                f"@tus/server {tus.version} + @tus/file-store {tus.file_store_version}, Node {tus.node_version}",
                "no fsync",
                tus.process,
                tus.process.cpu_seconds,
                tus.clear_store,
            )
            if tus.note:
                target.notes.append(tus.note)
            setup.targets["tus"] = target
            sampler.watch("tus", tus.process)
            tus_client = TusClient(tus.endpoint, {}, "@tus/server", missing_is_404=False)
            for n, chunk in enumerate(tus_patch_sizes(params)):
                setup.variants.append(
                    Variant(
                        f"tus-{size_label(chunk)}",
                        "tus",
                        f"@tus/server {tus.version} PATCH {patch_label(params, chunk)}",
                        target,
                        tus_big(tus_client, chunk),
                        tus_client.small if n == 0 else None,
                        chunk_size=chunk,
                    )
                )

    if "node-api" in fam or "node-tus" in fam:
        build_node(params, setup, sampler)


def build_node(params: Params, setup: Setup, sampler: Sampler) -> None:
    fam = params.families
    try:
        node = NodeServer(setup.workdir, backend=params.backend)
        setup.servers.append(node.process)
        node.start()
        token = node.register()
    except BenchError as exc:
        for family in ("node-api", "node-tus"):
            if family in fam:
                setup.skipped[family] = str(exc)
        return
    target = Target(
        "node",
        "node",
        f"MegaVault node {node.version} ({params.backend})",
        "fsync",
        node.process,
        node.process.cpu_seconds,
    )
    setup.targets["node"] = target
    sampler.watch("node", node.process)
    if "node-api" in fam:
        api = NodeApi(node.base_url, token)
        for n, chunk in enumerate(params.chunk_sizes):
            setup.variants.append(
                Variant(
                    f"node-api-{size_label(chunk)}",
                    "node-api",
                    f"node API {size_label(chunk)} chunks",
                    target,
                    api.big(chunk),
                    api.small if n == 0 else None,  # small files are one chunk whatever the size
                    chunk_size=chunk,
                    checksums=True,
                )
            )
        if params.streams > 1:
            for chunk in params.chunk_sizes:
                label = f"node API {params.streams} streams × {size_label(chunk)}"
                setup.variants.append(
                    Variant(
                        f"node-api-{params.streams}x{size_label(chunk)}",
                        "node-api",
                        label,
                        target,
                        api.big(chunk),
                        streams=params.streams,
                        chunk_size=chunk,
                        checksums=True,
                    )
                )
        setup.variants.append(
            Variant(
                "node-api-1req",
                "node-api",
                "node API, one request per file (upload/file)",
                target,
                small=api.one_request,
                checksums=True,
            )
        )
        if params.batch > 1:
            label = f"node API, init for {params.batch} files at once"
            setup.variants.append(
                Variant(
                    "node-api-batch",
                    "node-api",
                    label,
                    target,
                    small=api.small,
                    small_unit=params.batch,
                    checksums=True,
                )
            )
    if "node-tus" in fam:
        tus = TusClient(
            node.base_url + "/api/mobile/tus/",
            {"Authorization": f"Bearer {token}"},
            "node tus",
            missing_is_404=True,
        )
        for n, chunk in enumerate(tus_patch_sizes(params)):
            setup.variants.append(
                Variant(
                    f"node-tus-{size_label(chunk)}",
                    "node-tus",
                    f"node tus PATCH {patch_label(params, chunk)}",
                    target,
                    tus_big(tus, chunk),
                    tus.small if n == 0 else None,
                    chunk_size=chunk,
                )
            )


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


class Runner:
    def __init__(self, params: Params, payloads: Payloads, sampler: Sampler, abort: threading.Event) -> None:
        self.params = params
        self.payloads = payloads
        self.sampler = sampler
        self.abort = abort
        self.notes: set[str] = set()

    def ctx(self) -> Ctx:
        return Ctx(time.monotonic() + self.params.measure_timeout, self.abort, self.notes)

    def measure(self, variant: Variant, workload: str, concurrency: int, rep: int) -> Measurement:
        """One timed run; payload preparation, client creation and cleanup stay outside the timing."""
        target = variant.target
        clients: list[httpx.Client] = []
        try:
            if workload == BIG:
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
                units: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
                for start in range(0, files, variant.small_unit):
                    units.put(list(range(start, min(start + variant.small_unit, files))))
                small_fn = variant.small

                def worker(client: httpx.Client) -> None:
                    while True:
                        ctx.check()
                        try:
                            unit = units.get_nowait()
                        except queue.Empty:
                            return
                        small_fn(client, small, unit, ctx)

                def job() -> None:
                    if len(clients) == 1:
                        worker(clients[0])
                    else:
                        run_parallel([functools.partial(worker, c) for c in clients], ctx)

            ctx = self.ctx()
            self.sampler.open_window(target.key)
            cpu0, client0 = target.cpu(), time.process_time()
            t0 = time.perf_counter()
            job()
            seconds = time.perf_counter() - t0
            cpu1, client1 = target.cpu(), time.process_time()
            peak = self.sampler.close_window(target.key)
        finally:
            for client in clients:
                client.close()
            target.reset()
            os.sync()  # no dirty pages of one target left to slow the next one down
        return Measurement(
            variant.key,
            workload,
            concurrency,
            rep,
            seconds,
            nbytes,
            files,
            cpu1 - cpu0,
            client1 - client0,
            peak,
        )


@dataclass
class Cell:
    variant: Variant
    workload: str
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.variant.key}/{self.workload}" + (f"/c{self.concurrency}" if self.workload == SMALL else "")


def plan_cells(params: Params, variants: list[Variant]) -> list[Cell]:
    cells: list[Cell] = []
    for variant in variants:
        if variant.big is not None:
            cells.append(Cell(variant, BIG, variant.streams))
        if variant.small is not None:
            cells.extend(Cell(variant, SMALL, c) for c in params.concurrency)
    return cells


def run_all(
    params: Params, setup: Setup, runner: Runner, log: Callable[[str], None]
) -> tuple[list[Measurement], dict[str, str]]:
    """Warm up each family, then run every cell ``reps`` times, interleaved; returns failures by cell."""
    results: list[Measurement] = []
    failed: dict[str, str] = {}
    deadline = time.monotonic() + params.time_limit
    cells = plan_cells(params, setup.variants)

    # Warm-up, once per family: one big upload and a few small files, untimed (the first large
    # write after idle is often 3-4× slower on these disks). A failure here skips the family.
    warmed: set[tuple[str, str]] = set()
    for cell in cells:
        family = cell.variant.family
        if family in setup.skipped or (family, cell.workload) in warmed:
            continue
        warmed.add((family, cell.workload))
        log(f"warm-up {cell.variant.label} ({cell.workload})")
        try:
            runner.measure(cell.variant, cell.workload, 1, -1)
        except MissingEndpoint as exc:
            setup.skipped[family] = str(exc)
        except Aborted:
            raise
        except Exception as exc:  # any failure skips the family, the others still run
            setup.skipped[family] = f"warm-up failed: {exc!r}"
    cells = [c for c in cells if c.variant.family not in setup.skipped]
    for family, why in setup.skipped.items():
        log(f"SKIPPED {family}: {why}")

    done: dict[str, int] = {}
    for rep in range(params.reps):
        for cell in cells:
            if cell.name in failed:
                continue
            if time.monotonic() > deadline:
                failed[cell.name] = (
                    f"time limit ({params.time_limit:.0f}s of timed runs, --time-limit) reached:"
                    f" {done.get(cell.name, 0)} of {params.reps} repetitions"
                )
                continue
            try:
                m = runner.measure(cell.variant, cell.workload, cell.concurrency, rep)
            except Aborted:
                raise
            except Exception as exc:  # recorded; the cell is not retried, the others go on
                failed[cell.name] = repr(exc)
                log(f"FAILED {cell.name} (rep {rep + 1}): {exc!r}")
                continue
            results.append(m)
            done[cell.name] = done.get(cell.name, 0) + 1
            log(f"rep {rep + 1}/{params.reps} {describe(cell, m)}")
    return results, failed


def describe(cell: Cell, m: Measurement) -> str:
    if m.workload == BIG:
        rate = f"{m.nbytes / MB / m.seconds:8.1f} MB/s"
    else:
        rate = f"{m.files / m.seconds:8.1f} files/s (c={m.concurrency})"
    rss = f"rss {m.peak['VmRSS'] / MiB:.0f} MiB (anon {m.peak['RssAnon'] / MiB:.0f})" if m.peak["VmRSS"] else ""
    return f"{cell.variant.label:<44} {rate}  cpu {m.server_cpu:.2f}s  {rss}"


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @staticmethod
    def of(values: list[float]) -> Stat | None:
        return Stat(statistics.median(values), min(values), max(values), len(values)) if values else None

    def fmt(self, digits: int = 0) -> str:
        text = f"{self.median:.{digits}f}"
        return text + (f" ({self.low:.{digits}f}-{self.high:.{digits}f})" if self.n > 1 else "")


def rate_of(m: Measurement) -> float:
    """MB/s for the big file, files/s for small files."""
    return m.nbytes / MB / m.seconds if m.workload == BIG else m.files / m.seconds


def summarise(params: Params, setup: Setup, sampler: Sampler, results: list[Measurement]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for variant in setup.variants:
        mine = [m for m in results if m.variant == variant.key]
        row: dict[str, Any] = {
            "key": variant.key,
            "family": variant.family,
            "label": variant.label,
            "target": variant.target.key,
            "durable": variant.target.durable,
            "streams": variant.streams,
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


REFERENCES = ("nginx", "tus", "raw")


def ratios(params: Params, rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Medians divided by nginx, by the best @tus/server row, and by raw write+fsync, per workload."""
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
            "Ratios of medians (÷ nginx, ÷ the best @tus/server row, ÷ raw write+fsync):",
            "",
            table(headers, ratio_table),
        ]
    lines += issue_targets(rows, table_ratios)
    return "\n".join(lines)


def issue_targets(rows: list[dict[str, Any]], table_ratios: dict[str, dict[str, float | None]]) -> list[str]:
    """The issue's "Done when" targets, checked against this run."""
    node_rows = [r for r in rows if r["family"] == "node-api" and r["cells"]]
    if not node_rows:
        return []
    out = ["", "Issue 4 targets (this run):"]
    nginx = next((_rate(r, BIG) for r in rows if r["family"] == "nginx"), None)
    for row in node_rows:
        if BIG not in row["cells"]:
            continue
        rt = table_ratios[row["key"]]
        if row["streams"] == 1:
            tus, ngx = rt.get(f"{BIG}/tus"), rt.get(f"{BIG}/nginx")
            if tus is not None:
                out.append(f"- {row['label']}: ahead of @tus/server: {'yes' if tus > 1 else 'NO'} (×{tus:.2f})")
            if ngx is not None:
                out.append(f"- {row['label']}: ≥ 0.8× nginx: {'yes' if ngx >= 0.8 else 'NO'} (×{ngx:.2f})")
        else:
            rate = _rate(row, BIG)
            if nginx and rate:
                ok = "yes" if rate > nginx else "NO"
                out.append(f"- {row['label']}: ahead of nginx's single stream: {ok} (×{rate / nginx:.2f})")
    node = [r for r in rows if r["target"] == "node" and r["cells"]]
    if node and "memory_start" in node[0]:
        start = node[0]["memory_start"]
        vm, anon = max(_row_peak(r, "VmRSS") for r in node), max(_row_peak(r, "RssAnon") for r in node)
        ok = "yes" if vm < 150 * MB else "NO"
        out.append(
            f"- node RSS below 150 MB: {ok} (VmRSS {start['VmRSS'] / MB:.0f} → peak {vm / MB:.0f} MB;"
            f" anonymous memory {start['RssAnon'] / MB:.0f} → peak {anon / MB:.0f} MB, the rest are file"
            " pages the process maps, e.g. an LMDB map)"
        )
    return out


def environment(setup: Setup) -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    nv = node_version()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in ln
            ),
            "",
        ),
        "mem_total_kib": next(
            (int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")),
            0,
        ),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": ".".join(map(str, nv)) if nv else None,
        "workdir_fs": cmd("stat", "-f", "-c", "%T", str(setup.workdir)),
        "targets": {
            k: {"version": t.version, "durable": t.durable, "notes": t.notes} for k, t in setup.targets.items()
        },
    }


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
    parser.add_argument("--targets", default=",".join(FAMILIES), help=f"comma list of {', '.join(FAMILIES)}")
    parser.add_argument("--backend", default="lmdb", help="node storage backend (default lmdb)")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes (default 1)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=480.0,
        help="seconds for the timed runs, warm-ups excluded (default 480)",
    )
    parser.add_argument("--tmp-dir", type=Path, help="where stores go (default: system temp dir)")
    parser.add_argument("--peers-dir", type=Path, default=Path(__file__).parent / ".peers", help="npm cache dir")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON goes (bench/results)")
    parser.add_argument("--no-json", action="store_true", help="do not write a JSON result file")
    args = parser.parse_args(argv)

    families = tuple(f.strip() for f in args.targets.split(",") if f.strip())
    unknown = set(families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
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


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in load)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    abort = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = (
        signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() else None
    )
    load_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="megavault-bench-uploads-", dir=args.tmp_dir)).resolve()
    setup = Setup(workdir)
    sampler = Sampler()
    results: list[Measurement] = []
    failed: dict[str, str] = {}
    interrupted = False
    try:
        log(
            f"work dir {workdir}; preparing {size_label(params.big_size)} + {params.small_count} × "
            f"{size_label(params.small_size)} of random data"
        )
        payloads = Payloads(params)
        sampler.start()
        build(params, setup, sampler, args.peers_dir, log)
        # Disk warm-up before anything is timed: the first large writes after idle (and into memory
        # the VM has not touched yet) are several times slower here. Four big writes with fsync.
        log("warm-up: writing the big file 4 times with fsync")
        for _ in range(4):
            write_fsync(workdir / "warmup.bin", memoryview(payloads.big))
            (workdir / "warmup.bin").unlink()
        os.sync()
        env = environment(setup)
        runner = Runner(params, payloads, sampler, abort)
        try:
            results, failed = run_all(params, setup, runner, log)
        except (KeyboardInterrupt, Aborted):
            interrupted = True
            abort.set()
            log("interrupted: stopping, reporting what was measured")
        notes = sorted(runner.notes)
    except KeyboardInterrupt:
        interrupted, notes, env = True, [], {}
        abort.set()
    finally:
        abort.set()
        for server in reversed(setup.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {server.name} (pid {server.popen.pid if server.popen else '?'}): {exc!r}")
        sampler.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    load_end = os.getloadavg()
    rows = summarise(params, setup, sampler, results)
    table_ratios = ratios(params, rows)
    print()
    print(report(params, rows, table_ratios))
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
    print(f"load average (1/5/15 min) at start {fmt_load(load_start)}, at end {fmt_load(load_end)}")
    if load_start[0] >= 1.0:
        print(f"note: the machine was busy when the run started (other processes on {os.cpu_count()} CPUs)")
    if interrupted:
        print("(interrupted: partial results)")

    if not args.no_json:
        out = {
            "benchmark": "uploads",
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, "-m", "bench.uploads", *(argv or sys.argv[1:])]),
            "interrupted": interrupted,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(params).items()},
            "units": {"MB": MB, "GB": GB, "rss": "bytes"},
            "environment": env,
            "loadavg": {"start": load_start, "end": load_end},
            "rows": rows,
            "ratios": table_ratios,
            "skipped": setup.skipped,
            "failed": failed,
            "notes": notes,
            "measurements": [vars(m) for m in results],
        }
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / f"uploads-{started.replace(':', '').replace('-', '')}.json"
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
