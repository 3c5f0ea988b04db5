"""Delta sync: ``sync/status`` latency, long-poll wake-up, memory of waiting phones, journal appends.

``python -m bench sync`` (``--quick`` for a smoke run, ``--help`` for the knobs). The benchmark
starts ``vault serve`` as a child process on a free loopback port with a fresh data directory
(``[plans.free] devices = 0``, so one account can register as many devices as needed), and in one
run measures:

1. ``GET /sync/status?syncToken=T`` (``limit`` at its default, 1,000) on a small and a big account,
   with 0, 100 and 10,000 changes made after ``T`` (renames through ``sync/files``), each case
   asked ``--requests`` times, one request of each case in turn, in ``--rounds`` rotated orders;
   plus the time to drain every page from ``T``, and the idle phone's ``If-None-Match`` poll
   (304). The accounts are filled fast: one small file is uploaded normally, then thousands of
   files with the same checksum are created through ``sync/files`` (content the account holds is
   applied at once, no bytes sent).
2. Long-poll wake-up: one device waits on ``sync/status?syncToken=T&wait=60``, another renames a
   file through ``sync/files``; from just before the rename is sent, the rename's round trip and
   the time until the waiting request's answer arrives.
3. Node memory with ``--phones`` devices of one account each holding a ``wait=120`` request open
   on its own keep-alive connection (``VmRSS``/``RssAnon`` from ``/proc/PID/status`` before and
   while they wait), then one change releases them all: the time until every one has answered.
   Twice: in the node process that just signed the phones in, and after restarting the node.
4. Journal appends: renames applied per second in ``sync/files`` requests of 1,000 changes, of one
   change, and of one change on 8 connections at once (every change writes its journal entry in
   its own transaction).

Meanwhile one idle phone holds a ``wait=--long-wait`` poll on an account where nothing changes:
answered at the end of its wait, or dropped before?

The client is httpx on trio in this process, on the same two CPUs as the node: latencies include
its share. The node is stopped by its PID at the end (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import blake3
import httpx
import msgspec
import trio

from bench.api import free_port, percentile
from bench.common import REPO, RESULTS, MiB, scratch_dir, table
from bench.peers import proc_memory

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 60.0
VAULT = (sys.executable, "-c", "import sys; from vault.cli import main; sys.exit(main())", "serve", "--config")
PASSWORD = "benchmark password 1"
PAGE = 1000  # sync/status's default limit, which every measured request uses
BATCH = 1000  # the most changes one sync/files request takes
FOLDER_SIZE = 1000  # files per folder when filling an account
DRAIN_LIMIT = 5000  # the largest page, used only to find the journal head (untimed)
MAX_PAGES = 1000  # no page loop runs longer than this
TARGET_STATUS_RATIO = 1.2
TARGET_WAKE_P99_MS = 50.0
TARGET_RSS_MB = 150.0


class BenchError(RuntimeError):
    pass


# -- pure helpers (tested in tests/test_bench_sync.py) -------------------------------------------


def rename_gaps(levels: Sequence[int]) -> list[tuple[int, int]]:
    """How to make one token per pending level with the fewest changes.

    Take a token at the head, make ``a`` changes, take the next, and so on: returns the
    ``(level, changes made right after its token)`` pairs, the most pending first. The token of
    the last pair is taken at the end (0 changes after it unless 0 is not among the levels).
    """
    ordered = sorted(set(levels), reverse=True)
    if not ordered or ordered[-1] < 0:
        raise ValueError("pending levels must be non-negative")
    return [(level, level - (ordered[i + 1] if i + 1 < len(ordered) else 0)) for i, level in enumerate(ordered)]


def round_robin(count: int, start: int, size: int) -> list[int]:
    """``count`` indexes into ``size`` items, from ``start`` on, wrapping around: any ``size`` in a
    row are distinct, so a page of up to ``size`` renames names as many different files."""
    if size <= 0:
        raise ValueError("nothing to pick from")
    return [(start + n) % size for n in range(count)]


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def parse_proc_status(text: str) -> dict[str, int]:
    """``/proc/PID/status`` fields that are counts or ``kB`` sizes, as integers (kB for sizes)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) in (1, 2) and parts[0].isdigit() and (len(parts) == 1 or parts[1] == "kB"):
            fields[name.strip()] = int(parts[0])
    return fields


