"""Push delivery: deliveries per second the outbox sustains to a local webhook, and the latency
from an upload completing to the webhook receiving its notification.

``python -m bench push`` (``--quick`` for a smoke run). Starts ``vault serve`` as a child process
(``[push] providers = ["webhook"]``, the webhook pointed at a receiver in this process: a bare
Hypercorn-trio ASGI app that records each POST's arrival and answers 204), then in one run:

1. **Throughput.** ``--devices`` devices of one account register for push; one of them uploads
   ``--uploads`` small files, 8 at a time. Each completed upload is one ``uploads`` notification
   with a delivery per device, so the outbox fills faster than it drains. Reported: deliveries per
   second from the first webhook arrival to the last, next to the same number of POSTs of the
   same bodies sent straight to the receiver by httpx with the node's concurrency (8): the
   receiver and loopback's own ceiling on this machine, so the ratio is the outbox's cost.
2. **Latency.** On a second account with one registered device, ``--samples`` uploads one after
   another; for each, the time from the ``upload/complete`` answer arriving to the webhook POST
   naming that ``fileId`` arriving (both clocks are this process's). Reported: p50, p99, max.

Node CPU seconds and RssAnon (``/proc/PID/status``) are printed too. The node is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from bench.api import percentile
from bench.ceiling import lifespan
from bench.sync import Device, Node, register

CONCURRENCY = 8


@dataclass
class Receiver:
    """The webhook consumer: arrival time and body of each POST."""

    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        self.arrivals.append((time.perf_counter(), json.loads(body) if body else {}))
        self.changed.set()
        self.changed = trio.Event()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, count: int) -> None:
        while len(self.arrivals) < count:
            await self.changed.wait()


class PushNode(Node):
    def __init__(self, work: Path, hook: str) -> None:
        super().__init__(work)
        with open(self.config, "a") as fh:
            fh.write(f'[push]\nproviders = ["webhook"]\nsync_hint_interval = "1h"\n[push.webhook]\nurl = "{hook}"\n')


async def sign_in_registered(client: httpx.AsyncClient, email: str, device: str) -> Device:
    d = Device(client, await register(client, email, device))
    response = await client.post(
        "/api/mobile/notifications/register",
        headers=d.headers,
        json={
            "deviceId": device,
            "pushToken": f"token-{device}",
            "platform": "android",
            "preferences": {"security": False},
        },
    )
    if response.status_code != 200:
        raise RuntimeError(f"notifications/register: {response.status_code} {response.text[:200]}")
    return d


async def throughput(node: PushNode, receiver: Receiver, devices: int, uploads: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=node.base, timeout=60) as client:
        registered = [await sign_in_registered(client, "many@example.com", f"dev-{i}") for i in range(devices)]
        receiver.arrivals.clear()
        cpu0 = node.cpu()
        limiter = trio.CapacityLimiter(CONCURRENCY)

        async def one(n: int) -> None:
            async with limiter:
                await registered[0].upload(f"t-{n}.bin", os.urandom(1024))

        async with trio.open_nursery() as nursery:
            for n in range(uploads):
                nursery.start_soon(one, n)
        expected = devices * uploads
        with trio.fail_after(600):
            await receiver.wait_for(expected)
        cpu = node.cpu() - cpu0
    times = [t for t, _ in receiver.arrivals[:expected]]
    node_rate = (expected - 1) / (times[-1] - times[0])
    bodies = [b for _, b in receiver.arrivals[:expected]]
    # The peer: the same POSTs straight to the receiver, 8 at a time.
    receiver.arrivals.clear()
    async with httpx.AsyncClient(timeout=60) as direct:
        started = time.perf_counter()
        limiter = trio.CapacityLimiter(CONCURRENCY)

        async def post(body: dict[str, Any]) -> None:
            async with limiter:
                await direct.post(node.hook, json=body)

        async with trio.open_nursery() as nursery:
            for body in bodies:
                nursery.start_soon(post, body)
        direct_rate = expected / (time.perf_counter() - started)
    return {"deliveries": expected, "node_per_s": node_rate, "direct_per_s": direct_rate, "node_cpu_s": cpu}


async def latency(node: PushNode, receiver: Receiver, samples: int) -> list[float]:
    async with httpx.AsyncClient(base_url=node.base, timeout=60) as client:
        device = await sign_in_registered(client, "one@example.com", "solo")
        waits: list[float] = []
        for n in range(samples):
            before = len(receiver.arrivals)
            file_id, _ = await device.upload(f"l-{n}.bin", os.urandom(2048))
            answered = time.perf_counter()
            with trio.fail_after(30):
                while True:
                    hit = [t for t, b in receiver.arrivals[before:] if b.get("data", {}).get("fileId") == file_id]
                    if hit:
                        break
                    await receiver.changed.wait()
            waits.append(max(0.0, hit[0] - answered) * 1000)
    return waits


async def run(args: argparse.Namespace) -> int:
    receiver = Receiver()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 0
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(partial(serve, receiver, config, shutdown_trigger=stop.wait))
        hook = f"{urls[0]}/hook"
        with tempfile.TemporaryDirectory(prefix="vault-bench-push-") as tmp:
            node = PushNode(Path(tmp), hook)
            node.hook = hook  # type: ignore[attr-defined]
            await trio.to_thread.run_sync(node.start)
            try:
                print(f"throughput: {args.devices} devices x {args.uploads} uploads ...", file=sys.stderr)
                result = await throughput(node, receiver, args.devices, args.uploads)
                print(f"latency: {args.samples} uploads ...", file=sys.stderr)
                waits = await latency(node, receiver, args.samples)
                memory = node.status()
            finally:
                await trio.to_thread.run_sync(node.stop)
        stop.set()
    ratio = result["node_per_s"] / result["direct_per_s"]
    print("| measure | node | direct httpx to the same receiver | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| deliveries/s ({result['deliveries']:.0f} deliveries, 8 at a time) | {result['node_per_s']:.0f} "
        f"| {result['direct_per_s']:.0f} | {ratio:.2f}x |"
    )
    print()
    print(
        f"upload complete -> webhook received, {len(waits)} uploads: p50 {percentile(sorted(waits), 0.5):.1f} ms, "
        f"p99 {percentile(sorted(waits), 0.99):.1f} ms, max {max(waits):.1f} ms"
    )
    print(
        f"node CPU for the throughput phase: {result['node_cpu_s']:.2f} s "
        f"({1000 * result['node_cpu_s'] / result['deliveries']:.2f} ms per delivery incl. the uploads)"
    )
    print(
        f"node memory at the end: RssAnon {memory.get('RssAnon', 0) // 1024} MB, "
        f"VmRSS {memory.get('VmRSS', 0) // 1024} MB"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench push", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 devices, 10 uploads, 30 samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.uploads, args.samples = 10, 10, 30
    return trio.run(run, args)
