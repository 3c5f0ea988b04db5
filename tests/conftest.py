"""Shared fixtures: a node per test, reached in-process (Quart test client) or over real HTTP."""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypercorn.trio import serve as hypercorn_serve
from vault_backends import lmdb_lockfile

from vault.app import VaultApp, create_app
from vault.cli.serve import hypercorn_config
from vault.clock import TrioClock
from vault.config import Config, config_from_mapping
from vault.meta import MetaStore
from vault.meta_upgrades import metadata_store


@pytest.fixture(scope="session", autouse=True)
def _remove_lmdb_lock_dirs() -> Iterator[None]:
    """Every lmdb chunk store a test opens puts its lock file in /dev/shm (one private directory
    per store, kept until reboot for a real node); remove those this session made, once unused."""
    started = time.time()
    yield
    for private in Path("/dev/shm").glob("megavault-lmdb-*"):
        try:
            made_now = private.stat().st_mtime >= started - 1
        except OSError:
            continue
        if made_now and lmdb_lockfile.unused(private / lmdb_lockfile.LOCK_NAME):
            shutil.rmtree(private, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``test_schemathesis.py`` builds its test cases while it is collected (seconds of CPU); a
    run that leaves the reliability checks out (``-m "not reliability"``, ``make unit``) skips it."""
    if collection_path.name == "test_schemathesis.py" and config.getoption("markexpr") == "not reliability":
        return True
    return None


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo what a test's in-process ``vault serve`` did to logging (``setup_logging`` replaces
    the root handlers with one on that test's captured stderr and raises httpx's level), so a
    later test's ``caplog`` sees httpx's records and nothing logs to a closed stream."""
    names = ("", "httpx", "httpcore", "hpack")
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers)) for name in names}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a config for a fresh data dir; keyword sections override (``auth={"signup": "closed"}``)."""

    def build(**sections: Any) -> Config:
        raw: dict[str, Any] = {"storage": {"data_dir": str(tmp_path / "data")}}
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return config_from_mapping(raw)

    return build


@pytest.fixture
def idle_jump_clock() -> trio.testing.MockClock:
    """A clock that jumps to the next timeout once the test has been idle for a moment of real
    time. Plain ``autojump_clock`` jumps while a worker thread (LMDB, fsync) is still busy, which
    fires startup timeouts; this one lets threads finish, then skips hours in an instant.
    Start apps with ``running_app`` so startup itself never races the clock."""
    return trio.testing.MockClock(autojump_threshold=0.05)


@asynccontextmanager
async def running_app(config: Config, clock: trio.testing.MockClock) -> AsyncIterator[VaultApp]:
    """An app started with the mock clock held still (startup does real disk work in threads)."""
    threshold = clock.autojump_threshold
    clock.autojump_threshold = math.inf
    application = create_app(config, clock=TrioClock())
    async with application.test_app():
        clock.autojump_threshold = threshold
        yield application
        clock.autojump_threshold = math.inf


@pytest.fixture(params=["lmdb", "fs"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
async def app(config: Config) -> AsyncIterator[VaultApp]:
    """An in-process app with its node opened (lifespan run) and a clock that follows Trio's."""
    application = create_app(config, clock=TrioClock())
    async with application.test_app():
        yield application


@pytest.fixture
async def client(app: VaultApp) -> Any:
    return app.test_client()


class LiveNode:
    """A node served by Hypercorn on a free loopback port, for black-box HTTP tests."""

    def __init__(self, app: VaultApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, **kw)


@pytest.fixture
async def live_node(config: Config, nursery: trio.Nursery) -> AsyncIterator[LiveNode]:
    application = create_app(config)
    hc = hypercorn_config(config)  # the same tuning as `vault serve`
    hc.bind = ["127.0.0.1:0"]
    stop = trio.Event()
    bound: list[str] = await nursery.start(
        lambda task_status: hypercorn_serve(
            application,  # type: ignore[arg-type]
            hc,
            shutdown_trigger=stop.wait,
            task_status=task_status,
        )
    )
    yield LiveNode(application, bound[0])
    stop.set()


@pytest.fixture
async def meta(tmp_path: Path) -> AsyncIterator[MetaStore]:
    """A data directory's metadata store, opened (with its schema upgrades) and closed after."""
    store = metadata_store(tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