def cpu_seconds(stat_text: str) -> float:
    """``utime + stime`` of a ``/proc/PID/stat`` line, in seconds."""
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    rest = stat_text.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of seconds, in milliseconds (NaN when empty)."""
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else math.nan,
    }


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- the node ------------------------------------------------------------------------------------


class Node:
    """``vault serve`` as a child in its own session; started, restarted and stopped by its PID."""

    def __init__(self, work: Path) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.config = work / "vault.toml"
        self.config.write_text(
            f'[server]\nbind = "127.0.0.1:{port}"\n'
            f'[storage]\ndata_dir = "{work / "data"}"\n'
            # Devices unlimited: the memory case signs in a thousand phones on one account.
            '[plans.free]\ndevices = 0\nquota = "0"\n'
        )
        self.log = work / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the node is not running")
        return self.proc.pid

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = proc = subprocess.Popen(
                [*VAULT, str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise BenchError(f"vault serve exited with {proc.returncode}:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/api/health", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"vault serve did not answer within {READY_TIMEOUT:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    async def restart(self) -> None:
        await trio.to_thread.run_sync(self.stop)
        await trio.to_thread.run_sync(self.start)

    def status(self) -> dict[str, int]:
        return parse_proc_status(Path(f"/proc/{self.pid}/status").read_text())

    def memory(self) -> dict[str, int]:
        """VmRSS, RssAnon and RssFile in bytes (what ``bench.peers.Sampler`` watches)."""
        return proc_memory(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(Path(f"/proc/{self.pid}/stat").read_text())

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    async def settle(self, quiet: float = 0.5, limit: float = 30.0) -> float:
        """Wait until the node used no CPU for ``quiet`` seconds (at most ``limit``); seconds waited."""
        started = time.perf_counter()
        last = self.cpu()
        while time.perf_counter() - started < limit:
            await trio.sleep(quiet)
            now = self.cpu()
            if now - last < 0.01:
                break
            last = now
        return time.perf_counter() - started


@contextlib.contextmanager
def running_node(work: Path) -> Iterator[Node]:
    """A node on a free port with its data in ``work``; stopped by its PID afterwards."""
    node = Node(work)
    try:
        node.start()
        yield node
    finally:
        node.stop()


# -- the client ----------------------------------------------------------------------------------


def _data(response: httpx.Response, step: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise BenchError(f"{step}: HTTP {response.status_code} {response.text[:300]}")
    body = msgspec.json.decode(response.content)
    if not isinstance(body, dict):
        raise BenchError(f"{step}: unexpected answer {response.text[:300]}")
    data = body.get("data", body)
    if not isinstance(data, dict):
        raise BenchError(f"{step}: unexpected answer {response.text[:300]}")
    return data


async def register(client: httpx.AsyncClient, email: str, device: str) -> str:
    """Sign device ``device`` in to ``email`` (created on first use); its access token."""
    response = await client.post(
        "/api/mobile/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Bench",
            "deviceInfo": {"platform": "android", "model": "Bench", "deviceId": device},
        },
    )
    token: str = _data(response, "auth/register")["tokens"]["accessToken"]
    return token


class Device:
    """One signed-in device and the connection(s) it talks over."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def sync_files(self, changes: Sequence[dict[str, Any]]) -> dict[str, Any]:
        response = await self.client.post(
            "/api/mobile/sync/files", json={"localChanges": list(changes)}, headers=self.headers
        )
        data = _data(response, "sync/files")
        bad = [r for r in data["results"] if r.get("status") != "applied"]
        if bad or len(data["results"]) != len(changes):
            raise BenchError(f"sync/files: {len(bad)} of {len(changes)} changes not applied, e.g. {bad[:1]}")
        return data

    async def get_status(
        self, token: str | None, *, limit: int | None = None, wait: int | None = None, etag: str | None = None
    ) -> httpx.Response:
        params: dict[str, str | int] = {}
        if token:
            params["syncToken"] = token
        if limit is not None:
            params["limit"] = limit
        if wait is not None:
            params["wait"] = wait
        headers = self.headers if etag is None else {**self.headers, "If-None-Match": etag}
        return await self.client.get("/api/mobile/sync/status", params=params, headers=headers)

    async def status(self, token: str | None, *, limit: int | None = None, wait: int | None = None) -> dict[str, Any]:
        return _data(await self.get_status(token, limit=limit, wait=wait), "sync/status")

    async def upload(self, name: str, content: bytes) -> tuple[str, str]:
        """One small file the normal way (init, chunk, complete); its file id and checksum."""
        checksum = f"blake3:{blake3.blake3(content).hexdigest()}"
        entry = {"localId": name, "name": name, "size": len(content), "folder": "/", "checksum": checksum}
        init = _data(
            await self.client.post("/api/mobile/upload/init", json={"files": [entry]}, headers=self.headers),
            "upload/init",
        )
        (planned,) = init["files"]
        for chunk in planned["chunks"]:
            part = content[chunk["start"] : chunk["end"] + 1]
            headers = {
                **self.headers,
                "Content-Type": "application/octet-stream",
                "X-Chunk-Checksum": f"blake3:{blake3.blake3(part).hexdigest()}",
            }
            _data(await self.client.put(chunk["uploadUrl"], content=part, headers=headers), "chunk PUT")
        body = {"uploadId": planned["uploadId"], "checksum": checksum}
        done = _data(
            await self.client.post("/api/mobile/upload/complete", json=body, headers=self.headers), "upload/complete"
        )
        return str(done["file"]["id"]), checksum


async def head_token(device: Device, token: str | None) -> str:
    """The token at the account's journal head (pages from ``token``; untimed)."""
    for _ in range(MAX_PAGES):
        data = await device.status(token, limit=DRAIN_LIMIT)
        token = str(data["nextSyncToken"])
        if not data.get("hasMore"):
            return token
    raise BenchError("sync/status: still hasMore after the page bound")


@dataclass
class Account:
    label: str
    email: str
    writer: Device
    reader: Device
    file_ids: list[str] = field(default_factory=list)
    renames: int = 0  # renames made so far (names them uniquely, picks files round robin)

    def rename_changes(self, count: int) -> list[dict[str, Any]]:
        picks = round_robin(count, self.renames, len(self.file_ids))
        changes = [
            {"action": "rename", "fileId": self.file_ids[i], "name": f"f{i:06d}-r{self.renames + n}.txt"}
            for n, i in enumerate(picks)
        ]
        self.renames += count
        return changes


@dataclass
class Rate:
    """Changes applied by ``sync/files`` requests of ``batch`` changes on ``connections`` at once."""

    account: str
    action: str
    batch: int
    connections: int
    changes: int = 0
    requests: int = 0
    seconds: float = 0.0
    node_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else math.nan


