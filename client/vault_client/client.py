"""``Client``: the SDK's front door (async, on Trio).

    async with Client("http://127.0.0.1:8080", state=State("~/.vault.sqlite3")) as vault:
        await vault.sign_in("me@example.com", "password")
        entry = await vault.upload(Path("photo.jpg"), folder="/photos")
        await vault.download(entry, Path("copy.jpg"))

Every call goes through the node's typed endpoints (``vault_client.wire``, generated from the
node's OpenAPI document), with retries and token refresh handled underneath.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vault_client import wire
from vault_client.auth import Auth, Credentials, stored_credentials
from vault_client.downloads import Downloader
from vault_client.errors import AuthError
from vault_client.progress import Progress
from vault_client.ratelimit import RateLimit
from vault_client.retry import RetryPolicy
from vault_client.session import Session
from vault_client.state import State
from vault_client.uploads import DEFAULT_CHUNK, Uploader, UploadItem

LONG_POLL_SLACK = 30.0  # seconds a long poll's read may take beyond what it asked the node to wait


class Client:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        state: State | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        parallel: int = 4,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
        wifi_only: bool = False,
        timeout: float = 60.0,
    ) -> None:
        """``base_url`` may be left out when the state holds a sign-in (it remembers the node)."""
        self.state = state or State(":memory:")
        if base_url is None:
            found = stored_credentials(self.state)
            if found is None:
                raise ValueError("no base_url given and the state holds no sign-in")
            base_url = found.base_url
        self.session = Session(
            base_url,
            transport=transport,
            retry=retry,
            timeout=timeout,
            rate_limit=RateLimit(rate_limit) if rate_limit else None,
        )
        self.auth = Auth(self.state, self.session)
        self.session.tokens = self.auth
        self.uploader = Uploader(
            self.session, self.state, parallel=parallel, chunk_size=chunk_size, progress=progress, wifi_only=wifi_only
        )
        self.downloader = Downloader(self.session, self.state, progress=progress)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.session.aclose()

    # -- auth -----------------------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials | None:
        return self.auth.credentials

    async def sign_in(
        self, email: str, password: str, *, name: str | None = None, model: str | None = None
    ) -> Credentials:
        """Sign in this machine as a device (creating the account when the node's sign-up is open)."""
        return await self.auth.sign_in(email, password, name=name, model=model)

    async def sign_out(self) -> None:
        """Revoke this device's tokens on the node and forget them here."""
        if self.auth.credentials is not None:
            try:
                await self.session.call(wire.POST_AUTH_LOGOUT)
            except AuthError:
                pass  # signed out (or removed) on the node already
            finally:
                self.auth.forget()

    async def health(self) -> wire.Health:
        answer: wire.Health = await self.session.call(wire.GET_HEALTH)
        return answer

    # -- files ----------------------------------------------------------------------------------

    async def upload(self, path: Path, *, folder: str = "/", name: str | None = None) -> wire.FileEntry:
        return await self.uploader.upload(UploadItem(Path(path), folder, name or Path(path).name))

    async def upload_many(self, items: list[UploadItem]) -> list[wire.FileEntry]:
        return await self.uploader.upload_many(items)

    async def download(self, entry: wire.FileEntry, target: Path) -> None:
        await self.downloader.download(entry.id, entry.checksum, entry.size, Path(target), label=entry.name)

    async def file(self, file_id: str) -> wire.FileEntry:
        answer: wire.FileResponse = await self.session.call(wire.GET_FILES_FILE_ID, path={"file_id": file_id})
        return answer.file

    async def list_folder(self, folder: str = "/") -> wire.FolderListing:
        """Every file and subfolder of ``folder`` (all pages)."""
        files: list[wire.FileEntry] = []
        cursor: str | None = None
        while True:
            page: wire.FolderListing = await self.session.call(
                wire.GET_FILES, query=wire.GetFilesQuery(folder=folder, cursor=cursor, limit=5000)
            )
            files.extend(page.files)
            if not page.has_more or not page.next_cursor:
                return wire.FolderListing(folder=page.folder, files=files, folders=page.folders)
            cursor = page.next_cursor

    async def delete(self, file_id: str) -> None:
        await self.session.call(wire.DELETE_FILES_FILE_ID, path={"file_id": file_id})

    async def mkdir(self, folder: str) -> None:
        await self.session.call(wire.POST_FOLDERS, wire.NewFolder(folder=folder))

    # -- sync -----------------------------------------------------------------------------------

    async def sync_status(self, sync_token: str | None = None, *, wait: int = 0, limit: int = 1000) -> wire.SyncStatus:
        """One page of changes since ``sync_token``; ``wait`` seconds of long poll (at most 300)."""
        answer: wire.SyncStatus = await self.session.call(
            wire.GET_SYNC_STATUS,
            query=wire.GetSyncStatusQuery(sync_token=sync_token, wait=wait or None, limit=limit),
            read_timeout=(self.session.http.timeout.read or 60.0) + wait + LONG_POLL_SLACK if wait else None,
        )
        return answer

    async def sync_files(self, changes: list[Any], sync_token: str | None) -> wire.SyncFilesAnswer:
        answer: wire.SyncFilesAnswer = await self.session.call(
            wire.POST_SYNC_FILES, wire.SyncFilesRequest(local_changes=changes, sync_token=sync_token)
        )
        return answer

    async def resolve(
        self, conflict_id: str, resolution: str, *, local_data: dict[str, Any] | None = None
    ) -> wire.ResolveResult:
        answer: wire.ResolveAnswer = await self.session.call(
            wire.POST_CONFLICTS_RESOLVE,
            wire.ResolveRequest(
                conflicts=[wire.Resolution(conflict_id=conflict_id, resolution=resolution, local_data=local_data)]  # type: ignore[arg-type]
            ),
        )
        return answer.results[0]

    async def queue_add(self, operations: list[Any], sync_token: str | None = None) -> wire.QueueAddAnswer:
        """Hand operations made offline to the node's queue (each ``id`` an idempotency key)."""
        answer: wire.QueueAddAnswer = await self.session.call(
            wire.POST_QUEUE_ADD, wire.QueueAddRequest(operations=operations, sync_token=sync_token)
        )
        return answer

    async def queue(self) -> wire.QueueList:
        answer: wire.QueueList = await self.session.call(wire.GET_QUEUE)
        return answer
