"""The shipped conformance suite, run against the built-in backends (a few lines each)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio
from vault_backends.fs_backend import FsBackend, FsOptions
from vault_backends.lmdb_backend import INDEX_ENTRY, LmdbBackend, LmdbOptions, segment_key

from vault import plugins
from vault.chunks import ChunkBackend, ChunkId, conformance
from vault.chunks.conformance import CHECKS, Harness
from vault.chunks.memory import MemoryBackend, MemoryOptions


def flip_middle_byte(path: Path, offset: int | None = None) -> None:
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size // 2 if offset is None else offset)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def fs_harness(root: Path) -> Harness:
    async def corrupt(chunk_id: ChunkId) -> None:
        flip_middle_byte(FsBackend(root, FsOptions()).chunk_path(chunk_id))

    async def leftovers() -> int:
        return len(os.listdir(root / "tmp"))

    return Harness(make=lambda: FsBackend(root, FsOptions()), corrupt=corrupt, leftovers=leftovers)


def _lmdb_env(root: Path) -> tuple[lmdb.Environment, dict[bytes, Any]]:
    env = lmdb.open(str(root), max_dbs=8, subdir=True, map_size=1 << 30)
    names = (b"index", b"segments", b"staging")
    return env, {name: env.open_db(name) for name in names}


def lmdb_harness(root: Path) -> Harness:
    def corrupt_sync(chunk_id: ChunkId) -> None:
        env, dbs = _lmdb_env(root)
        with env.begin(write=True) as txn:
            entry = txn.get(chunk_id, db=dbs[b"index"])
            assert entry is not None
            token, _size, count = INDEX_ENTRY.unpack(entry)
            key = segment_key(token, count // 2)
            stored = txn.get(key, db=dbs[b"segments"])
            assert stored is not None
            segment = bytearray(stored)
            segment[len(segment) // 2] ^= 0xFF
            txn.put(key, bytes(segment), db=dbs[b"segments"])
        env.close()

    def leftovers_sync() -> int:
        env, dbs = _lmdb_env(root)
        with env.begin() as txn:
            staged = txn.stat(dbs[b"staging"])["entries"]
            segments = txn.stat(dbs[b"segments"])["entries"]
            referenced = sum(INDEX_ENTRY.unpack(v)[2] for _, v in txn.cursor(db=dbs[b"index"]))
        env.close()
        return int(staged + segments - referenced)

    async def corrupt(chunk_id: ChunkId) -> None:
        await trio.to_thread.run_sync(corrupt_sync, chunk_id)

    async def leftovers() -> int:
        return await trio.to_thread.run_sync(leftovers_sync)

    return Harness(make=lambda: LmdbBackend(root, LmdbOptions(map_size=64 << 20)), corrupt=corrupt, leftovers=leftovers)


@pytest.fixture(params=["lmdb", "fs", "memory", "memory-blind"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "memory":
        return conformance.memory_harness()
    if request.param == "memory-blind":  # the store's blind puts, as over an object store
        return conformance.memory_harness(options=MemoryOptions(blind_put=True))
    make = {"lmdb": lmdb_harness, "fs": fs_harness}[request.param]
    return make(tmp_path / "chunks")


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
async def test_conformance(harness: Harness, check: conformance.Check) -> None:
    await check(harness)


def test_every_interface_method_has_a_check() -> None:
    assert conformance.uncovered_methods() == set()


@pytest.mark.parametrize("name", ["lmdb", "fs", "memory"])
def test_builtin_backends_are_registered_entry_points(name: str) -> None:
    cls = plugins.load(plugins.BACKENDS, name)
    assert issubclass(cls, ChunkBackend) and cls.name == name


@pytest.mark.parametrize("cls", [LmdbBackend, FsBackend, MemoryBackend])
def test_unknown_backend_option_is_refused_by_name(cls: type[ChunkBackend], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colour"):
        cls(tmp_path, {"colour": "blue"})  # type: ignore[call-arg]


def test_the_built_in_harnesses_have_every_hook() -> None:
    """With both hooks nothing is skipped: the built-in backends are checked in full."""
    for make in (lmdb_harness, fs_harness):
        harness = make(Path("unused"))
        assert harness.corrupt is not None and harness.leftovers is not None