async def apply_rate(node: Node, account: Account, rate: Rate, changes: list[dict[str, Any]]) -> None:
    """Send ``changes`` in requests of ``rate.batch`` on ``rate.connections`` connections; timed."""
    requests = chunked(changes, rate.batch)
    lanes = [requests[i :: rate.connections] for i in range(rate.connections)]

    async def lane(device: Device, mine: Sequence[Sequence[dict[str, Any]]]) -> None:
        for request in mine:
            started = time.perf_counter()
            await device.sync_files(request)
            rate.latencies.append(time.perf_counter() - started)

    async with contextlib.AsyncExitStack() as stack:
        devices = [account.writer]
        for _ in range(rate.connections - 1):  # one client (one connection) per lane, as many phones
            devices.append(Device(await stack.enter_async_context(single_client(node.base)), account.writer.token))
        for device in devices[1:]:  # open the connections untimed
            await device.client.get("/api/health")
        cpu, started = node.cpu(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for device, mine in zip(devices, lanes, strict=True):
                nursery.start_soon(lane, device, mine)
        rate.seconds += time.perf_counter() - started
        rate.node_cpu_s += node.cpu() - cpu
    rate.changes += len(changes)
    rate.requests += len(requests)


async def fill(account: Account, count: int, rate: Rate) -> None:
    """``count`` files: one uploaded normally, the rest created through ``sync/files`` with its
    checksum (applied at once, no bytes sent), ``FOLDER_SIZE`` to a folder; timed into ``rate``."""
    content = f"MegaVault sync benchmark seed for {account.email}\n".encode()
    file_id, checksum = await account.writer.upload("seed.txt", content)
    account.file_ids = [file_id]
    changes = [
        {
            "action": "upload",
            "localId": str(n),
            "name": f"f{n:06d}.txt",
            "folder": f"/bench/{n // FOLDER_SIZE:03d}",
            "size": len(content),
            "checksum": checksum,
        }
        for n in range(1, count)
    ]
    for request in chunked(changes, BATCH):
        started = time.perf_counter()
        data = await account.writer.sync_files(request)
        elapsed = time.perf_counter() - started
        rate.latencies.append(elapsed)
        rate.seconds += elapsed
        rate.changes += len(request)
        rate.requests += 1
        account.file_ids.extend(str(r["fileId"]) for r in data["results"])
        if rate.requests % 10 == 0:
            progress(f"  {account.label}: {len(account.file_ids):,} files ({rate.per_second:,.0f}/s)")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1. sync/status ------------------------------------------------------------------------------


@dataclass
class StatusCase:
    account: str
    files: int
    pending: int
    token: str
    etag: str | None = None  # If-None-Match with the answer's own ETag: the idle phone's 304
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    node_cpu_s: float = 0.0
    wire_bytes: int = 0
    drains: list[float] = field(default_factory=list)
    drain_pages: int = 0
    drain_errors: int = 0

    @property
    def label(self) -> str:
        return f"{self.pending:,}" + (" (If-None-Match: 304)" if self.etag else "")

    def expected(self, entries: int) -> int:
        """Files a page of ``entries`` consecutive round-robin renames names."""
        return min(entries, self.files)


async def make_tokens(account: Account, levels: Sequence[int], start: str) -> dict[int, str]:
    """A token per pending level: renames made after each (``rename_gaps``), drained untimed."""
    tokens: dict[int, str] = {}
    token = await head_token(account.reader, start)
    for level, gap in rename_gaps(levels):
        tokens[level] = token
        for request in chunked(account.rename_changes(gap), BATCH):
            await account.writer.sync_files(request)
        if gap:
            token = await head_token(account.reader, token)
    return tokens


async def status_once(node: Node, device: Device, case: StatusCase) -> None:
    started = time.perf_counter()
    response = await device.get_status(case.token, etag=case.etag)
    ok = False
    if case.etag is not None:
        ok = response.status_code == 304
    elif response.status_code == 200:
        data = _data(response, "sync/status")
        changes = data["changes"]
        named = len(changes["created"]) + len(changes["updated"]) + len(changes["deleted"])
        ok = (
            bool(data["hasChanges"]) == (case.pending > 0)
            and named == case.expected(min(case.pending, PAGE))
            and bool(data.get("hasMore")) == (case.pending > PAGE)
        )
    case.latencies.append(time.perf_counter() - started)
    case.wire_bytes += response.num_bytes_downloaded
    case.errors += not ok


async def drain(device: Device, case: StatusCase) -> None:
    """Every page from the case's token to the head, with the default limit; timed."""
    token, pages, named = case.token, 0, 0
    started = time.perf_counter()
    for _ in range(MAX_PAGES):
        data = await device.status(token)
        pages += 1
        changes = data["changes"]
        named += len(changes["created"]) + len(changes["updated"]) + len(changes["deleted"])
        token = str(data["nextSyncToken"])
        if not data.get("hasMore"):
            break
    case.drains.append(time.perf_counter() - started)
    full, rest = divmod(case.pending, PAGE)
    expected = full * case.expected(PAGE) + case.expected(rest)
    case.drain_pages = pages
    case.drain_errors += pages != max(1, math.ceil(case.pending / PAGE)) or named != expected


async def measure_status(
    node: Node, accounts: Sequence[Account], tokens: dict[str, dict[int, str]], requests: int, rounds: int, drains: int
) -> list[StatusCase]:
    cases: list[StatusCase] = []
    for account in accounts:
        levels = sorted(tokens[account.label])
        for level in levels:
            if level == 0:
                # The idle phone: its last answer's ETag, sent back while nothing changed.
                response = await account.reader.get_status(tokens[account.label][0])
                etag = response.headers.get("ETag")
                if etag:
                    cases.append(StatusCase(account.label, len(account.file_ids), 0, tokens[account.label][0], etag))
            cases.append(StatusCase(account.label, len(account.file_ids), level, tokens[account.label][level]))
    devices = {account.label: account.reader for account in accounts}
    # Interleaved request by request, the order rotated every round: a noisy moment on the machine
    # falls on every case alike rather than on one case's run of requests.
    for round_ in range(rounds):
        count = requests // rounds + (round_ < requests % rounds)
        turn = round_ % len(cases)
        order = cases[turn:] + cases[:turn]
        for _ in range(count):
            for case in order:
                cpu = node.cpu()
                await status_once(node, devices[case.account], case)
                case.node_cpu_s += node.cpu() - cpu
        progress(f"  status round {round_ + 1}/{rounds} done")
    for _ in range(drains):
        for case in cases:
            if case.pending and case.etag is None:
                await drain(devices[case.account], case)
    return cases


# -- 2. long-poll wake-up ------------------------------------------------------------------------


@dataclass
class WakeUps:
    commit: list[float] = field(default_factory=list)  # rename sent -> its answer received
    wake: list[float] = field(default_factory=list)  # rename sent -> waiting request answered
    after_commit: list[float] = field(default_factory=list)  # rename answered -> waiting answered
    early: int = 0  # the waiting request answered before the change was made
    missed: int = 0  # not answered within 10 s of the change
    wrong: int = 0  # answered without the renamed file


async def long_poll(account: Account, waiter: Device, token: str, reps: int, settle: float) -> WakeUps:
    result = WakeUps()
    for _ in range(reps):
        got: dict[str, Any] = {}
        answered = trio.Event()

        async def wait(token: str = token, got: dict[str, Any] = got, answered: trio.Event = answered) -> None:
            data = await waiter.status(token, wait=60)
            got["at"] = time.perf_counter()
            got["data"] = data
            answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.sleep(settle)  # let the waiting request reach the node and start waiting
            if answered.is_set():
                result.early += 1
                token = str(got["data"]["nextSyncToken"])
                continue
            change = account.rename_changes(1)
            sent = time.perf_counter()
            await account.writer.sync_files(change)
            committed = time.perf_counter()
            with trio.move_on_after(10):
                await answered.wait()
            if not answered.is_set():
                result.missed += 1
                nursery.cancel_scope.cancel()
                token = await head_token(waiter, token)
                continue
        data = got["data"]
        ids = {f["id"] for f in data["changes"]["updated"]}
        if not data["hasChanges"] or change[0]["fileId"] not in ids:
            result.wrong += 1
        token = str(data["nextSyncToken"])
        result.commit.append(committed - sent)
        result.wake.append(got["at"] - sent)
        result.after_commit.append(got["at"] - committed)
    return result


# -- 3. a thousand phones waiting ----------------------------------------------------------------


@dataclass
class MemorySample:
    phase: str
    vm_rss_kib: int
    rss_anon_kib: int
    rss_file_kib: int
    threads: int
    fds: int


def sample(node: Node, phase: str) -> MemorySample:
    status = node.status()
    return MemorySample(
        phase,
        status.get("VmRSS", 0),
        status.get("RssAnon", 0),
        status.get("RssFile", 0) + status.get("RssShmem", 0),
        status.get("Threads", 0),
        node.fds(),
    )


@dataclass
class PollRound:
    """One round of every phone long-polling at once, then one change releasing them all."""

    label: str
    phones: int
    first_sync_s: float = 0.0
    settle_s: float = 0.0
    early: int = 0
    missed: int = 0
    wrong: int = 0
    held_at_node: int = 0  # requests the node's log shows waiting from before the release
    waiting_node_cpu_s: float = math.nan  # node CPU over a second while every phone waits
    release_commit_ms: float = math.nan
    release_all_ms: float = math.nan
    release_p50_ms: float = math.nan
    release_node_cpu_s: float = math.nan  # node CPU from the release until every phone had its answer
    failed: int = 0  # answered with an error (or the connection failed)
    failure: str = ""  # the first such error
    idle: MemorySample | None = None  # connections open, no request
    waiting: MemorySample | None = None

    @property
    def errors(self) -> int:
        return self.early + self.missed + self.wrong + self.failed + self.phones - self.held_at_node


@dataclass
class Phones:
    phones: int
    register_s: float = 0.0
    rounds: list[PollRound] = field(default_factory=list)


SSL_CONTEXT = ssl.create_default_context()  # shared: building one per client costs milliseconds


def single_client(base: str, timeout: float = REQUEST_TIMEOUT) -> httpx.AsyncClient:
    """A client with exactly one keep-alive connection, which it never lets expire."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None)
    return httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits, verify=SSL_CONTEXT)


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


PHONES_EMAIL = "phones@example.com"


async def many_phones(node: Node, count: int, memory: list[MemorySample], wait: int) -> Phones:
    """``count`` devices of one account, then two rounds of them all waiting at once: in the node
    process that just signed them in, and in a fresh one after a restart."""
    result = Phones(count)
    async with contextlib.AsyncExitStack() as stack:
        setup = [await stack.enter_async_context(single_client(node.base)) for _ in range(8)]
        writer = await register(setup[0], PHONES_EMAIL, "phones-writer")
        file_id, _ = await Device(setup[0], writer).upload("seed.txt", b"the file whose rename releases every phone\n")
        access: list[str] = [""] * count
        todo = iter(range(count))

        async def sign_in(client: httpx.AsyncClient) -> None:
            for n in todo:
                access[n] = await register(client, PHONES_EMAIL, f"phone-{n:05d}")

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for client in setup:
                nursery.start_soon(sign_in, client)
        result.register_s = time.perf_counter() - started
    progress(f"  {count} phones registered in {result.register_s:.1f} s")
    await node.settle()
    memory.append(sample(node, f"{count} phones registered, no connection"))
    result.rounds.append(await poll_round(node, "same process", access, writer, file_id, memory, wait, "released-1"))
    progress("  restarting the node")
    await node.restart()
    await node.settle()
    memory.append(sample(node, "node restarted"))
    result.rounds.append(await poll_round(node, "after a restart", access, writer, file_id, memory, wait, "released-2"))
    return result


async def poll_round(
    node: Node,
    label: str,
    access: list[str],
    writer_token: str,
    file_id: str,
    memory: list[MemorySample],
    wait: int,
    new_name: str,
) -> PollRound:
    count = len(access)
    result = PollRound(label, count)
    # One client, and so one keep-alive connection, per phone: httpx's pool hands a burst of
    # requests to the same idle connection, so 1,000 requests on one client allowing 1,000
    # connections queue behind each other in the client instead of waiting at the node.
    async with contextlib.AsyncExitStack() as stack:
        writer = Device(await stack.enter_async_context(single_client(node.base)), writer_token)
        phones = [Device(await stack.enter_async_context(single_client(node.base, wait + 30.0)), t) for t in access]
        tokens: list[str] = [""] * count

        async def first_sync(n: int) -> None:
            tokens[n] = str((await phones[n].status(None))["nextSyncToken"])

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n in range(count):
                nursery.start_soon(first_sync, n)
        result.first_sync_s = time.perf_counter() - started
        await node.settle()
        result.idle = sample(node, f"{label}: {count} keep-alive connections open, idle")
        memory.append(result.idle)

        answers: list[float] = [math.nan] * count
        datas: list[dict[str, Any] | None] = [None] * count
        left = [count]
        everyone = trio.Event()
        log_offset = node.log.stat().st_size

        async def poll(n: int) -> None:
            try:
                datas[n] = await phones[n].status(tokens[n], wait=wait)
                answers[n] = time.perf_counter()
            except (BenchError, httpx.HTTPError) as exc:  # counted and shown, the others go on
                result.failed += 1
                result.failure = result.failure or f"{type(exc).__name__}: {exc}"[:300]
            finally:
                left[0] -= 1
                if not left[0]:
                    everyone.set()

        async with trio.open_nursery() as nursery:
            for n in range(count):
                nursery.start_soon(poll, n)
            result.settle_s = await node.settle()
            cpu = node.cpu()
            peak = sample(node, f"{label}: {count} phones waiting (wait={wait})")
            for _ in range(5):
                await trio.sleep(0.2)
                now = sample(node, peak.phase)
                if now.vm_rss_kib > peak.vm_rss_kib:
                    peak = now
            result.waiting_node_cpu_s = node.cpu() - cpu
            result.waiting = peak
            memory.append(peak)
            result.early = sum(not math.isnan(a) for a in answers)
            cpu, sent = node.cpu(), time.perf_counter()
            await writer.sync_files([{"action": "rename", "fileId": file_id, "name": f"{new_name}.txt"}])
            result.release_commit_ms = (time.perf_counter() - sent) * 1000
            with trio.move_on_after(60):
                await everyone.wait()
            result.release_node_cpu_s = node.cpu() - cpu
            nursery.cancel_scope.cancel()
        done = sorted(a - sent for a in answers if not math.isnan(a))
        result.missed = count - len(done) - result.failed
        result.wrong = sum(
            1
            for d in datas
            if d is not None and (not d["hasChanges"] or file_id not in {f["id"] for f in d["changes"]["updated"]})
        )
        if done:
            result.release_all_ms = done[-1] * 1000
            result.release_p50_ms = percentile(done, 0.5) * 1000
        await node.settle()
        # The node's own request log: how many of these requests it held from before the release
        # (all, unless the client queued some). Every answer reached the client within
        # release_all_ms of the release, so one the node took longer than that over began before.
        result.held_at_node = held_requests(node.log, log_offset, result.release_all_ms)
        memory.append(sample(node, f"{label}: all answered, connections still open"))
    await node.settle()
    memory.append(sample(node, f"{label}: connections closed"))
    return result


def held_requests(log: Path, offset: int, min_ms: float) -> int:
    """``sync/status`` answers in the node's request log after ``offset`` that took ``min_ms`` or more."""
    with open(log, "rb") as file:
        file.seek(offset)
        lines = file.read().splitlines()
    held = 0
    for line in lines:
        with contextlib.suppress(msgspec.DecodeError):
            entry = msgspec.json.decode(line)
            if (
                isinstance(entry, dict)
                and entry.get("route") == "/api/mobile/sync/status"
                and float(entry.get("duration_ms", 0)) >= min_ms
            ):
                held += 1
    return held


# -- a long poll held past the socket read timeout -----------------------------------------------


@dataclass
class LongWait:
    wait: int
    answered_after_s: float = math.nan
    outcome: str = "not run"


async def long_wait(node: Node, wait: int, result: LongWait, done: trio.Event) -> None:
    """One idle phone on its own account waits ``wait`` s with nothing changing: answered
    (``hasChanges: false``) at the end, or dropped earlier?"""
    with trio.move_on_after(wait + 35.0):
        await _long_wait(node, wait, result)
    done.set()


async def _long_wait(node: Node, wait: int, result: LongWait) -> None:
    async with single_client(node.base, wait + 30.0) as client:
        device = Device(client, await register(client, "idle@example.com", "idle-phone"))
        token = str((await device.status(None))["nextSyncToken"])
        started = time.perf_counter()
        try:
            response = await device.get_status(token, wait=wait)
            result.outcome = f"HTTP {response.status_code}"
            if response.status_code == 200:
                result.outcome += f", hasChanges {str(_data(response, 'sync/status')['hasChanges']).lower()}"
        except httpx.HTTPError as exc:
            result.outcome = f"{type(exc).__name__}: {exc}"
        result.answered_after_s = time.perf_counter() - started


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Plan:
    small: int
    big: int
    pending: list[int]
    requests: int
    rounds: int
    drains: int
    wakeups: int
    settle: float
    phones: int
    phone_wait: int
    batches: int
    singles: int
    long_wait: int


@dataclass
class Outcome:
    version: str = ""
    population: list[Rate] = field(default_factory=list)
    status: list[StatusCase] = field(default_factory=list)
    wakeups: WakeUps = field(default_factory=WakeUps)
    phones: Phones | None = None
    appends: list[Rate] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    long_wait: LongWait | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)


