"""One node per bucket prefix: a lease object under the prefix, held while the node runs.

Two nodes on one prefix would each see the other's chunks as unreferenced and delete them, so
the node that opens the prefix writes ``PREFIXlease.json`` naming itself and rewrites it every
``ttl / 4`` seconds. Another node (or ``vault gc`` from another machine) that finds a lease
renewed less than ``ttl`` seconds ago refuses to start, naming the holder. A lease older than
that was left by a node that died, and is taken over with a warning.

The age is the bucket's own: the ``Date`` of the answer minus the lease's ``Last-Modified``, both
the server's clock, so clocks of different machines never enter. Creating and taking over are
conditional writes (``If-None-Match: *``, ``If-Match: ETAG``): of two nodes starting at the same
moment one wins and the other sees the winner. A store that ignores those headers still gets
a re-read check after the write.

The lease names a holder by the owner id kept in the node's data directory (``.s3-owner``), so
a node restarted after a crash takes its own lease back at once; only one process of a data
directory manages the lease (the local owner lock says which), so ``vault fsck`` beside the
running node reads without touching it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio
from botocore.exceptions import ClientError

from vault.plugin_api import StorageRefused, StorageUnavailable
from vault_backends.s3_errors import code_of, is_not_found

log = logging.getLogger(__name__)

LEASE_NAME = "lease.json"

Caller = Callable[..., Awaitable[Any]]


class LeaseLost(StorageRefused):
    """Another node replaced this node's lease: it must not delete anything any more."""


@dataclass(frozen=True)
class Holder:
    owner: str
    session: str
    host: str
    pid: int
    data_dir: str

    def describe(self) -> str:
        return f"node on {self.host} (pid {self.pid}, data directory {self.data_dir})"


def server_now(answer: Mapping[str, Any]) -> float:
    """Now by the server's clock: the ``Date`` of its answer (this machine's clock without one).

    The lease's clock: ages are this minus the lease's ``Last-Modified``, so only the server's
    clock counts. Looked up at each use, so a test can replace it to move the server's time on
    (a lease left by a killed node, seen a ``ttl`` later) without waiting.
    """
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()


def _decode(body: bytes) -> Holder | None:
    try:
        raw = json.loads(body)
        return Holder(str(raw["owner"]), str(raw["session"]), str(raw["host"]), int(raw["pid"]), str(raw["data_dir"]))
    except (ValueError, KeyError, TypeError):
        return None


