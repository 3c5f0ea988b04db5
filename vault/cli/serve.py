"""``vault serve``: Hypercorn's trio worker, in-process, with graceful shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import re
import signal
from pathlib import Path

import hypercorn.trio.tcp_server as hypercorn_tcp
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.utils import LifespanFailureError

from vault._trio_util import single_errors
from vault.app import create_app
from vault.cli import h11_buffer, hypercorn_closing
from vault.cli.common import CommandError, check_plugins, config_from_args, setup_logging
from vault.config import Config
from vault.datadir_lock import node_is_running
from vault.memory import limit_malloc_arenas, trim_heap
from vault.metrics import Metrics
from vault.sync.wire import LONGEST_WAIT

log = logging.getLogger("vault.serve")


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    cmd = commands.add_parser("serve", parents=[parent], help="run the node")
    cmd.add_argument("--bind", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8080)")
    cmd.set_defaults(run=run)


# Hypercorn reads sockets 64 KiB at a time, and every read becomes an h11 event, a queue hand-off
# and an ASGI message: for a 256 MiB upload that per-piece overhead cost more CPU than hashing and
# writing together. Reading up to 1 MiB per call cut the node's CPU per upload by about a third.
_RECV_SIZE = 1 << 20
# Hypercorn queues up to this many body messages per request before it stops reading the socket;
# with 1 MiB reads, 4 keeps a stalled upload's backlog at about 4 MiB.
_APP_QUEUE = 4
# How often the heap is looked at for freed memory to give back (``vault.memory.trim_heap``).
_TRIM_INTERVAL = 1.0


def tune_hypercorn() -> None:
    """Apply the larger socket read size (a module constant of Hypercorn's trio worker), and the
    receive buffer that hands body reads on without copying them (``vault.cli.h11_buffer``), and
    connections closed when nothing more can come of them (``vault.cli.hypercorn_closing``)."""
    hypercorn_tcp.MAX_RECV = _RECV_SIZE
    h11_buffer.install()
    hypercorn_closing.install()


def hypercorn_config(config: Config) -> HypercornConfig:
    tune_hypercorn()
    hc = HypercornConfig()
    hc.max_app_queue_size = _APP_QUEUE
    hc.bind = [config.server.bind]
    hc.graceful_timeout = float(config.server.shutdown_grace)
    hc.accesslog = None  # our own structured request log replaces it
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = float(config.server.keep_alive_timeout)
    hypercorn_closing.set_send_timeout(hc, float(config.server.send_timeout))
    # Hypercorn's read timeout also runs while a request is being answered: it must outlast the
    # longest long poll (sync/status wait=300), or those connections are cut at 60 s. Slow request
    # bodies are cut by the node itself (server.body_read_timeout, server.min_body_rate).
    hc.read_timeout = int(max(float(config.server.body_read_timeout), LONGEST_WAIT + 30))
    return hc


async def serve(config: Config, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until SIGINT/SIGTERM, then let in-flight requests finish within the grace period."""
    app = create_app(config)
    stop = trio.Event()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                stop.set()
                return

    trimming = trio.CancelScope()

    async def trim_heap_until_stopped() -> None:
        with trimming:
            await trim_heap_every(_TRIM_INTERVAL, app.node.metrics)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals)
        nursery.start_soon(trim_heap_until_stopped)
        log.info("serving on http://%s with data in %s", config.server.bind, config.storage.data_dir)
        await nursery.start(_serve_app, app, hypercorn_config(config), stop)
        task_status.started()
        await stop.wait()
        trimming.cancel()
    log.info("stopped")


async def trim_heap_every(seconds: float, metrics: Metrics) -> None:
    """Every ``seconds`` in which no request body bytes arrived (uploads stalled, or none), give
    freed malloc memory back to the system; never while bytes flow, when the freed pieces are
    about to be reused and trimming them would only cost page faults. In a worker thread: the
    trim holds malloc's locks while it walks the free memory. Counted in ``/metrics``."""
    seen = metrics.body_bytes_seen
    while True:
        await trio.sleep(seconds)
        now = metrics.body_bytes_seen
        if now == seen and await trio.to_thread.run_sync(trim_heap):
            metrics.heap_trims.inc()
        seen = now
        metrics.heap_checks.inc()


async def _serve_app(app: object, hc: HypercornConfig, stop: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
    await hypercorn_serve(app, hc, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]


def startup_reason(exc: LifespanFailureError) -> str:
    """What failed at startup, without Hypercorn's ``Lifespan failure in startup. '…'`` wrapping."""
    text = str(exc)
    match = re.fullmatch(r"Lifespan failure in \w+\. '(.*)'", text, flags=re.DOTALL)
    reason = match.group(1) if match else text
    return " ".join(reason.split())  # one line, whatever the message held


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_plugins(config)  # an unknown plugin name is a config error, not a startup traceback
    setup_logging(config.server.log_level)
    data_dir = Path(config.storage.data_dir)
    if node_is_running(data_dir):
        raise CommandError(f"another vault node is running with data directory {data_dir}; stop it first")
    limit_malloc_arenas()
    try:
        with single_errors():
            trio.run(serve, config)
    except OSError as exc:
        raise CommandError(f"cannot serve on {config.server.bind}: {exc.strerror or exc}") from None
    except LifespanFailureError as exc:
        # The node could not open its stores (a chunk store refusing says why in one line).
        raise CommandError(f"the node could not start: {startup_reason(exc)}") from None
    return 0
