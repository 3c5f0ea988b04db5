"""A real ``vault serve`` child process for black-box tests (crash loops, memory, load): started
on a free loopback port, waited for, and stopped by its PID."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(config: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``vault serve --config CONFIG --data-dir DATA_DIR`` on ``127.0.0.1:PORT``."""
    command = [sys.executable, "-m", "vault.cli", "serve", "--config", str(config), "--data-dir", str(data_dir)]
    return subprocess.Popen(
        [*command, "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    """Until ``/api/health`` answers 200 (the node's stores are open); fails if the node exits."""
    async with httpx.AsyncClient(base_url=base) as http:
        with trio.fail_after(30):
            while True:
                assert proc.poll() is None, "node exited during startup"
                try:
                    if (await http.get("/api/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)


@asynccontextmanager
async def running_node(tmp_path: Path, toml: str = "") -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """A healthy ``vault serve`` child with ``toml`` as its config and its data under
    ``tmp_path``: (process, port). Stopped by its PID on the way out (SIGTERM, then SIGKILL if it
    does not end within 30 s), unless the test stopped it already."""
    config = tmp_path / "vault.toml"
    config.write_text(toml)
    port = free_port()
    proc = serve(config, tmp_path / "data", port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
