"""What the S3 tests share: the gateway from the environment, a fresh prefix per test, raw access.

The tests run against a real S3 server named by ``S3_ENDPOINT``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` (``make test-s3`` and ``.ci/run`` start a Ceph RADOS Gateway with
``.ci/ceph-rgw.sh`` and export them). Without ``S3_ENDPOINT`` they are skipped, saying so.
Every test gets its own key prefix in one shared bucket, so tests never see each other's objects.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import trio
from botocore.config import Config as BotoConfig

from vault import plugins
from vault.chunks import ChunkId
from vault.chunks.conformance import Harness

# An installed checkout whose metadata predates the s3 backend (a shared venv installed from an
# older tree) has no ``s3`` entry point; this test-only dist-info registers it, the same line as
# pyproject.toml's (a test checks that line). Child processes (``vault serve`` in other tests
# too) get it through PYTHONPATH, so they and this process agree on what is installed.
if "s3" not in plugins.available(plugins.BACKENDS):
    _SHIM = str(Path(__file__).resolve().parent / "s3_entry_point")
    sys.path.append(_SHIM)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), _SHIM) if p)

ENDPOINT = os.environ.get("S3_ENDPOINT", "")
BUCKET = os.environ.get("S3_TEST_BUCKET", "vault-tests")
# The gateway's directory and port, for the tests that stop and restart it (``make test-s3`` and
# ``.ci/run`` set them); without them those tests are skipped.
CEPH_DIR = os.environ.get("S3_CEPH_DIR", "")
CEPH_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "ceph-rgw.sh"

needs_s3 = pytest.mark.skipif(
    not ENDPOINT,
    reason="S3_ENDPOINT is not set: `make test-s3` starts a Ceph RADOS Gateway and runs the S3 tests "
    "(or export S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for a gateway of your own)",
)


def raw_client(**overrides: Any) -> Any:
    """A plain boto3 client for the gateway, to look at or damage what the backend stored."""
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=overrides.get("access_key", os.environ.get("AWS_ACCESS_KEY_ID")),
        aws_secret_access_key=overrides.get("secret_key", os.environ.get("AWS_SECRET_ACCESS_KEY")),
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 3},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def new_prefix(label: str = "t") -> str:
    return f"{label}-{secrets.token_hex(6)}/"


def options(prefix: str, **extra: Any) -> dict[str, Any]:
    """``[storage.s3]`` for the test gateway under ``prefix`` (fast retries: tests wait on them)."""
    return {
        "endpoint": ENDPOINT,
        "bucket": BUCKET,
        "prefix": prefix,
        "retry_delay": 0.05,
        "max_retry_delay": 0.5,
        **extra,
    }


def keys_under(prefix: str, bucket: str = BUCKET) -> list[str]:
    client = raw_client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [entry["Key"] for entry in page.get("Contents", [])]
    return keys


def remove_prefix(prefix: str, bucket: str = BUCKET) -> None:
    client = raw_client()
    keys = keys_under(prefix, bucket)
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})


@pytest.fixture
def s3_prefix() -> Iterator[str]:
    """A prefix no other test uses, emptied afterwards."""
    prefix = new_prefix()
    yield prefix
    remove_prefix(prefix)


def s3_harness(chunks_dir: Path, prefix: str, **extra: Any) -> Harness:
    """The conformance harness over one prefix, with every hook.

    ``corrupt`` rewrites the stored object with one byte flipped (rot, as far as the node can
    tell); ``leftovers`` counts spool files, and a 1 MiB ``memory_per_put`` makes every chunk past
    1 MiB spool, so the crash and abort checks see staged data that must be reclaimed.
    """
    from vault_backends.s3_backend import S3Backend

    opts = options(prefix, memory_per_put=1024 * 1024, **extra)

    def corrupt_sync(chunk_id: ChunkId) -> None:
        client = raw_client()
        key = f"{prefix}{chunk_id.hex()}"
        data = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        data[len(data) // 2] ^= 0xFF
        client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))

    async def corrupt(chunk_id: ChunkId) -> None:
        await trio.to_thread.run_sync(corrupt_sync, chunk_id)

    async def leftovers() -> int:
        spool = chunks_dir / "spool"
        return len(os.listdir(spool)) if spool.exists() else 0

    return Harness(make=lambda: S3Backend(chunks_dir, opts), corrupt=corrupt, leftovers=leftovers)


def ceph(*args: str) -> str:
    """Run the gateway script (``start DIR PORT`` / ``stop DIR``); returns what it printed."""
    assert shutil.which("bash")
    done = subprocess.run(["bash", str(CEPH_SCRIPT), *args], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout
