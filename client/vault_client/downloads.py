"""Downloads that resume with ``Range`` and are verified before anyone sees them.

Bytes go to a temporary file beside the target (same folder, so the final ``os.replace`` is
atomic); the partial file is recorded in the state, so a run killed midway carries on from the
bytes it has. Once complete the whole content is checked against the BLAKE3 checksum the node
gave, then renamed over the target: the target is either its old content or the verified new one,
never a mix.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import blake3
import trio

from vault_client import wire
from vault_client.errors import NodeError, VerificationFailed
from vault_client.hashing import HASHING
from vault_client.progress import NoProgress, Progress
from vault_client.session import Session
from vault_client.state import State


class LocalChanged(Exception):
    """The target changed on disk while its download ran: it was left alone."""


def partial_path(target: Path, file_id: str) -> Path:
    return target.parent / f".{target.name}.{file_id[-12:]}.vault-partial"


def _hash_prefix(path: Path) -> tuple[int, blake3.blake3]:
    """The bytes a partial file already holds, hashed (none when there is no partial file)."""
    hasher = blake3.blake3()
    size = 0
    if not path.exists():
        return size, hasher
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            hasher.update(block)
            size += len(block)
    return size, hasher


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Downloader:
    def __init__(self, session: Session, state: State, *, progress: Progress | None = None) -> None:
        self.session = session
        self.state = state
        self.progress: Progress = progress or NoProgress()
        self.bytes_received = 0

    async def download(
        self,
        file_id: str,
        checksum: str,
        size: int,
        target: Path,
        *,
        label: str | None = None,
        still_ok: Callable[[Path], bool] | None = None,
    ) -> None:
        """Fetch the content of ``file_id`` (which must hash to ``checksum``) into ``target``.

        ``still_ok(target)`` is asked right before the rename: answering ``False`` (the user
        edited the file meanwhile) leaves the target alone and raises ``LocalChanged``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        key = str(target)
        temp_text = self.state.partial_download(key, file_id, checksum)
        temp = Path(temp_text) if temp_text else partial_path(target, file_id)
        if temp_text is None:
            temp.unlink(missing_ok=True)
            self.state.put_download(key, file_id, checksum, str(temp))
        self.progress.start(key, label or target.name, size)
        try:
            hasher = await self._fetch(file_id, size, temp, key)
            if "blake3:" + hasher.hexdigest() != checksum.lower():
                temp.unlink(missing_ok=True)
                self.state.drop_download(key)
                raise VerificationFailed(f"{target.name}: the bytes received do not match {checksum}")
            await trio.to_thread.run_sync(_fsync, temp)
            if still_ok is not None and not still_ok(target):
                raise LocalChanged(str(target))
            os.replace(temp, target)
        finally:
            self.progress.finish(key)
        self.state.drop_download(key)

    async def _fetch(self, file_id: str, size: int, temp: Path, key: str) -> blake3.blake3:
        url = wire.GET_FILES_FILE_ID_CONTENT.path.replace("{file_id}", file_id)
        limit = self.session.rate_limit

        async def attempt(auth: dict[str, str]) -> blake3.blake3:
            have, hasher = await trio.to_thread.run_sync(_hash_prefix, temp, limiter=HASHING)
            self.progress.advance(key, have)
            counted = have
            try:
                if have >= size:
                    return hasher
                headers = {**auth, "Range": f"bytes={have}-"} if have else dict(auth)
                async with self.session.stream("GET", url, headers) as response:
                    if response.status_code == 200 and have:
                        have, hasher = 0, blake3.blake3()  # the node sent it all: start over
                        self.progress.advance(key, -counted)
                        counted = 0
                    mode = "ab" if have else "wb"
                    # Small appends to the page cache: cheap enough for the event loop; the
                    # fsync that makes it durable runs in a thread before the rename.
                    with open(temp, mode) as out:  # noqa: ASYNC230 (appends to the page cache, see above)
                        async for piece in response.aiter_bytes():
                            if limit is not None:
                                await limit.take(len(piece))
                            out.write(piece)
                            hasher.update(piece)
                            counted += len(piece)
                            self.bytes_received += len(piece)
                            self.progress.advance(key, len(piece))
                return hasher
            except BaseException:
                self.progress.advance(key, -counted)  # counted again from the file next time
                raise

        try:
            hasher: blake3.blake3 = await self.session.authorized(True, attempt)
        except NodeError as exc:
            if exc.status != 416:
                raise
            os.unlink(temp)  # the partial file is longer than the content: start over
            hasher = await self.session.authorized(True, attempt)
        return hasher
