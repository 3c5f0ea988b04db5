"""Authenticated API throughput: ``GET /devices`` and ``POST /auth/refresh`` over loopback.

``python -m bench api`` (``--help`` for the knobs). The benchmark starts ``vault serve`` as a
child process on a free port with a fresh data directory, signs in one device per connection,
then for each endpoint runs ``--connections`` concurrent keep-alive connections (httpx) until
``--requests`` answers or ``--seconds`` have passed, whichever comes first, split into
``--rounds`` interleaved rounds. It reports requests per
second and p50/p99 latency, beside the same ``GET /devices`` route without a token (answered 401
before any JWT or metadata work: routing, request log, error envelope), measured the same way in
the same run, which is the ceiling of the HTTP stack on this machine.

- ``GET /devices`` verifies the JWT, reads the device record to check the session is live, and
  lists the account's devices: the cost every authenticated request pays, plus a small read.
- ``POST /auth/refresh`` rotates the token: one durable (fsync'd) LMDB commit per request, so it
  measures the metadata store's commit path. Each connection refreshes its own device's chain.

The node is stopped by its PID at the end (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import trio

from bench.common import RESULTS, format_rate, format_ratio, scratch_dir, table

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PASSWORD = "benchmark password 1"


@dataclass
class Result:
    endpoint: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@contextlib.contextmanager
def running_node(data_dir: Path) -> Iterator[str]:
    """``vault serve`` in its own session on a free port; yields its base URL, stops it by PID."""
    port = free_port()
    config = data_dir / "vault.toml"
    config.write_text(
        f'[server]\nbind = "127.0.0.1:{port}"\n'
        f'[storage]\ndata_dir = "{data_dir / "data"}"\n'
        # One device per connection: no device limit, and no failed logins expected.
        '[plans]\ndefault = "enterprise"\n'
    )
    log_path = data_dir / "node.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from vault.cli import main; sys.exit(main())",
                "serve",
                "--config",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log_path)
        yield base
    finally:
        _stop(proc)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vault serve exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"vault serve did not answer within {READY_TIMEOUT:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def sign_in(client: httpx.AsyncClient, index: int) -> dict[str, str]:
    """Register device ``bench-<index>``; returns its tokens and client device id."""
    response = await client.post(
        "/api/mobile/auth/register",
        json={
            "email": "bench@example.com",
            "password": PASSWORD,
            "name": "Bench",
            "deviceInfo": {"platform": "android", "model": "Bench", "deviceId": f"bench-{index}"},
        },
    )
    response.raise_for_status()
    tokens: dict[str, str] = response.json()["tokens"]
    return {**tokens, "deviceId": f"bench-{index}"}


Request = Callable[[httpx.AsyncClient, int], Awaitable[bool]]


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


async def measure(
    samples: Samples, base: str, connections: int, max_requests: int, max_seconds: float, request: Request
) -> None:
    """Run ``request`` on ``connections`` concurrent connections until the count or time is up."""
    issued = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Open the connections untimed.
        async with trio.open_nursery() as nursery:
            for worker in range(connections):
                nursery.start_soon(request, client, worker)
        deadline = trio.current_time() + max_seconds

        async def run(worker: int) -> None:
            nonlocal issued
            while issued < max_requests and trio.current_time() < deadline:
                issued += 1
                started = time.perf_counter()
                ok = await request(client, worker)
                samples.latencies.append(time.perf_counter() - started)
                samples.errors += not ok

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for worker in range(connections):
                nursery.start_soon(run, worker)
        samples.seconds += time.perf_counter() - started


def summarise(name: str, samples: Samples) -> Result:
    ordered = sorted(samples.latencies)
    return Result(
        endpoint=name,
        requests=len(ordered),
        errors=samples.errors,
        seconds=round(samples.seconds, 3),
        rps=len(ordered) / samples.seconds if samples.seconds > 0 else math.nan,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
    )


async def run_benchmark(
    base: str, connections: int, max_requests: int, max_seconds: float, rounds: int
) -> list[Result]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        devices = [await sign_in(client, i) for i in range(connections)]

    async def unauthenticated(client: httpx.AsyncClient, worker: int) -> bool:
        return (await client.get("/api/mobile/devices")).status_code == 401

    async def list_devices(client: httpx.AsyncClient, worker: int) -> bool:
        headers = {"Authorization": f"Bearer {devices[worker]['accessToken']}"}
        return (await client.get("/api/mobile/devices", headers=headers)).status_code == 200

    async def refresh(client: httpx.AsyncClient, worker: int) -> bool:
        device = devices[worker]
        response = await client.post(
            "/api/mobile/auth/refresh",
            json={"refreshToken": device["refreshToken"], "deviceId": device["deviceId"]},
        )
        if response.status_code != 200:
            return False
        device.update(response.json()["tokens"])
        return True

    cases: list[tuple[str, Request]] = [
        ("GET /api/mobile/devices, no token (401)", unauthenticated),
        ("GET /api/mobile/devices", list_devices),
        ("POST /api/mobile/auth/refresh", refresh),
    ]
    samples = {name: Samples() for name, _ in cases}
    # Interleaved rounds: the machine's noise (other processes) falls on every case alike.
    for _ in range(rounds):
        for name, request in cases:
            await measure(samples[name], base, connections, max_requests // rounds, max_seconds / rounds, request)
    return [summarise(name, samples[name]) for name, _ in cases]


def report(results: list[Result]) -> str:
    ceiling = results[0].rps
    rows = [
        (
            r.endpoint,
            str(r.requests),
            str(r.errors),
            format_rate(r.rps),
            format_ratio(r.rps, ceiling),
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
        )
        for r in results
    ]
    return table(("endpoint", "requests", "errors", "req/s", "of 401 path", "p50 ms", "p99 ms"), rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--requests", type=int, default=3000, help="at most this many per endpoint (default 3000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per endpoint (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the budget is split into (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with scratch_dir("api-") as work, running_node(work) as base:
        results = trio.run(run_benchmark, base, args.connections, args.requests, args.seconds, max(1, args.rounds))
    print(
        f"{args.connections} connections over loopback, one node process, "
        f"{os.cpu_count()} CPUs (1-min load {load_before[0]:.1f} before), "
        f"Python {platform.python_version()}\n"
    )
    print(report(results))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"api-{stamp}.json"
    summary = {
        "command": " ".join(["python -m bench api", *(argv if argv is not None else sys.argv[1:])]),
        "connections": args.connections,
        "rounds": args.rounds,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": [asdict(r) for r in results],
    }
    out.write_text(json.dumps(summary, indent=2))
    if args.json:
        print(out.read_text())
    failed = sum(r.errors for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
