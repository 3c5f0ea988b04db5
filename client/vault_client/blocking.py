"""``BlockingClient``: the SDK for scripts that are not async.

    from vault_client.blocking import BlockingClient
    with BlockingClient("http://pi.local:8080", state_path="vault.sqlite3") as vault:
        vault.sign_in("me@example.com", "password")
        entry = vault.upload("photo.jpg", folder="/photos")
        vault.sync_once("~/Photos", remote="/Photos")

A Trio event loop runs in a thread of its own for the client's lifetime (one connection pool,
one token refresher); each method hands its coroutine to that loop and waits for the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

from vault_client import wire
from vault_client.client import Client
from vault_client.state import State
from vault_client.syncer import RoundReport, Syncer

T = TypeVar("T")


class BlockingClient:
    def __init__(self, base_url: str | None = None, *, state_path: str | Path = ":memory:", **options: Any) -> None:
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._client: Client | None = None
        self._error: BaseException | None = None
        self._syncers: dict[str, Syncer] = {}
        self._thread = threading.Thread(
            target=self._main, args=(base_url, str(state_path), options), name="vault-client", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self, base_url: str | None, state_path: str, options: dict[str, Any]) -> None:
        async def serve() -> None:
            try:
                self._client = Client(base_url, state=State(state_path), **options)
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self._client.aclose()
                self._client.state.close()

        trio.run(serve)

    def _call(self, make: Callable[[Client], Awaitable[T]]) -> T:
        if self._client is None or self._token is None:
            raise RuntimeError("the client is closed")
        client = self._client

        async def run() -> T:
            return await make(client)

        return trio.from_thread.run(run, trio_token=self._token)

    def close(self) -> None:
        if self._token is not None and self._stop is not None:
            stop = self._stop
            trio.from_thread.run_sync(stop.set, trio_token=self._token)
            self._thread.join()
            self._token = None

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the async client's calls, blocking -----------------------------------------------------

    def sign_in(self, email: str, password: str, *, name: str | None = None) -> Any:
        return self._call(lambda c: c.sign_in(email, password, name=name))

    def sign_out(self) -> None:
        self._call(lambda c: c.sign_out())

    def upload(self, path: str | Path, *, folder: str = "/", name: str | None = None) -> wire.FileEntry:
        return self._call(lambda c: c.upload(Path(path), folder=folder, name=name))

    def download(self, entry: wire.FileEntry, target: str | Path) -> None:
        self._call(lambda c: c.download(entry, Path(target)))

    def list_folder(self, folder: str = "/") -> wire.FolderListing:
        return self._call(lambda c: c.list_folder(folder))

    def file(self, file_id: str) -> wire.FileEntry:
        return self._call(lambda c: c.file(file_id))

    def sync_once(self, local: str | Path, *, remote: str = "/") -> RoundReport:
        """One two-way sync round of a local folder (its index kept in the state)."""
        key = str(Path(local).expanduser().resolve())

        async def run(client: Client) -> RoundReport:
            syncer = self._syncers.get(key)
            if syncer is None:
                syncer = self._syncers[key] = Syncer(client, Path(key), remote)
            return await syncer.sync_once()

        return self._call(run)
