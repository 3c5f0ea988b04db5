"""Orderly shutdown: background work finishes (or is cancelled) and is joined before the stores
close, and a read still open in a worker thread holds the close until it is done."""

from __future__ import annotations

import threading

import trio
import trio.lowlevel
import trio.testing

from vault.config import Config
from vault.node import Node
from vault.uploads.records import UPLOADS


async def test_close_joins_background_work_in_a_worker_thread_before_closing_the_stores(config: Config) -> None:
    node = Node(config)
    await node.open()
    reading = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def scan() -> None:
        with node.meta.read() as txn:
            reading.set()
            release.wait()
            txn.count(UPLOADS)
            order.append("scan finished")

    async def background_scan() -> None:
        await node.offload.run(scan)  # a worker-thread call: cancellation waits for it to return
        await trio.lowlevel.checkpoint()
        order.append("task went on after its scan")  # never: cancelled at that checkpoint

    async def close() -> None:
        await node.close()
        order.append("closed")

    async with trio.open_nursery() as nursery:
        await nursery.start(node.run_background)
        assert node.background.spawn(background_scan)
        await trio.to_thread.run_sync(reading.wait)
        nursery.start_soon(close)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []  # close waits for the scan
        release.set()
    assert order == ["scan finished", "closed"]
    assert node.background.spawn(background_scan) is False  # nothing runs after close