async def run(node: Node, plan: Plan) -> Outcome:
    out = Outcome()
    async with httpx.AsyncClient(base_url=node.base, timeout=10) as client:
        out.version = str((await client.get("/api/health")).json().get("version", "?"))
    out.memory.append(sample(node, "started, empty"))
    started = time.perf_counter()
    long_wait_done = trio.Event()
    async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as background:

        async def device(email: str, name: str) -> Device:
            client = await stack.enter_async_context(single_client(node.base))
            return Device(client, await register(client, email, name))

        if plan.long_wait:
            out.long_wait = LongWait(plan.long_wait)
            background.start_soon(long_wait, node, plan.long_wait, out.long_wait, long_wait_done)

        def phase(name: str, since: float) -> float:
            now = time.perf_counter()
            out.phase_seconds[name] = round(now - since, 1)
            return now

        accounts: list[Account] = []
        for label, files in (("small", plan.small), ("big", plan.big)):
            email = f"{label}@example.com"
            account = Account(
                label, email, await device(email, f"{label}-writer"), await device(email, f"{label}-reader")
            )
            progress(f"filling the {label} account with {files:,} files")
            rate = Rate(label, "upload (content already held)", BATCH, 1)
            cpu = node.cpu()
            await fill(account, files, rate)
            rate.node_cpu_s = node.cpu() - cpu
            out.population.append(rate)
            accounts.append(account)
        mark = phase("fill accounts", started)
        await node.settle()
        out.memory.append(sample(node, f"accounts filled ({plan.small:,} + {plan.big:,} files)"))

        progress(f"making tokens with {', '.join(f'{p:,}' for p in sorted(plan.pending))} pending changes")
        tokens: dict[str, dict[int, str]] = {}
        for account in accounts:
            start = (await account.writer.sync_files(account.rename_changes(1)))["nextSyncToken"]
            tokens[account.label] = await make_tokens(account, plan.pending, str(start))
        mark = phase("make pending changes", mark)
        progress(f"sync/status: {plan.requests} requests per case in {plan.rounds} rounds, {plan.drains} drains")
        out.status = await measure_status(node, accounts, tokens, plan.requests, plan.rounds, plan.drains)
        mark = phase("sync/status", mark)

        progress(f"long-poll wake-up, {plan.wakeups} repetitions")
        small = accounts[0]
        waiter = await device(small.email, "small-waiter")
        token = await head_token(waiter, tokens["small"][0])
        out.wakeups = await long_poll(small, waiter, token, plan.wakeups, plan.settle)
        mark = phase("long poll", mark)

        progress("journal appends")
        for account in accounts:
            out.appends += [
                Rate(account.label, "rename", BATCH, 1),
                Rate(account.label, "rename", 1, 1),
                Rate(account.label, "rename", 1, 8),
            ]
        for round_ in range(plan.rounds):
            for rate in out.appends:
                account = next(a for a in accounts if a.label == rate.account)
                total = plan.batches * BATCH if rate.batch == BATCH else plan.singles
                count = total // plan.rounds + (round_ < total % plan.rounds)
                await apply_rate(node, account, rate, account.rename_changes(count))
        mark = phase("journal appends", mark)
        await node.settle()
        out.memory.append(sample(node, "before the phones"))

        if out.long_wait is not None:  # before the phones: their case restarts the node
            progress(f"waiting for the wait={plan.long_wait} long poll to end")
            with trio.move_on_after(plan.long_wait + 40):
                await long_wait_done.wait()
            mark = phase("rest of the idle long poll", mark)

        progress(f"{plan.phones} phones long-polling at once")
        out.phones = await many_phones(node, plan.phones, out.memory, plan.phone_wait)
        mark = phase("phones", mark)
    return out