class Lease:
    """The lease of one backend instance over ``s3://bucket/prefix``."""

    def __init__(
        self, *, client: Any, bucket: str, prefix: str, owner: str, data_dir: str, ttl: float, call: Caller
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = f"{prefix}{LEASE_NAME}"
        self.location = f"s3://{bucket}/{prefix}"
        self.ttl = ttl
        # ``call(what, fn, *args, **kwargs)``: fn in a worker thread, botocore errors translated.
        self._call = call
        self.me = Holder(owner, secrets.token_hex(8), socket.gethostname(), os.getpid(), data_dir)
        self.etag: str | None = None
        self._quoted = True  # whether the store takes If-Match with the quoted ETag
        self.lost = False
        self.renewals = 0  # renewals written (diagnostics, tests)
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._attempted = trio.Event()  # set when a renewal attempt of the renewing task ends

    @property
    def held(self) -> bool:
        return self.etag is not None and not self.lost

    def _body(self) -> bytes:
        return json.dumps({**self.me.__dict__, "ttl": self.ttl, "written": time.time()}).encode()

    # -- one request each, in a worker thread ----------------------------------------------------

    def _read_sync(self) -> tuple[Holder | None, str, float] | None:
        """``(holder, etag, age in seconds by the server's clock)``, or ``None`` without a lease."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        body = answer["Body"].read()
        age = max(0.0, server_now(answer) - answer["LastModified"].timestamp())
        return _decode(body), str(answer["ETag"]), age

    def _write_sync(self, condition: dict[str, str]) -> str | None:
        """Write our lease under ``condition``; the new ETag, or ``None`` when the condition failed."""
        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=self._body(), ContentType="application/json", **condition
            )
        except ClientError as exc:
            if code_of(exc)[0] in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return None
            raise
        return str(answer["ETag"])

    def _replace_sync(self, etag: str) -> str | None:
        """Write our lease if the one there still has ``etag``; the new ETag, or ``None``.

        ``If-Match`` takes the quoted ETag (RFC 9110, AWS); Ceph RGW 16 compares it unquoted
        and refuses the quoted one. When the lease turns out unchanged after a refusal, the other
        form is tried and kept for later renewals.
        """
        forms = [etag, etag.strip('"')]
        if not self._quoted:
            forms.reverse()
        for form in forms:
            written = self._write_sync({"IfMatch": form})
            if written is not None:
                self._quoted = form.startswith('"')
                return written
            current = self._read_sync()
            if current is None or current[1] != etag:
                return None  # really replaced or removed by someone else
        return None

    def _delete_sync(self) -> None:
        found = self._read_sync()
        if found is not None and found[0] == self.me:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    # -- the lease's life --------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Take the lease or raise ``StorageRefused`` naming the node that holds it."""
        for _ in range(5):
            found = await self._call("read the lease", self._read_sync)
            if found is None:
                etag = await self._call("write the lease", self._write_sync, {"IfNoneMatch": "*"})
            else:
                holder, current, age = found
                if holder is not None and holder.owner != self.me.owner and age < self.ttl:
                    raise StorageRefused(
                        f"{self.location} is in use by another {holder.describe()}, lease renewed {age:.0f} s ago: "
                        "one node per bucket prefix (stop that node or use another storage.s3.prefix; "
                        f"a lease not renewed for {self.ttl:.0f} s is taken over)"
                    )
                if holder is not None and holder.owner != self.me.owner:
                    log.warning(
                        "taking over the lease of %s on %s: not renewed for %.0f s",
                        holder.describe(),
                        self.location,
                        age,
                    )
                etag = await self._call("write the lease", self._replace_sync, current)
            if etag is None:
                continue  # another node wrote it in between: look again
            # A store that ignores conditional writes: make sure what is there now is ours.
            check = await self._call("read the lease", self._read_sync)
            if check is not None and check[0] == self.me:
                self.etag = check[1]
                self.lost = False
                return
        raise StorageRefused(f"{self.location}: another node keeps rewriting the lease; one node per bucket prefix")

    async def renew(self) -> None:
        if self.etag is None or self.lost:
            return
        etag = await self._call("renew the lease", self._replace_sync, self.etag)
        if etag is None:
            self.lost = True
            raise LeaseLost(f"the lease on {self.location} was taken by another node; this node no longer deletes")
        self.etag = etag
        self.renewals += 1

    def start_renewing(self) -> None:
        """Renew every ``ttl / 4`` seconds in a Trio system task until ``release``."""
        if self._scope is not None:
            return
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        trio.lowlevel.spawn_system_task(self._renew_forever, self._scope, self._stopped, name="s3 lease renewal")

    async def _renew_forever(self, scope: trio.CancelScope, stopped: trio.Event) -> None:
        try:
            with scope:
                while not self.lost:
                    await trio.sleep(self.ttl / 4)
                    try:
                        await self.renew()
                    except LeaseLost as exc:
                        log.error("%s", exc)
                    except StorageUnavailable as exc:
                        # Keep trying: the lease stays ours until it is ``ttl`` old.
                        log.warning("could not renew the S3 lease: %s", exc)
                    except Exception:
                        log.exception("renewing the S3 lease failed")
                    attempted, self._attempted = self._attempted, trio.Event()
                    attempted.set()
        finally:
            stopped.set()

    async def wait_for_renewal(self) -> None:
        """Until the renewing task's next attempt has ended, renewed or not (for tests: a node
        never waits on its lease)."""
        await self._attempted.wait()

    async def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (best effort: it expires anyway)."""
        if self._scope is not None:
            self._scope.cancel()
            with trio.CancelScope(shield=True):
                await self._stopped.wait()
            self._scope = None
        if self.etag is None or self.lost:
            return
        self.etag = None
        with trio.CancelScope(shield=True):
            try:
                await self._call("release the lease", self._delete_sync)
            except (StorageUnavailable, StorageRefused) as exc:
                log.warning("could not release the S3 lease (it expires by itself): %s", exc)
