"""The s3 chunk backend against a plain boto3 client, and next to lmdb and fs, in one run.

``python -m bench s3`` (``--help`` for the knobs) needs a gateway: ``S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (``bash .ci/with-ceph-rgw.sh .venv/bin/python
-m bench s3`` starts a throw-away Ceph RADOS Gateway for it). For each chunk size it measures,
interleaved and repeated, on the same fresh random chunks:

- ``ChunkStore.put``/``get`` through ``s3`` (one stream, as one upload does: 1 MiB pieces with
  the expected BLAKE3 id and size, hashed and verified; gets verified), and through ``lmdb``
  and ``fs`` on the local disk;
- plain boto3 ``put_object`` and ``get_object(...)["Body"].read()`` of the same bytes to the same
  gateway and bucket, one stream, no hashing: what the gateway gives any client.

The issue's target: s3 put and get at >= 0.9x plain boto3 (our overhead as a ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blake3
import boto3
import trio
from botocore.config import Config as BotoConfig

from bench.chunkstore import _parse_size, _put_and_get, fresh_chunks, paired_ratio, time_store
from bench.common import RESULTS, MiB, format_rate, mb_per_s, median, scratch_dir, size_label, table
from vault.chunks import ChunkId, ChunkStore

BUCKET = "vault-bench"


def _client() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def plain_boto3(client: Any, prefix: str, chunks: Sequence[bytes]) -> tuple[float, float]:
    start = time.perf_counter()
    for index, chunk in enumerate(chunks):
        client.put_object(Bucket=BUCKET, Key=f"{prefix}{index:06d}", Body=chunk)
    put_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for index in range(len(chunks)):
        client.get_object(Bucket=BUCKET, Key=f"{prefix}{index:06d}")["Body"].read()
    return put_seconds, time.perf_counter() - start


async def through_s3(
    directory: Path, prefix: str, chunks: Sequence[bytes], ids: Sequence[ChunkId]
) -> tuple[float, float]:
    from vault_backends.s3_backend import S3Backend

    store = ChunkStore(
        S3Backend(directory, {"endpoint": os.environ["S3_ENDPOINT"], "bucket": BUCKET, "prefix": prefix})
    )
    return await time_store(store, "s3", chunks, ids)


def _empty(client: Any, prefix: str) -> None:
    keys = [
        o["Key"]
        for p in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for o in p.get("Contents", [])
    ]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})


def measure_size(size: int, total: int, repeat: int, local: Sequence[str], root: Path) -> dict[str, list[float]]:
    chunks = fresh_chunks(size, total, 10_000)
    ids = [ChunkId(blake3.blake3(c).digest()) for c in chunks]
    volume = sum(len(c) for c in chunks)
    client = _client()
    samples: dict[str, list[float]] = {}
    for rep in range(repeat):
        cells = ["s3", "boto3", *local]
        timings: dict[str, float] = {}
        for turn in range(len(cells)):
            cell = cells[(turn + rep) % len(cells)]
            prefix = f"bench-{cell}-{secrets.token_hex(4)}/"
            if cell == "s3":
                put_s, get_s = trio.run(through_s3, root / f"s3-{rep}", prefix, chunks, ids)
            elif cell == "boto3":
                put_s, get_s = plain_boto3(client, prefix, chunks)
            else:
                put_s, get_s = trio.run(_put_and_get, cell, root / f"{cell}-{rep}", chunks, ids)
            if cell in ("s3", "boto3"):
                _empty(client, prefix)
            shutil.rmtree(root / f"{cell}-{rep}", ignore_errors=True)
            timings |= {f"{cell}_put": put_s, f"{cell}_get": get_s}
        for name, seconds in timings.items():
            samples.setdefault(name, []).append(mb_per_s(volume, seconds))
        print(
            f"  {size_label(size)} run {rep + 1}/{repeat}: "
            + ", ".join(f"{name} {mb_per_s(volume, timings[name]):,.0f}" for name in sorted(timings)),
            file=sys.stderr,
        )
    return samples


def report(samples: dict[int, dict[str, list[float]]], local: Sequence[str]) -> str:
    cells = ["s3", "boto3", *local]
    headers = ["chunk"] + [f"{c} {op}" for c in cells for op in ("put", "get")] + ["s3/boto3 put", "s3/boto3 get"]
    rows = []
    for size, cell in samples.items():
        row = [size_label(size)] + [format_rate(median(cell[f"{c}_{op}"])) for c in cells for op in ("put", "get")]
        row += [
            f"{paired_ratio(cell, 's3_put', 'boto3_put'):.2f}x",
            f"{paired_ratio(cell, 's3_get', 'boto3_get'):.2f}x",
        ]
        rows.append(row)
    return "MB/s, median of the repetitions; ratios are medians of per-repetition ratios:\n\n" + table(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench s3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=128, metavar="MIB", help="MiB of chunks per case (128)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are shown (3)")
    parser.add_argument("--sizes", default="1M,8M", help="chunk sizes (1M,8M)")
    parser.add_argument("--local", default="lmdb,fs", help="local backends measured beside (lmdb,fs)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not os.environ.get("S3_ENDPOINT"):
        print(
            "bench s3: S3_ENDPOINT is not set (bash .ci/with-ceph-rgw.sh .venv/bin/python -m bench s3)", file=sys.stderr
        )
        return 2
    local = [b for b in args.local.split(",") if b]
    started = time.time()
    print(
        f"s3 bench: {os.cpu_count()} cores, Python {platform.python_version()}, {os.environ['S3_ENDPOINT']}",
        file=sys.stderr,
    )
    client = _client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    results: dict[int, dict[str, list[float]]] = {}
    with scratch_dir("s3-") as root:
        for size in (_parse_size(s) for s in args.sizes.split(",")):
            results[size] = measure_size(size, args.total * MiB, args.repeat, local, root)
    print()
    print(report(results, local))
    print(f"\n(took {time.time() - started:.0f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    (RESULTS / f"s3-{stamp}.json").write_text(
        json.dumps({"args": vars(args), "mb_s_per_repetition": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