# -- report --------------------------------------------------------------------------------------


def kib_to_mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def status_ratio(cases: Sequence[StatusCase], pending: int, key: str) -> float:
    def pick(account: str) -> float:
        for case in cases:
            if case.account == account and case.pending == pending and case.etag is None:
                return float(summary_ms(case.latencies)[key])
        return math.nan

    small, big = pick("small"), pick("big")
    return big / small if small and not math.isnan(small) else math.nan


def report(out: Outcome, plan: Plan) -> tuple[str, dict[str, bool]]:
    lines: list[str] = []
    targets: dict[str, bool] = {}

    lines.append("Filling the accounts (sync/files `upload` of content the account holds, 1,000 per request):\n")
    lines.append(
        table(
            ("account", "files", "requests", "seconds", "files/s", "node CPU ms/file"),
            [
                (
                    r.account,
                    f"{r.changes + 1:,}",
                    str(r.requests),
                    f"{r.seconds:.1f}",
                    f"{r.per_second:,.0f}",
                    f"{1000 * r.node_cpu_s / max(1, r.changes):.2f}",
                )
                for r in out.population
            ],
        )
    )

    lines.append(f"\n1. GET /sync/status?syncToken=T (limit {PAGE}), {plan.requests} requests per row:\n")
    rows = []
    for case in out.status:
        s = summary_ms(case.latencies)
        drain = (
            f"{ms(1000 * sorted(case.drains)[len(case.drains) // 2])} ({case.drain_pages})"
            + (" ERR" if case.drain_errors else "")
            if case.drains
            else "-"
        )
        rows.append(
            (
                case.account,
                f"{case.files:,}",
                case.label,
                str(len(case.latencies)),
                str(case.errors),
                ms(s["p50_ms"]),
                ms(s["p99_ms"]),
                f"{case.wire_bytes / max(1, len(case.latencies)) / 1024:.1f}",
                f"{1000 * case.node_cpu_s / max(1, len(case.latencies)):.1f}",
                drain,
            )
        )
    lines.append(
        table(
            (
                "account",
                "files",
                "pending",
                "requests",
                "errors",
                "p50 ms",
                "p99 ms",
                "KiB/answer (gzip)",
                "node CPU ms/req",
                "drain all pages ms (pages)",
            ),
            rows,
        )
    )
    p50 = status_ratio(out.status, 0, "p50_ms")
    p99 = status_ratio(out.status, 0, "p99_ms")
    targets["status: no pending changes, big ÷ small account ≤ 1.2×"] = p50 <= TARGET_STATUS_RATIO
    others = ", ".join(f"{p:,} pending {status_ratio(out.status, p, 'p50_ms'):.2f}×" for p in sorted(plan.pending) if p)
    lines.append(
        f"\nNo pending changes, {plan.big:,} ÷ {plan.small:,} files: p50 {p50:.2f}× (p99 {p99:.2f}×); "
        f"target ≤ {TARGET_STATUS_RATIO}× on p50: {met(p50 <= TARGET_STATUS_RATIO)}. Same ratio: {others}."
    )

    w = out.wakeups
    lines.append(f"\n2. Long-poll wake-up (small account, wait=60, {len(w.wake)} repetitions):\n")
    lines.append(
        table(
            ("from", "to", "p50 ms", "p99 ms", "max ms"),
            [
                ("rename sent", "its sync/files answer received", *(ms(v) for v in summary_ms(w.commit).values())),
                ("rename sent", "waiting request's answer received", *(ms(v) for v in summary_ms(w.wake).values())),
                (
                    "rename answer received",
                    "waiting request's answer received",
                    *(ms(v) for v in summary_ms(w.after_commit).values()),
                ),
            ],
        )
    )
    wake_p99 = summary_ms(w.wake)["p99_ms"]
    targets["long poll: p99 rename sent → waiting answer < 50 ms"] = wake_p99 < TARGET_WAKE_P99_MS and not (
        w.missed or w.wrong
    )
    lines.append(
        f"\nAnswered before the change (early) {w.early}, not within 10 s {w.missed}, without the change {w.wrong}. "
        f"Target p99 < {TARGET_WAKE_P99_MS:.0f} ms: {ms(wake_p99)} ms, "
        f"{met(targets['long poll: p99 rename sent → waiting answer < 50 ms'])}."
    )

    ph = out.phones
    if ph is not None:
        lines.append(f"\n3. Node memory, {ph.phones} phones of one account each waiting on its own connection:\n")
        lines.append(
            table(
                ("phase", "VmRSS MiB", "RssAnon MiB", "RssFile MiB", "threads", "open fds"),
                [
                    (
                        m.phase,
                        kib_to_mib(m.vm_rss_kib),
                        kib_to_mib(m.rss_anon_kib),
                        kib_to_mib(m.rss_file_kib),
                        str(m.threads),
                        str(m.fds),
                    )
                    for m in out.memory
                ],
            )
        )
        lines.append(
            f"\nSetup: {ph.phones} devices registered in {ph.register_s:.1f} s "
            f"({1000 * ph.register_s / ph.phones:.0f} ms each, 8 at a time; one argon2 check per sign-in)."
        )
        phone_rows = []
        for r in ph.rounds:
            assert r.idle is not None and r.waiting is not None
            rss_mb = r.waiting.vm_rss_kib * 1024 / 1e6
            ok = rss_mb < TARGET_RSS_MB and not r.errors
            targets[f"memory ({r.label}): VmRSS with {ph.phones} phones waiting < 150 MB"] = ok
            phone_rows.append(
                (
                    r.label,
                    f"{r.first_sync_s:.1f}",
                    f"{r.held_at_node}/{r.phones}",
                    f"{1000 * r.waiting_node_cpu_s:.0f}",
                    f"{(r.waiting.rss_anon_kib - r.idle.rss_anon_kib) / r.phones:+.1f}",
                    f"{rss_mb:.0f}",
                    f"{r.waiting.rss_anon_kib * 1024 / 1e6:.0f}",
                    ms(r.release_commit_ms),
                    ms(r.release_p50_ms),
                    ms(r.release_all_ms),
                    f"{1000 * r.release_node_cpu_s / r.phones:.2f}",
                    str(r.errors),
                    met(ok),
                )
            )
        lines.append("")
        lines.append(
            table(
                (
                    "round",
                    "first sync of all, s",
                    "held at node",
                    "node CPU ms/s waiting",
                    "RssAnon KiB/phone waiting",
                    "VmRSS MB waiting",
                    "RssAnon MB waiting",
                    "release: rename ms",
                    "p50 answered ms",
                    "all answered ms",
                    "node CPU ms/answer",
                    "errors",
                    "< 150 MB",
                ),
                phone_rows,
            )
        )
        for r in ph.rounds:
            if r.failed:
                lines.append(f"\n{r.label}: {r.failed} polls answered with an error, e.g. {r.failure}")
        lines.append(
            "\n(held at node: the node's request log shows the request waiting from before the release; errors: "
            "answered before the change, not within 60 s, without the change, or not held at the node. "
            "Release times from just before the rename is sent.)"
        )

    if ph is None:
        lines.append("\n3. Node memory with many phones waiting: NOT RUN")
        targets["memory: VmRSS with the phones waiting < 150 MB"] = False

    lines.append("\n4. Journal appends: renames through sync/files, one journal entry each:\n")
    lines.append(
        table(
            (
                "account",
                "changes/request",
                "connections",
                "changes",
                "seconds",
                "changes/s",
                "p50 ms/request",
                "node CPU ms/change",
            ),
            [
                (
                    r.account,
                    f"{r.batch:,}",
                    str(r.connections),
                    f"{r.changes:,}",
                    f"{r.seconds:.1f}",
                    f"{r.per_second:,.0f}",
                    ms(summary_ms(r.latencies)["p50_ms"]),
                    f"{1000 * r.node_cpu_s / max(1, r.changes):.2f}",
                )
                for r in out.appends
            ],
        )
    )
    if out.long_wait is not None:
        lw = out.long_wait
        lines.append(
            f"\nAn idle phone's wait={lw.wait} poll (nothing changes on its account): "
            f"{lw.outcome} after {lw.answered_after_s:.1f} s."
        )
    lines.append("\nTargets: " + "; ".join(f"{name}: {met(ok)}" for name, ok in targets.items()))
    return "\n".join(lines), targets


def run_errors(out: Outcome) -> int:
    return (
        sum(c.errors + c.drain_errors for c in out.status)
        + out.wakeups.missed
        + out.wakeups.wrong
        + (sum(r.errors for r in out.phones.rounds) if out.phones else 1)
    )


def git_describe() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "vault"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in vault/" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 and 10,000 files, fewer of everything")
    parser.add_argument("--small", type=int, help="files on the small account (default 1000)")
    parser.add_argument("--big", type=int, help="files on the big account (default 100000; --quick 10000)")
    parser.add_argument("--pending", help="pending changes per token, comma-separated (default 0,100,10000)")
    parser.add_argument("--requests", type=int, help="sync/status requests per case (default 200; --quick 40)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--drains", type=int, help="times each backlog is drained (default 3; --quick 1)")
    parser.add_argument("--wakeups", type=int, help="long-poll repetitions (default 100; --quick 20)")
    parser.add_argument("--settle", type=float, default=0.1, help="s between a long poll and the change (0.1)")
    parser.add_argument("--phones", type=int, help="phones long-polling at once (default 1000; --quick 200)")
    parser.add_argument("--phone-wait", type=int, default=120, help="their wait=N (default 120)")
    parser.add_argument("--batches", type=int, help="1,000-change requests per account (default 10; --quick 2)")
    parser.add_argument("--singles", type=int, help="one-change requests per row (default 1000; --quick 200)")
    parser.add_argument(
        "--long-wait", type=int, help="one idle poll with this wait=N in the background (default 90; --quick 0 = off)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON result too")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: int | None, full: int, short: int) -> int:
        return value if value is not None else short if quick else full

    pending = (
        [int(p) for p in args.pending.split(",")] if args.pending else ([0, 100, 1000] if quick else [0, 100, 10000])
    )
    plan = Plan(
        small=pick(args.small, 1000, 1000),
        big=pick(args.big, 100_000, 10_000),
        pending=sorted(set(pending)),
        requests=pick(args.requests, 200, 40),
        rounds=max(1, args.rounds),
        drains=pick(args.drains, 3, 1),
        wakeups=pick(args.wakeups, 100, 20),
        settle=args.settle,
        phones=pick(args.phones, 1000, 200),
        phone_wait=args.phone_wait,
        batches=pick(args.batches, 10, 2),
        singles=pick(args.singles, 1000, 200),
        long_wait=pick(args.long_wait, 90, 0),
    )
    if plan.small < 2 or plan.big < 2 or 0 not in plan.pending:
        parser.error("accounts need at least 2 files, and --pending must include 0")
    fd_limit = raise_fd_limit(plan.phones + 512)
    load_before = os.getloadavg()
    started = time.perf_counter()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    kept_log = RESULTS / f"sync-{stamp}-node.log"
    with scratch_dir("sync-") as work, running_node(work) as node:
        try:
            out = trio.run(run, node, plan)
        except BaseException:
            shutil.copy(node.log, kept_log)
            print(f"the node's log: {kept_log.relative_to(REPO)}", file=sys.stderr)
            raise
        data_mib = sum(f.stat().st_size for f in (work / "data").rglob("*") if f.is_file()) / MiB
        if run_errors(out):
            shutil.copy(node.log, kept_log)
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - started
    command = " ".join(["python -m bench sync", *(argv if argv is not None else sys.argv[1:])])
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in out.phase_seconds.items())
    print(
        f"`{command}`: node {out.version} ({git_describe()}), one node process over loopback, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, 1-min load {load_before[0]:.1f} at start, "
        f"{load_after[0]:.1f} at end; {elapsed / 60:.1f} min in all ({phases}); "
        f"data dir {data_mib:,.0f} MiB at the end\n"
    )
    text, targets = report(out, plan)
    print(text)
    path = RESULTS / f"sync-{stamp}.json"
    summary = {
        "command": command,
        "version": out.version,
        "commit": git_describe(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "fd_limit": fd_limit,
        "load_average": {"before": load_before, "after": load_after},
        "seconds": round(elapsed, 1),
        "phase_seconds": out.phase_seconds,
        "plan": asdict(plan),
        "population": [asdict(r) for r in out.population],
        "status": [
            {**{k: v for k, v in asdict(c).items() if k not in ("token", "etag")}, **summary_ms(c.latencies)}
            | {"if_none_match": c.etag is not None}
            for c in out.status
        ],
        "wakeups": {
            **asdict(out.wakeups),
            "commit_summary": summary_ms(out.wakeups.commit),
            "wake_summary": summary_ms(out.wakeups.wake),
        },
        "phones": asdict(out.phones) if out.phones else None,
        "memory": [asdict(m) for m in out.memory],
        "appends": [asdict(r) | {"changes_per_s": r.per_second} for r in out.appends],
        "long_wait": asdict(out.long_wait) if out.long_wait else None,
        "targets": targets,
    }
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nJSON: {path.relative_to(REPO)}")
    if kept_log.exists():
        print(f"errors: the node's log is kept in {kept_log.relative_to(REPO)}")
    if args.json:
        print(path.read_text())
    errors = run_errors(out)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
